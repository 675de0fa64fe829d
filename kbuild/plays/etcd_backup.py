"""etcd snapshots on the controller: take one from a healthy member (`kbuild etcd snapshot save`, and
automatically before an upgrade or a restore) or fetch the newest scheduled one from the hosts.

Every snapshot is streamed to a hidden temporary file, verified (sha256 on both sides, etcd's own
integrity hash, `snapshot status` on the host), and only then renamed into place: a failed or
partial snapshot never replaces a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from kbuild import __version__
from kbuild.engine.runner import HostStatus
from kbuild.engine.shell import Raw
from kbuild.engine.ssh import Connection
from kbuild.errors import ExitCode, KbuildError, UnreachableError, UsageError
from kbuild.inventory import Cluster
from kbuild.plays.etcd_ops import snapfile
from kbuild.plays.etcd_ops.commands import (
    SNAPSHOT_TIMEOUT,
    SnapshotStatus,
    client_url,
    ctl,
    parse_snapshot_status,
    snapshot_status,
)
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.etcd_ops.probe import MARK, HostProbe, probe_hosts, sections
from kbuild.plays.phases import Context

REMOTE_TMP = "/var/tmp"


class SnapshotError(KbuildError):
    """No snapshot could be taken or fetched; nothing already stored was touched."""


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot on the controller, with its metadata file next to it."""

    path: Path  # the .db
    metadata: dict[str, Any] = field(compare=False)  # cluster, member, etcd_version, revision, sha256, size, ...
    metadata_path: Path  # <path>.json, next to it
    pruned: tuple[Path, ...] = ()  # older snapshots `keep` removed

    @property
    def revision(self) -> int:
        return int(self.metadata["revision"])

    @property
    def sha256(self) -> str:
        return str(self.metadata["sha256"])

    @property
    def etcd_version(self) -> str:
        return str(self.metadata["etcd_version"])

    def describe(self) -> str:
        m = self.metadata
        return (f"{self.path} ({_mb(int(m['size']))}, revision {m['revision']}, {m['total_keys']} keys, "
                f"etcd {m['etcd_version']}, from {m['member']}, sha256 {str(m['sha256'])[:12]}…)")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def choose_source(probes: dict[str, HostProbe | None]) -> str:
    """The member to snapshot: a healthy follower (spares the leader), else the healthy leader.

    Healthy means `endpoint health` passed, which needs a quorum: a member cut off from the others
    could serve stale data and is never chosen.
    """
    healthy = [p for p in probes.values() if p is not None and p.healthy]
    followers = [p for p in healthy if p.status is not None and not p.status.is_leader]
    chosen = followers or healthy
    if not chosen:
        states = "; ".join(f"{name}: {'unreachable' if p is None else p.describe()}" for name, p in probes.items())
        error = SnapshotError(f"no healthy etcd member to take a snapshot from ({states}); nothing was written",
                              hint="`kbuild etcd status` shows the members; a snapshot needs a member in quorum")
        if all(p is None for p in probes.values()):
            error.exit_code = ExitCode.UNREACHABLE  # the README's table: no member could be reached at all
        raise error
    return chosen[0].name


def resolve_output(cluster: Cluster, output: Path | None, name: str) -> Path:
    """Where the snapshot goes: `output` (a file, or a directory to put it in) or the state dir's backups/."""
    if output is None:
        return snapfile.backups_dir(cluster.state_dir) / name
    target = output.expanduser().absolute()
    if target.is_dir():
        target = target / name
    if not target.parent.is_dir():
        raise UsageError(f"--output: directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"--output: directory {target.parent} is not writable")
    return target


class _HashingSink:
    """A file sink for Connection.run that hashes and counts what it writes, showing progress."""

    def __init__(self, handle: BinaryIO, progress) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self._progress = progress
        self._last = 0.0

    def write(self, data: bytes) -> int:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)
        now = time.monotonic()
        if now - self._last > 0.2:
            self._last = now
            self._progress(self.size)
        return len(data)


