"""Private keys: generate them in the inventory's algorithm, name an existing key's algorithm, PEM in and out."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
AnyKey = PrivateKeyTypes | PublicKeyTypes  # what a certificate or a PEM file may hold

ALGORITHMS = ("rsa-2048", "rsa-4096", "ecdsa-p256")

# Curve names kbuild can describe (and load); only P-256 is offered for new keys, as kubeadm does.
_CURVES = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}


def new_key(algorithm: str) -> PrivateKey:
    """A fresh private key for one of ALGORITHMS."""
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm in ("rsa-2048", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm.split("-")[1]))
    raise ValueError(f"unknown key algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


def algorithm_of(key: AnyKey) -> str:
    """The inventory-style name of a key's algorithm (rsa-2048, ecdsa-p256, ...), also for ones kbuild won't create."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"rsa-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"ecdsa-{_CURVES.get(key.curve.name, key.curve.name)}"
    return type(key).__name__


def is_rsa(key: AnyKey) -> bool:
    return isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey))


def private_pem(key: PrivateKey) -> bytes:
    # PKCS#8 ("PRIVATE KEY"): what Go's crypto/tls, etcd, kubectl and kube-apiserver's
    # service-account key loader all accept, for RSA and EC alike.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public(key: AnyKey) -> Any:
    # Any key type a certificate may carry (a foreign one could be Ed25519): all have public_bytes.
    derive = getattr(key, "public_key", None)
    return derive() if callable(derive) else key


def public_pem(key: AnyKey) -> bytes:
    return _public(key).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_der(key: AnyKey) -> bytes:
    return _public(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(a: AnyKey, b: AnyKey) -> bool:
    return public_der(a) == public_der(b)


def public_pem_matches(pub_pem: bytes | None, key: AnyKey) -> bool:
    """Whether `pub_pem` is the PEM public key of `key`; False when it is absent or not a usable public key."""
    if pub_pem is None:
        return False
    try:
        return same_public_key(load_public_pem(pub_pem), key)
    except ValueError:
        return False


def load_private_pem(data: bytes, *, validate: bool = True) -> PrivateKey:
    """Parse a PEM private key (PKCS#8, PKCS#1 or SEC1); ValueError with a readable reason otherwise.

    validate=False skips the RSA consistency check (~0.2 s per 4096-bit key). Use it only for keys
    kbuild never signs with: a leaf key is still compared with its certificate, and the component
    that uses it checks it again when it loads it.
    """
    if b"ENCRYPTED" in data:
        raise ValueError("the key is encrypted with a passphrase; kbuild needs it unencrypted")
    try:
        key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=not validate)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM private key ({short_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm and friends
        raise ValueError(f"not a usable private key ({short_reason(exc)})") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError(f"a {algorithm_of(key)} key; Kubernetes components need RSA or ECDSA keys")
    return key


def load_public_pem(data: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as exc:  # noqa: BLE001 - see load_private_pem
        raise ValueError(f"not a PEM public key ({short_reason(exc)})") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ValueError(f"a {algorithm_of(key)} key; Kubernetes components need RSA or ECDSA keys")
    return key


def short_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "Unable to load PEM file" in text or "MalformedFraming" in text:
        return "malformed PEM"  # cryptography's own text points at its FAQ, not at the problem
    if "asn1" in text.lower() or "ParseError" in text:
        return "the data inside the PEM block is not valid DER"
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
