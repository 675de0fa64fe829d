"""Build certificates with cryptography: self-signed CAs and leaves signed by them, as the table describes."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kbuild.pki.certlist import CLIENT, SERVER, CertInstance
from kbuild.pki.keys import PrivateKey, is_rsa

# Backdate notBefore so a host whose clock runs a little behind the controller's accepts a fresh
# certificate (lab machines and VMs are often minutes off before NTP settles).
BACKDATE = timedelta(hours=1)

EKU_OIDS = {SERVER: ExtendedKeyUsageOID.SERVER_AUTH, CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH}
KEY_USAGE_FIELDS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                    "key_agreement", "key_cert_sign", "crl_sign")


def subject(cn: str, org: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in org]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def effective_key_usage(wanted: tuple[str, ...], key: PrivateKey | object) -> tuple[str, ...]:
    """The table's key usages for this key type: keyEncipherment only on RSA keys (RFC 5480)."""
    return tuple(u for u in wanted if u != "key_encipherment" or is_rsa(key))  # type: ignore[arg-type]


def _key_usage(usages: tuple[str, ...]) -> x509.KeyUsage:
    flags = {name: name in usages for name in KEY_USAGE_FIELDS}
    return x509.KeyUsage(encipher_only=False, decipher_only=False, **flags)


def new_ca(cn: str, key: PrivateKey, usages: tuple[str, ...], days: int, now: datetime) -> x509.Certificate:
    name = subject(cn)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        # path_length 0: these CAs sign leaves only, never intermediate CAs.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(effective_key_usage(usages, key)), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def leaf_not_after(ca_cert: x509.Certificate, days: int, now: datetime) -> datetime:
    """A leaf never outlives its CA: clients would reject it after the CA expires anyway."""
    return min(now + timedelta(days=days), ca_cert.not_valid_after_utc)


def new_leaf(inst: CertInstance, key: PrivateKey, ca_cert: x509.Certificate, ca_key: PrivateKey,
             days: int, now: datetime) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject(inst.cn, inst.spec.org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(leaf_not_after(ca_cert, days, now))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(effective_key_usage(inst.spec.key_usage, key)), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if inst.spec.ext_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([EKU_OIDS[u] for u in inst.spec.ext_key_usage]), critical=False)
    if inst.sans:
        general: list[x509.GeneralName] = [x509.DNSName(n) for n in inst.sans.dns]
        general += [x509.IPAddress(ip) for ip in inst.sans.ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(ca_key, hashes.SHA256())
