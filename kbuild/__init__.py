"""kbuild: declarative, idempotent Kubernetes "the hard way" on your own Linux hosts, over SSH."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kbuild")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