def save_script(cluster: Cluster, *, status_tool: str) -> str:
    """On the source member: save a snapshot to a private temporary directory, then describe it."""
    target = Raw('"$d/snapshot.db"')  # the private directory the script makes
    save = ctl(cluster, "snapshot", "save", target, timeout=SNAPSHOT_TIMEOUT)
    status = snapshot_status(status_tool, target)
    return "\n".join([
        "set -u", "umask 077",
        f"d=$(mktemp -d {REMOTE_TMP}/kbuild-snapshot.XXXXXX) || exit 1",
        f"echo \"{MARK} dir\"; echo \"$d\"",
        f"if ! {save} > \"$d/log\" 2>&1; then echo '{MARK} failed'; tail -n 20 \"$d/log\"; rm -rf \"$d\"; exit 1; fi",
        f"echo '{MARK} sha256'; sha256sum \"$d/snapshot.db\" | cut -d' ' -f1",
        f"echo '{MARK} size'; stat -c %s \"$d/snapshot.db\"",
        f"echo '{MARK} snapshot-status'; {status} 2>&1",
        f"echo '{MARK} endpoint-status'; {etcd_status.command(cluster)} 2>/dev/null",
    ])


@dataclass
class _Remote:
    dir: str = ""
    sha256: str = ""
    size: int = 0
    status: SnapshotStatus | None = None
    version: str = ""
    cluster_id: str = ""
    member_id: str = ""


def _parse_save(out: str) -> _Remote:
    parts = sections(out)
    remote = _Remote(dir=parts.get("dir", ""))
    if "failed" in parts:
        raise SnapshotError(f"etcdctl snapshot save failed: {parts['failed'][-1500:]}")
    try:
        remote.sha256 = parts["sha256"].split()[0]
        remote.size = int(parts["size"])
        remote.status = parse_snapshot_status(parts["snapshot-status"])
    except (KeyError, IndexError, ValueError) as exc:
        raise SnapshotError(f"the snapshot on the host could not be verified: {exc}") from None
    try:
        endpoint = etcd_status.parse(parts.get("endpoint-status", ""))[0]
        remote.version, remote.cluster_id, remote.member_id = endpoint.version, endpoint.cluster_id, endpoint.member_id
    except (IndexError, KeyError, TypeError, ValueError):
        pass  # the snapshot itself is fine; the version then comes from the inventory
    return remote


def take_snapshot(ctx: Context, *, reason: str, output: Path | None = None,
                  keep: int | None = None) -> Snapshot:
    """Take a verified snapshot from one healthy member into <state_dir>/backups/ (or `output`).

    `keep` prunes this cluster's older snapshots in the same directory down to that many.
    Raises SnapshotError (nothing stored is touched) when no snapshot can be taken and verified.
    """
    cluster: Cluster = ctx.cluster
    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be at least 1, not {keep}")
    if not cluster.etcd_hosts:
        raise SnapshotError("the inventory has no host with the etcd role")
    hosts = ctx.selected(cluster.etcd_hosts)
    if not hosts:
        raise SnapshotError("--limit leaves out every etcd host; a snapshot is taken from an etcd member",
                            hint="drop --limit, or include role:etcd")
    moment = snapfile.utc_now()
    final = resolve_output(cluster, output, snapfile.snapshot_name(cluster.name, moment, reason))
    probes = probe_hosts(ctx, hosts, phase="etcd-snapshot", describe="a healthy member to take the snapshot from")
    source = choose_source(probes)
    probe = probes[source]
    assert probe is not None
    status_tool = "etcdutl" if "etcdutl" in probe.tools else "etcdctl"
    host = cluster.host(source)
    result: dict[str, Any] = {}

    def work(conn: Connection) -> str:
        saved = conn.run(save_script(cluster, status_tool=status_tool), timeout=3600)
        if not saved.ok and MARK + " failed" not in saved.out:
            raise SnapshotError(f"snapshot on {source} failed (exit {saved.rc}): {saved.err.strip()[-800:]}")
        remote = _parse_save(saved.out)
        try:
            result["snapshot"] = _download(ctx, conn, remote, final, reason, moment, host.name,
                                           client_url(host), status_tool)
        finally:
            conn.run(f"rm -rf {shlex.quote(remote.dir)}", timeout=120)
        size = int(result["snapshot"].metadata["size"])
        return f"snapshot streamed and verified ({_mb(size)}, sha256 {result['snapshot'].sha256[:12]}…)"

    outcome = ctx.session.each("etcd-snapshot", [source], work,
                              describe=f"etcdctl snapshot save on {source}, streamed and verified")[source]
    if outcome.status is not HostStatus.OK:
        if outcome.status is HostStatus.FAILED:
            # A failed snapshot says nothing against the host for the rest of the run: the caller decides.
            ctx.session.revive(source)
        raise SnapshotError(f"no snapshot was taken from {source}: {outcome.message}; "
                            "nothing stored was replaced")
    snapshot: Snapshot = result["snapshot"]
    if keep is not None:
        stored = snapfile.list_snapshots(final.parent)
        removed = snapfile.prune(snapfile.prunable(stored, keep=keep, cluster=cluster.name, protect=final))
        snapshot = Snapshot(snapshot.path, snapshot.metadata, snapshot.metadata_path, tuple(removed))
        if removed:
            ctx.say(f"pruned {len(removed)} older snapshot(s), keeping {keep}: "
                    + ", ".join(p.name for p in removed), phase="etcd-snapshot")
    return snapshot


