"""Keys made with `cryptography` load in paramiko (what kbuild's SSH transport uses)."""

from __future__ import annotations

import io
import stat

import paramiko

from kbuild.lab.keys import ecdsa_pair, ed25519_pair, ensure_login_key


def test_ed25519_pair_loads_in_paramiko():
    pair = ed25519_pair("kbuild-lab-lab")
    assert pair.key_type == "ssh-ed25519" and pair.public.endswith(" kbuild-lab-lab")
    assert pair.private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pair.private.decode()))
    assert f"{key.get_name()} {key.get_base64()}" == " ".join(pair.public.split()[:2])


def test_ecdsa_pair_loads_in_paramiko():
    pair = ecdsa_pair()
    key = paramiko.ECDSAKey.from_private_key(io.StringIO(pair.private.decode()))
    assert pair.public == f"{key.get_name()} {key.get_base64()}"


def test_login_key_is_made_once_and_private(tmp_path):
    private, public = tmp_path / "id_ed25519", tmp_path / "id_ed25519.pub"
    first = ensure_login_key(private, public, "kbuild-lab-lab")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text() == first + "\n"
    assert ensure_login_key(private, public, "kbuild-lab-lab") == first
