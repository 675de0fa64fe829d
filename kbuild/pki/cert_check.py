"""`kbuild certs check`: every CA, certificate and kubeconfig with its expiry and whether it still fits the inventory.

Read-only: it uses the same loading and the same findings as `ensure`, and reports a broken file
as a row instead of stopping, so one run shows everything that needs attention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kbuild.inventory import Cluster
from kbuild.pki import encryption, kubeconfig, trust
from kbuild.pki.assess import (
    EXPIRED,
    EXPIRING,
    INVALID,
    MISMATCH,
    MISSING,
    PKIFinding,
    ca_findings,
    cert_subject,
    days_left,
    leaf_findings,
)
from kbuild.pki.certlist import ENCRYPTION_CONFIG, SERVICE_ACCOUNT, instances, kubeconfig_instances
from kbuild.pki.errors import PKIError
from kbuild.pki.keys import public_pem_matches
from kbuild.pki.store import Pair, StateFiles, check_state_dir, load_key, load_pair, read_bytes
from kbuild.state import loose_permissions

OK = "ok"
# The worst finding names the row's state.
_SEVERITY = (INVALID, MISSING, EXPIRED, EXPIRING, MISMATCH)


@dataclass(frozen=True)
class CertStatus:
    name: str
    kind: str  # ca | certificate | kubeconfig | key-pair | encryption-config
    path: Path
    state: str  # ok | invalid | missing | expired | expiring | mismatch
    subject: str | None = None
    not_after: datetime | None = None
    residual: str = "-"
    ca: str | None = None
    matches: bool = True  # still what the inventory asks for
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state == OK

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["not_after"] = self.not_after.isoformat() if self.not_after else None
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class CheckReport:
    state_dir: Path
    statuses: tuple[CertStatus, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.statuses)

    def as_json(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "ok": self.ok,
                "certificates": [s.as_json() for s in self.statuses], "warnings": list(self.warnings)}


def residual(not_after: datetime | None, now: datetime) -> str:
    """Time left, the way kubeadm prints it: 9y, 364d, 5h, or <invalid> once expired."""
    if not_after is None:
        return "-"
    seconds = (not_after - now).total_seconds()
    if seconds <= 0:
        return "<invalid>"
    days = seconds / 86400
    if days >= 365 * 2:
        return f"{int(days // 365)}y"
    if days >= 1:
        return f"{int(days)}d"
    return f"{int(seconds // 3600)}h"


def check(cluster: Cluster, *, now: datetime | None = None) -> CheckReport:
    """The state of every PKI item of `cluster`; writes nothing."""
    now = now or datetime.now(UTC)
    files = StateFiles(cluster.state_dir)
    check_state_dir(files.root)
    pki = cluster.pki
    rows: list[CertStatus] = []
    cas: dict[str, x509.Certificate | None] = {}
    leaf_pems: dict[str, bytes | None] = {}
    trusted = trust.recorded_quietly(files)

    for inst in instances(cluster):
        path = files.cert(inst.file)
        kind = "ca" if inst.spec.is_ca else "certificate"
        try:
            pair = load_pair(files, inst.file, signer=inst.spec.is_ca)
        except PKIError as exc:
            rows.append(CertStatus(inst.name, kind, path, INVALID,
                                   ca=inst.ca, matches=False, problems=tuple(exc.message.splitlines())))
            cas[inst.name] = None
            leaf_pems[inst.name] = None
            continue
        if inst.spec.is_ca:
            cas[inst.name] = pair.cert
            findings = ca_findings(pair, (str(path), str(files.key(inst.file))), pki.renew_before_days, now)
            recorded = trusted.get(inst.name)
            if not findings and pair.cert is not None and recorded and recorded != trust.fingerprint(pair.cert):
                findings = [PKIFinding(INVALID, f"not the CA this cluster was set up with ({trust.path_of(files)} "
                                             f"records {recorded})", False)]
        else:
            leaf_pems[inst.name] = pair.cert_pem
            ca_cert = cas.get(inst.ca or "")
            findings = leaf_findings(inst, pair, ca_cert, pki.key_algorithm, pki.cert_validity_days,
                                     pki.renew_before_days, now)
        rows.append(_row(inst.name, kind, path, pair, inst.ca, findings, now))

    rows.append(_service_account_row(files))
    for kc in kubeconfig_instances(cluster):
        rows.append(_kubeconfig_row(files, kc.name, kc.file, kc.server, kc.cert, cas.get("ca"),
                                    leaf_pems.get(kc.cert), pki.renew_before_days, now))
    rows.append(_encryption_row(files, cluster.settings.encryption_at_rest))
    warnings = tuple(loose_permissions(files.root))
    return CheckReport(files.root, tuple(rows), warnings)


def _state(findings: list[PKIFinding]) -> str:
    kinds = {f.kind for f in findings}
    return next((k for k in _SEVERITY if k in kinds), OK)


def _row(name: str, kind: str, path: Path, pair: Pair, ca: str | None, findings: list[PKIFinding],
         now: datetime) -> CertStatus:
    cert = pair.cert
    return CertStatus(
        name=name, kind=kind, path=path, state=_state(findings),
        subject=cert_subject(cert) if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
        residual=residual(cert.not_valid_after_utc, now) if cert else "-",
        ca=ca, matches=not any(f.kind in (MISMATCH, INVALID) for f in findings),
        problems=tuple(f.message for f in findings),
    )


def _service_account_row(files: StateFiles) -> CertStatus:
    path = files.sa_key
    try:
        key, _ = load_key(path)
        pub = read_bytes(files.sa_pub)
    except PKIError as exc:
        return CertStatus(SERVICE_ACCOUNT.name, SERVICE_ACCOUNT.kind, path, INVALID, matches=False,
                          problems=(exc.message,))
    if key is None:
        return CertStatus(SERVICE_ACCOUNT.name, SERVICE_ACCOUNT.kind, path, MISSING, problems=("missing",))
    if not public_pem_matches(pub, key):
        return CertStatus(SERVICE_ACCOUNT.name, SERVICE_ACCOUNT.kind, path, MISMATCH, matches=False,
                          problems=("sa.pub is missing or does not match sa.key",))
    return CertStatus(SERVICE_ACCOUNT.name, SERVICE_ACCOUNT.kind, path, OK)


def _kubeconfig_row(files: StateFiles, name: str, file: str, server: str, cert_name: str,
                    ca_cert: x509.Certificate | None, leaf_pem: bytes | None, renew_before_days: int,
                    now: datetime) -> CertStatus:
    path = files.kubeconfig(file)
    try:
        data = read_bytes(path)
    except PKIError as exc:
        return CertStatus(name, "kubeconfig", path, INVALID, ca="ca", matches=False, problems=(exc.message,))
    if data is None:
        return CertStatus(name, "kubeconfig", path, MISSING, ca="ca", problems=("missing",))
    try:
        parsed = kubeconfig.parse(data)
        cert = x509.load_pem_x509_certificate(parsed.cert_pem)
    except ValueError as exc:
        return CertStatus(name, "kubeconfig", path, INVALID, ca="ca", matches=False,
                          problems=(str(exc).splitlines()[0],))
    findings: list[PKIFinding] = []
    left = days_left(cert, now)
    if left <= 0:
        findings.append(PKIFinding(EXPIRED, f"embedded certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"))
    elif left < renew_before_days:
        findings.append(PKIFinding(EXPIRING, f"embedded certificate expires in {left:.0f} days"))
    if parsed.server != server:
        findings.append(PKIFinding(MISMATCH, f"server is {parsed.server}, the inventory says {server}"))
    if ca_cert is None or parsed.ca_pem != ca_cert.public_bytes(Encoding.PEM):
        findings.append(PKIFinding(MISMATCH, "embeds a CA other than the current one"))
    if leaf_pem is None or parsed.cert_pem != leaf_pem:
        findings.append(PKIFinding(MISMATCH, f"embeds a client certificate other than {cert_name}'s current one"))
    return CertStatus(name, "kubeconfig", path, _state(findings), subject=cert_subject(cert),
                      not_after=cert.not_valid_after_utc, residual=residual(cert.not_valid_after_utc, now),
                      ca="ca", matches=not any(f.kind == MISMATCH for f in findings),
                      problems=tuple(f.message for f in findings))


def _encryption_row(files: StateFiles, enabled: bool) -> CertStatus:
    path = files.encryption_config
    try:
        data = read_bytes(path)
        if data is not None:
            encryption.validate(path, data)
    except PKIError as exc:
        return CertStatus(ENCRYPTION_CONFIG.name, ENCRYPTION_CONFIG.kind, path, INVALID, matches=False,
                          problems=(exc.message,))
    if data is None:
        if not enabled:
            return CertStatus(ENCRYPTION_CONFIG.name, ENCRYPTION_CONFIG.kind, path, OK,
                              problems=("not used: cluster.encryption_at_rest is off",))
        return CertStatus(ENCRYPTION_CONFIG.name, ENCRYPTION_CONFIG.kind, path, MISSING, problems=("missing",))
    return CertStatus(ENCRYPTION_CONFIG.name, ENCRYPTION_CONFIG.kind, path, OK)