def _receive(conn: Connection, remote_path: str, final: Path, *, sha256: str, size: int,
             progress: Callable[[int], None], metadata: Callable[[snapfile.FileCheck], dict[str, Any]]) -> Snapshot:
    """Stream a snapshot from the host into a hidden temporary file next to `final`, check it arrived whole
    (size and sha256 as the host computed them) and is a complete etcd snapshot, then rename it into place
    and write its metadata. On any failure the temporary file goes and `final` is untouched."""
    tmp = snapfile.temporary_path(final)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            sink = _HashingSink(handle, progress)
            got = conn.run(f"cat {shlex.quote(remote_path)}", stdout_sink=sink, timeout=3600)
            handle.flush()
            os.fsync(handle.fileno())
        if not got.ok:
            raise SnapshotError(f"reading {remote_path} on {conn.target.name} failed: {got.err.strip()[-500:]}")
        if sink.size != size or sink.digest.hexdigest() != sha256:
            raise SnapshotError(f"the snapshot arrived damaged ({sink.size} of {size} bytes, sha256 "
                                f"{sink.digest.hexdigest()[:12]}… instead of {sha256[:12]}…)")
        meta = metadata(snapfile.verify_file(tmp))
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Snapshot(final, meta, snapfile.write_metadata(final, meta))


def _download(ctx: Context, conn: Connection, remote: _Remote, final: Path, reason: str,
              moment: datetime, member: str, endpoint: str, tool: str) -> Snapshot:
    status = remote.status
    assert status is not None

    def progress(done: int) -> None:
        ctx.reporter.status(member, "etcd-snapshot", f"downloading the snapshot: {_mb(done)} of {_mb(remote.size)}")

    def metadata(check: snapfile.FileCheck) -> dict[str, Any]:
        return {
            "format": snapfile.FORMAT, "cluster": ctx.cluster.name, "member": member, "endpoint": endpoint,
            "member_id": remote.member_id, "cluster_id": remote.cluster_id,
            "etcd_version": remote.version or ctx.cluster.settings.versions.etcd,
            "revision": status.revision, "hash": status.hash, "total_keys": status.total_keys,
            "total_size": status.total_size, "sha256": check.sha256, "size": check.size,
            "time": snapfile.iso(moment), "reason": reason, "file": final.name,
            "verified_with": tool, "kbuild_version": __version__,
        }

    return _receive(conn, f"{remote.dir}/snapshot.db", final, sha256=remote.sha256, size=remote.size,
                    progress=progress, metadata=metadata)


# -- fetching what the hosts' timers saved ---------------------------------------------------------------


