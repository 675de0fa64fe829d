"""SSH keys for the lab, made with `cryptography`: the lab's login key pair and each machine's host keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kbuild.state import PUBLIC_MODE, SECRET_MODE, write_atomic


@dataclass(frozen=True)
class KeyPair:
    """A private key in OpenSSH format and its public key as one `type base64 comment` line."""

    private: bytes
    public: str

    @property
    def key_type(self) -> str:
        return self.public.split()[0]


def _pair(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, comment: str) -> KeyPair:
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private, f"{public.decode()} {comment}".strip())


def ed25519_pair(comment: str = "") -> KeyPair:
    return _pair(ed25519.Ed25519PrivateKey.generate(), comment)


def ecdsa_pair(comment: str = "") -> KeyPair:
    return _pair(ec.generate_private_key(ec.SECP256R1()), comment)


def host_keys(hostname: str) -> dict[str, KeyPair]:
    """Fresh sshd host keys for one machine, by sshd file name (ed25519 and ECDSA; no RSA needed)."""
    return {
        "ssh_host_ed25519_key": ed25519_pair(f"root@{hostname}"),
        "ssh_host_ecdsa_key": ecdsa_pair(f"root@{hostname}"),
    }


def ensure_login_key(private_path: Path, public_path: Path, comment: str) -> str:
    """Create the lab's login key pair once (private 0600); return the public key line."""
    if private_path.exists() and public_path.exists():
        return public_path.read_text().strip()
    pair = ed25519_pair(comment)
    write_atomic(private_path, pair.private, mode=SECRET_MODE)
    write_atomic(public_path, pair.public + "\n", mode=PUBLIC_MODE)
    return pair.public
