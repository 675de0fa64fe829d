"""Plugins every test directory may use: the loopback artifact mirror (built_mirror, mirror_server, mirror_copy)."""

pytest_plugins = ["tests.mirror.plugin"]