def list_remote_script(cluster: Cluster) -> str:
    """Every scheduled snapshot in the host's backup directory with its metadata, newest name first."""
    directory = shlex.quote(cluster.etcd.backup.dir)
    return (f"for f in $(ls -1 {directory}/etcd-*.db 2>/dev/null | sort -r); do "
            f"echo \"{MARK} $f\"; cat \"$f.json\" 2>/dev/null; echo; done")


def parse_remote_list(text: str) -> list[tuple[str, dict[str, Any] | None]]:
    found = []
    for path, body in sections(text).items():
        try:
            metadata = json.loads(body) if body else None
        except ValueError:
            metadata = None
        if metadata is not None and metadata.get("format") != snapfile.FORMAT:
            metadata = None
        found.append((path, metadata))
    return found


def fetch_newest(ctx: Context, *, host: str | None = None, output: Path | None = None) -> Snapshot:
    """Copy the newest verified scheduled snapshot from the etcd hosts (or one host) to the controller."""
    cluster: Cluster = ctx.cluster
    hosts = ctx.selected(cluster.etcd_hosts)
    if host is not None:
        hosts = [h for h in hosts if h.name == host]
        if not hosts:
            raise UsageError(f"--host {host}: not an etcd host of {cluster.inventory_path}",
                             hint=f"etcd hosts: {', '.join(h.name for h in cluster.etcd_hosts)}")
    found: dict[str, list[tuple[str, dict[str, Any] | None]]] = {}

    def listing(conn: Connection) -> str:
        result = conn.run(list_remote_script(cluster), timeout=120)
        found[conn.target.name] = [(p, m) for p, m in parse_remote_list(result.out) if m is not None]
        return f"{len(found[conn.target.name])} snapshot(s) in {cluster.etcd.backup.dir}"

    outcomes = ctx.session.each("etcd-fetch", [h.name for h in hosts], listing,
                                describe=f"scheduled snapshots in {cluster.etcd.backup.dir}")
    candidates = [(meta["time"], name, path, meta) for name, items in found.items() for path, meta in items]
    if outcomes and all(o.status is HostStatus.UNREACHABLE for o in outcomes.values()):
        raise UnreachableError("no etcd host reachable to fetch a snapshot from:\n  " + "\n  ".join(
            f"{n}: {(o.message or o.status.value).strip()}" for n, o in outcomes.items()))
    if not candidates:
        raise SnapshotError(f"no scheduled snapshot with metadata in {cluster.etcd.backup.dir} on "
                            f"{', '.join(h.name for h in hosts)}",
                            hint="enable etcd.backup in the inventory and run `kbuild bootstrap`, "
                                 "or wait for the timer")
    _, name, path, meta = max(candidates)
    final = resolve_output(cluster, output, Path(path).name)
    if final.exists() and snapfile.read_metadata(final) and final.stat().st_size == int(meta["size"]) \
            and snapfile.sha256_file(final) == meta["sha256"]:
        stored = snapfile.read_metadata(final) or meta
        ctx.say(f"{final} is already here (same sha256); nothing to fetch", phase="etcd-fetch")
        return Snapshot(final, stored, snapfile.metadata_path(final))
    result: dict[str, Snapshot] = {}

    def fetch(conn: Connection) -> str:
        def metadata(check: snapfile.FileCheck) -> dict[str, Any]:
            return dict(meta, file=final.name, fetched_from=f"{conn.target.name}:{path}",
                        fetched_at=snapfile.iso(snapfile.utc_now()))

        result["snapshot"] = _receive(conn, path, final, sha256=meta["sha256"], size=int(meta["size"]),
                                      progress=lambda done: None, metadata=metadata)
        return f"fetched {path} -> {final}"

    outcome = ctx.session.each("etcd-fetch", [name], fetch, describe=f"copy {path} from {name}")[name]
    if outcome.status is not HostStatus.OK:
        raise SnapshotError(f"fetching {path} from {name} failed: {outcome.message}")
    return result["snapshot"]
