"""Generate the cluster PKI or reuse what exists: load everything, decide per item, then write.

Nothing is written until every existing file has been loaded and judged, so a corrupt key, a
broken CA or a bad SAN stops the run with the PKI on disk byte-for-byte as it was. Each item
ends as created, reused, reissued (a leaf or kubeconfig made again, with the reason) or
replaced (a CA, only with force_new_ca, after the old PKI is copied to backups/).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kbuild.inventory import Cluster
from kbuild.pki import encryption, kubeconfig, trust
from kbuild.pki.assess import EXPIRING, MISSING, ca_findings, common_name, leaf_findings
from kbuild.pki.certlist import (
    ENCRYPTION_CONFIG,
    KUBECONFIGS,
    SERVICE_ACCOUNT,
    CertInstance,
    KubeconfigInstance,
    instances,
    kubeconfig_instances,
)
from kbuild.pki.errors import PKIError
from kbuild.pki.issue import new_ca, new_leaf
from kbuild.pki.keys import PrivateKey, new_key, private_pem, public_pem, public_pem_matches
from kbuild.pki.store import PKI_DIR, Pair, StateFiles, check_state_dir, load_key, load_pair, make_dirs, read_bytes
from kbuild.state import PUBLIC_MODE, SECRET_MODE, ensure_dir, loose_permissions, tighten_permissions, write_atomic


class Action(str, Enum):
    CREATED = "created"
    REUSED = "reused"
    REISSUED = "reissued"
    REPLACED = "replaced"  # a CA, only when asked with force_new_ca


@dataclass(frozen=True)
class Outcome:
    name: str  # "ca", "apiserver", "etcd-server/m1", "admin.conf", "kubelet.conf/w1", "sa", "encryption-config"
    kind: str  # ca | certificate | key-pair | kubeconfig | encryption-config
    action: Action
    reason: str = ""
    paths: tuple[Path, ...] = ()

    @property
    def changed(self) -> bool:
        return self.action is not Action.REUSED


@dataclass(frozen=True)
class EnsureReport:
    state_dir: Path
    outcomes: tuple[Outcome, ...]
    warnings: tuple[str, ...] = ()
    backup: Path | None = None  # where force_new_ca copied the previous PKI
    dry_run: bool = False
    written: dict[Path, bytes] = field(default_factory=dict, repr=False)  # what the run wrote (dry: would write)

    def read(self, path: Path) -> bytes | None:
        """A file of the PKI as this run leaves it: what it wrote (or in a dry run would write), else the disk's.

        So check mode can show every host's PKI files without one byte written (kbuild.pki.host_files).
        """
        return self.written[path] if path in self.written else read_bytes(path)

    @property
    def changed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.changed)

    def get(self, name: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.name == name:
                return outcome
        raise KeyError(name)


@dataclass
class _Material:
    cert: x509.Certificate
    key: PrivateKey
    cert_pem: bytes
    key_pem: bytes
    fresh: bool  # made in this run

    @classmethod
    def reused(cls, pair: Pair) -> _Material:
        """A complete pair found on disk and kept as it is."""
        assert pair.cert and pair.key and pair.cert_pem and pair.key_pem
        return cls(pair.cert, pair.key, pair.cert_pem, pair.key_pem, False)


@dataclass
class _Run:
    cluster: Cluster
    files: StateFiles
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    writes: list[tuple[Path, bytes, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    materials: dict[str, _Material] = field(default_factory=dict)
    trusted: dict[str, str] = field(default_factory=dict)  # CA name -> fingerprint recorded on first use

    def write(self, path: Path, data: bytes, mode: int) -> None:
        self.writes.append((path, data, mode))


def ensure(cluster: Cluster, *, renew: Iterable[str] = (), force_new_ca: bool = False, dry_run: bool = False,
           now: datetime | None = None) -> EnsureReport:
    """Make the state directory hold a complete, current PKI for `cluster`; say what was done to each item.

    renew: certificate names ("apiserver", or "kubelet-client" for every node, or "kubelet-client/w1")
    to reissue from their CA even if they are fine. force_new_ca: replace every CA (and so every
    certificate); dangerous, see `kbuild certs generate --help`. dry_run: decide, write nothing.
    """
    run = _Run(cluster, StateFiles(cluster.state_dir), now or datetime.now(UTC))
    check_state_dir(run.files.root)
    run.trusted = trust.recorded(run.files)
    certs = instances(cluster)  # raises PKIError for a SAN that is neither a name nor an address
    renew_names = select(certs, renew)
    pairs, corrupt = _load_pairs(run.files, certs, tolerate=force_new_ca)

    existed_before = any(not p.absent for p in pairs.values()) or bool(corrupt)
    for inst in certs:
        if inst.spec.is_ca:
            signed = [c.name for c in certs if c.ca == inst.name and not pairs[c.name].absent]
            _ca(run, inst, pairs[inst.name], force_new_ca, require=bool(renew_names), signed=signed)
    for inst in certs:
        if not inst.spec.is_ca:
            _leaf(run, inst, pairs[inst.name], corrupt.get(inst.name), inst.name in renew_names)
    _service_account_keys(run)
    for kc in kubeconfig_instances(cluster):
        _kubeconfig(run, kc)
    _encryption_config(run)

    backup = None
    if not dry_run:
        if force_new_ca and existed_before:
            backup = _backup(run.files, run.now)
        for path, data, mode in run.writes:
            make_dirs(run.files.root, path)
            write_atomic(path, data, mode)
        cas = {inst.name: trust.fingerprint(run.materials[inst.name].cert) for inst in certs if inst.spec.is_ca}
        trust.record(run.files, cas)
        # Keys others could read are fixed, not just reported: the next run must not find them so again.
        run.warnings += tighten_permissions(run.files.root)
    else:
        run.warnings += loose_permissions(run.files.root)
    return EnsureReport(run.files.root, tuple(run.outcomes), tuple(run.warnings), backup, dry_run,
                        {path: data for path, data, _ in run.writes})


def select(certs: list[CertInstance], names: Iterable[str]) -> set[str]:
    """Instance names for requested names: a table name selects all its hosts' certificates.

    A kubeconfig's name (admin.conf, kubelet.conf/w1) stands for its client certificate, as in
    `kubeadm certs renew admin.conf`.
    """
    aliases = {spec.name: spec.cert for spec in KUBECONFIGS}
    chosen: set[str] = set()
    for name in names:
        base, _, host = name.partition("/")
        wanted = f"{aliases[base]}/{host}" if base in aliases and host else aliases.get(name, name)
        matches = [c for c in certs if wanted in (c.name, c.spec.name)]
        if not matches:
            known = ", ".join(dict.fromkeys(c.spec.name for c in certs if not c.spec.is_ca))
            raise PKIError(f"no certificate named {name!r}",
                           hint=f"known: {known} (NAME/HOST for one host; kubeconfig names such as "
                                "admin.conf stand for their client certificate)")
        if any(c.spec.is_ca for c in matches):
            raise PKIError(f"{name!r} is a CA; a CA is not renewed with the certificates it signs",
                           hint="replacing CAs is `kbuild certs generate --force-new-ca` (read its help first)")
        chosen |= {c.name for c in matches}
    return chosen


# -- loading ------------------------------------------------------------------------------------------------


def _load_pairs(files: StateFiles, certs: list[CertInstance],
                tolerate: bool) -> tuple[dict[str, Pair], dict[str, str]]:
    """Load every certificate and key; any corrupt file stops here, naming them all (nothing written yet)."""
    pairs: dict[str, Pair] = {}
    corrupt: dict[str, str] = {}
    problems: list[str] = []
    for inst in certs:
        try:
            pairs[inst.name] = load_pair(files, inst.file, signer=inst.spec.is_ca)
        except PKIError as exc:
            pairs[inst.name] = Pair()
            corrupt[inst.name] = exc.message
            problems.append(exc.message)
    if problems and not tolerate:
        raise PKIError("cannot use the existing PKI; nothing was changed:\n  " + "\n  ".join(problems),
                       hint="restore the named files from a backup, or move a broken leaf certificate and "
                            "its key away to have it reissued")
    return pairs, corrupt


# -- deciding, item by item -----------------------------------------------------------------------------


def _ca(run: _Run, inst: CertInstance, pair: Pair, force: bool, require: bool, signed: list[str]) -> None:
    files = run.files
    paths = (files.cert(inst.file), files.key(inst.file))
    if not force:
        findings = ca_findings(pair, (str(paths[0]), str(paths[1])), run.cluster.pki.renew_before_days, run.now)
        if pair.cert is not None and (not findings or findings[0].kind == EXPIRING):
            # A sound CA is reused: only if it is the one recorded (what is wrong with a broken one comes first).
            trust.check(files, inst.name, paths[0], pair.cert, run.trusted)
        if not findings:
            run.materials[inst.name] = _Material.reused(pair)
            run.outcomes.append(Outcome(inst.name, "ca", Action.REUSED, "", paths))
            return
        finding = findings[0]
        if finding.kind == EXPIRING:
            run.materials[inst.name] = _Material.reused(pair)
            run.outcomes.append(Outcome(inst.name, "ca", Action.REUSED, finding.message, paths))
            run.warnings.append(f"{paths[0]}: CA {inst.name} {finding.message}; plan its replacement "
                                "(kbuild certs generate --force-new-ca)")
            return
        if finding.kind != MISSING:
            raise PKIError(f"{paths[0]}: CA {inst.name}: {finding.message}; nothing was changed",
                           hint="a CA is never replaced silently: restore it, or replace every CA with "
                                "`kbuild certs generate --force-new-ca` (all certificates are reissued and "
                                "must be redeployed)")
        if require:
            raise PKIError(f"{paths[0]}: CA {inst.name} does not exist, so there is nothing to renew",
                           hint=f"create the PKI first: {run.cluster.command('certs generate')}")
        if signed:
            # A lost CA whose certificates are still around is most likely deployed: a new one would
            # silently cut every host off from the others.
            raise PKIError(f"{paths[0]}: CA {inst.name} is missing, but certificates it signed exist "
                           f"({', '.join(signed[:3])}{' ...' if len(signed) > 3 else ''}); nothing was changed",
                           hint="restore the CA (ca.crt and ca.key) from a backup, or replace every CA with "
                                "`kbuild certs generate --force-new-ca`")
    key = new_key(run.cluster.pki.key_algorithm)
    cert = new_ca(inst.cn, key, inst.spec.key_usage, run.cluster.pki.ca_validity_days, run.now)
    material = _Material(cert, key, _pem(cert), private_pem(key), True)
    run.materials[inst.name] = material
    existed = not pair.absent or (force and _exists_any(paths))
    action, reason = (Action.REPLACED, "replaced as asked (--force-new-ca)") if existed else (Action.CREATED, "")
    run.outcomes.append(Outcome(inst.name, "ca", action, reason, paths))
    run.write(paths[1], material.key_pem, SECRET_MODE)
    run.write(paths[0], material.cert_pem, PUBLIC_MODE)


def _leaf(run: _Run, inst: CertInstance, pair: Pair, corrupt: str | None, renew: bool) -> None:
    files, pki = run.files, run.cluster.pki
    paths = (files.cert(inst.file), files.key(inst.file))
    assert inst.ca is not None
    ca = run.materials[inst.ca]
    findings = leaf_findings(inst, pair, ca.cert, pki.key_algorithm, pki.cert_validity_days,
                             pki.renew_before_days, run.now)
    fixable = [f for f in findings if f.fixable]
    reasons = [f.message for f in findings]
    if corrupt:
        reasons = [f"unreadable ({corrupt.splitlines()[0]})"]
    elif renew:
        reasons = ["renewal requested", *reasons]
    if not (fixable or renew or corrupt):
        run.materials[inst.name] = _Material.reused(pair)
        run.outcomes.append(Outcome(inst.name, "certificate", Action.REUSED, "; ".join(reasons), paths))
        for f in findings:  # kept, but cannot be fixed from this CA (it ends first)
            run.warnings.append(f"{paths[0]}: {f.message}; reissuing would not help: its signing CA "
                                f"({inst.ca}) expires first (renew the CA with `kbuild certs generate --force-new-ca`)")
        return
    key = new_key(pki.key_algorithm)
    cert = new_leaf(inst, key, ca.cert, ca.key, pki.cert_validity_days, run.now)
    run.materials[inst.name] = _Material(cert, key, _pem(cert), private_pem(key), True)
    created = pair.absent and not corrupt and not renew
    run.outcomes.append(Outcome(inst.name, "certificate", Action.CREATED if created else Action.REISSUED,
                                "" if created else "; ".join(reasons), paths))
    # The key goes first: if the run stops between the two, the next run sees a key that does
    # not match the certificate and reissues, instead of trusting a stale pair.
    run.write(paths[1], private_pem(key), SECRET_MODE)
    run.write(paths[0], _pem(cert), PUBLIC_MODE)


def _service_account_keys(run: _Run) -> None:
    """sa.key signs service-account tokens; like a CA it is never replaced (that would void every token)."""
    key_path, pub_path = run.files.sa_key, run.files.sa_pub
    paths = (key_path, pub_path)
    key, _ = load_key(key_path)
    pub_pem = read_bytes(pub_path)
    if key is None:
        if pub_pem is not None:
            raise PKIError(f"{pub_path} exists but {key_path} does not; nothing was changed",
                           hint="restore sa.key, or move sa.pub away to create a new pair (every existing "
                                "service-account token becomes invalid)")
        key = new_key(run.cluster.pki.key_algorithm)
        run.write(key_path, private_pem(key), SECRET_MODE)
        run.write(pub_path, public_pem(key), PUBLIC_MODE)
        run.outcomes.append(Outcome(SERVICE_ACCOUNT.name, SERVICE_ACCOUNT.kind, Action.CREATED, "", paths))
        return
    if pub_pem is None:
        reason = "sa.pub was missing; derived again from sa.key"
    else:
        reason = "" if public_pem_matches(pub_pem, key) else "sa.pub did not match sa.key; derived again from sa.key"
    if reason:
        run.write(pub_path, public_pem(key), PUBLIC_MODE)
    action = Action.REISSUED if reason else Action.REUSED
    run.outcomes.append(Outcome(SERVICE_ACCOUNT.name, SERVICE_ACCOUNT.kind, action, reason, paths))


def _kubeconfig(run: _Run, kc: KubeconfigInstance) -> None:
    path = run.files.kubeconfig(kc.file)
    client, ca = run.materials[kc.cert], run.materials["ca"]
    wanted = kubeconfig.KubeconfigData(kc.server, ca.cert_pem, client.cert_pem, client.key_pem)
    content = kubeconfig.render(run.cluster.name, common_name(client.cert), wanted)
    existing = read_bytes(path)
    if existing == content:
        run.outcomes.append(Outcome(kc.name, "kubeconfig", Action.REUSED, "", (path,)))
        return
    if existing is None:
        action, reason = Action.CREATED, ""
    else:
        action, reason = Action.REISSUED, _kubeconfig_difference(existing, wanted)
    run.outcomes.append(Outcome(kc.name, "kubeconfig", action, reason, (path,)))
    run.write(path, content, SECRET_MODE)


def _kubeconfig_difference(existing: bytes, wanted: kubeconfig.KubeconfigData) -> str:
    try:
        have = kubeconfig.parse(existing)
    except ValueError as exc:
        return f"unreadable ({exc}); written again"
    reasons = []
    if have.server != wanted.server:
        reasons.append(f"server was {have.server}, now {wanted.server}")
    if have.ca_pem != wanted.ca_pem:
        reasons.append("embedded a different CA")
    if have.cert_pem != wanted.cert_pem or have.key_pem != wanted.key_pem:
        reasons.append("embedded an older client certificate")
    return "; ".join(reasons) or "differed from what kbuild writes (edited by hand?)"


def _encryption_config(run: _Run) -> None:
    path = run.files.encryption_config
    existing = read_bytes(path)
    if existing is not None:
        encryption.validate(path, existing)
        run.outcomes.append(Outcome(ENCRYPTION_CONFIG.name, ENCRYPTION_CONFIG.kind, Action.REUSED, "", (path,)))
        return
    if not run.cluster.settings.encryption_at_rest:
        return
    run.write(path, encryption.new_config(), SECRET_MODE)
    run.outcomes.append(Outcome(ENCRYPTION_CONFIG.name, ENCRYPTION_CONFIG.kind, Action.CREATED, "", (path,)))


# -- helpers ------------------------------------------------------------------------------------------------


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def _exists_any(paths: tuple[Path, ...]) -> bool:
    return any(p.exists() for p in paths)


def _backup(files: StateFiles, now: datetime) -> Path:
    """Copy the PKI and kubeconfigs aside before CAs are replaced: the old ones may still be needed."""
    ensure_dir(files.root)
    ensure_dir(files.backups)
    target = files.backups / f"pki-{now:%Y%m%dT%H%M%SZ}"
    suffix = 1
    while target.exists():
        target = files.backups / f"pki-{now:%Y%m%dT%H%M%SZ}-{suffix}"
        suffix += 1
    ensure_dir(target)
    # pki/ and wherever the table keeps kubeconfigs (admin.conf, kubeconfigs/).
    for name in dict.fromkeys([PKI_DIR, *(Path(kc.file).parts[0] for kc in KUBECONFIGS)]):
        source = files.root / name
        if source.is_dir():
            shutil.copytree(source, target / name, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, target / name)
    return target
