"""Judge an existing CA or certificate against the table and the inventory: what, if anything, is wrong with it.

The same findings drive `ensure` (reuse or reissue, with the reason) and `kbuild certs check`
(the status column), so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kbuild.pki.certlist import CLIENT, SERVER, CertInstance
from kbuild.pki.issue import KEY_USAGE_FIELDS, effective_key_usage, leaf_not_after
from kbuild.pki.keys import algorithm_of, same_public_key
from kbuild.pki.sans import AltNames
from kbuild.pki.store import Pair

MISSING, INVALID, EXPIRED, EXPIRING, MISMATCH = "missing", "invalid", "expired", "expiring", "mismatch"
_EKU_NAMES = {ExtendedKeyUsageOID.SERVER_AUTH: SERVER, ExtendedKeyUsageOID.CLIENT_AUTH: CLIENT}


@dataclass(frozen=True)
class PKIFinding:
    """One thing wrong with a certificate; `fixable` says whether reissuing it from its current CA would help."""

    kind: str  # missing | invalid | expired | expiring | mismatch
    message: str
    fixable: bool = True


# -- reading certificate fields -----------------------------------------------------------------------


def common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def organizations(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))


def describe_subject(cn: str, org: tuple[str, ...]) -> str:
    return ",".join([f"CN={cn}", *(f"O={o}" for o in org)])


def cert_subject(cert: x509.Certificate) -> str:
    return describe_subject(common_name(cert), organizations(cert))


def cert_sans(cert: x509.Certificate) -> AltNames:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return AltNames()
    ips = [ip for ip in ext.get_values_for_type(x509.IPAddress) if isinstance(ip, (IPv4Address, IPv6Address))]
    return AltNames(tuple(ext.get_values_for_type(x509.DNSName)), tuple(ips))


def key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name for name in KEY_USAGE_FIELDS if getattr(ku, name))


def ext_key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """The chain check: issuer name matches the CA's subject and the CA's key verifies the signature."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def days_left(cert: x509.Certificate, now: datetime) -> float:
    return (cert.not_valid_after_utc - now) / timedelta(days=1)


# -- judging -----------------------------------------------------------------------------------------------


def ca_findings(pair: Pair, files: tuple[str, str], renew_before_days: int, now: datetime) -> list[PKIFinding]:
    """What is wrong with a CA. A CA is never reissued silently, so nothing here is `fixable`."""
    cert_file, key_file = files
    if pair.absent:
        return [PKIFinding(MISSING, "missing")]
    if pair.cert is None:
        return [PKIFinding(INVALID, f"{key_file} exists but {cert_file} does not; restore the CA certificate "
                                 "(or move the key away to create a new CA if no cluster uses it)", False)]
    if pair.key is None:
        return [PKIFinding(INVALID, f"{cert_file} exists but its key {key_file} does not; kbuild needs the CA "
                                 "key to sign certificates: restore it", False)]
    cert = pair.cert
    if not same_public_key(pair.key, cert.public_key()):
        return [PKIFinding(INVALID, f"{key_file} is not the private key of {cert_file}", False)]
    if not is_ca(cert):
        return [PKIFinding(INVALID, f"{cert_file} is not a CA certificate (basicConstraints CA:FALSE)", False)]
    if cert.issuer == cert.subject and not signed_by(cert, cert):
        return [PKIFinding(INVALID, f"{cert_file}: the self-signature does not verify", False)]
    if cert.not_valid_before_utc > now:
        return [PKIFinding(INVALID, f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
                                 "(is this machine's clock right?)", False)]
    left = days_left(cert, now)
    if left <= 0:
        return [PKIFinding(EXPIRED, f"expired on {cert.not_valid_after_utc:%Y-%m-%d}", False)]
    if left < renew_before_days:
        return [PKIFinding(EXPIRING, f"expires in {_days(left)} (within renew_before_days={renew_before_days}); "
                                  "certificates it signs cannot outlive it", False)]
    return []


def leaf_findings(inst: CertInstance, pair: Pair, ca_cert: x509.Certificate | None, algorithm: str,
                  validity_days: int, renew_before_days: int, now: datetime) -> list[PKIFinding]:
    """Everything that makes an existing certificate unfit for the inventory as it is now."""
    if pair.absent:
        return [PKIFinding(MISSING, "missing")]
    if pair.cert is None:
        return [PKIFinding(MISSING, "certificate missing (key present)")]
    if pair.key is None:
        return [PKIFinding(MISSING, "key missing (certificate present)")]
    cert = pair.cert
    found: list[PKIFinding] = []
    if not same_public_key(pair.key, cert.public_key()):
        found.append(PKIFinding(MISMATCH, "the private key does not match the certificate"))
    if ca_cert is None or not signed_by(cert, ca_cert):
        found.append(PKIFinding(MISMATCH, f"not signed by the current {inst.ca} CA"))

    left = days_left(cert, now)
    # Reissuing helps only if the new certificate would live longer (a leaf is capped at its CA's end).
    longer = ca_cert is not None and leaf_not_after(ca_cert, validity_days, now) > \
        cert.not_valid_after_utc + timedelta(days=1)
    if cert.not_valid_before_utc > now:
        found.append(PKIFinding(MISMATCH, f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))
    elif left <= 0:
        found.append(PKIFinding(EXPIRED, f"expired on {cert.not_valid_after_utc:%Y-%m-%d}", longer))
    elif left < renew_before_days:
        found.append(PKIFinding(EXPIRING, f"expires in {_days(left)} (renew_before_days={renew_before_days})",
                             longer))

    want = describe_subject(inst.cn, inst.spec.org)
    have = cert_subject(cert)
    if common_name(cert) != inst.cn or sorted(organizations(cert)) != sorted(inst.spec.org):
        found.append(PKIFinding(MISMATCH, f"subject is {have}, the inventory needs {want}"))
    have_sans = cert_sans(cert)
    if not have_sans.same_set(inst.sans):
        lacking, extra = inst.sans.diff(have_sans)
        parts = [f"lacks {', '.join(lacking)}"] if lacking else []
        parts += [f"has extra {', '.join(extra)}"] if extra else []
        found.append(PKIFinding(MISMATCH, f"SANs differ from the inventory: {'; '.join(parts)}"))
    if is_ca(cert):
        found.append(PKIFinding(MISMATCH, "is a CA certificate; expected a leaf"))
    wanted_ku = set(effective_key_usage(inst.spec.key_usage, cert.public_key()))
    if set(key_usages(cert)) != wanted_ku:
        found.append(PKIFinding(MISMATCH, f"key usage is {', '.join(key_usages(cert)) or 'absent'}, "
                                       f"expected {', '.join(sorted(wanted_ku))}"))
    if set(ext_key_usages(cert)) != set(inst.spec.ext_key_usage):
        found.append(PKIFinding(MISMATCH, f"extended key usage is {', '.join(ext_key_usages(cert)) or 'absent'}, "
                                       f"expected {', '.join(inst.spec.ext_key_usage) or 'none'}"))
    have_alg = algorithm_of(cert.public_key())
    if have_alg != algorithm:
        found.append(PKIFinding(MISMATCH, f"key is {have_alg}, the inventory asks for {algorithm}"))
    return found


def _days(left: float) -> str:
    return f"{left:.0f} days" if left >= 1 else f"{left * 24:.0f} hours"
