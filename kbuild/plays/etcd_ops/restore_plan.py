"""What a restore will do, decided before anything is touched: checks on the snapshot and on every host,
and the plan shown to the user. Pure: probes and the snapshot's check in, a plan (or a refusal) out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbuild.errors import ExitCode, KbuildError
from kbuild.inventory import Cluster
from kbuild.plays.etcd_ops.commands import (
    RESTORE_REVISION_BUMP,
    initial_cluster,
    peer_url,
    restore_token,
    snapshot_restore,
    snapshot_tool,
    version_tuple,
)
from kbuild.plays.etcd_ops.probe import CONTROL_PLANE_SERVICES, HostProbe, unreachable_hosts, why_missing
from kbuild.plays.etcd_ops.snapfile import FileCheck

# etcd preallocates a 64 MB WAL segment; the restored database is the snapshot's size; the upload as much.
WAL_RESERVE = 128 * 1024 * 1024


class RestoreRefused(KbuildError):
    """The restore would not be safe or cannot work; nothing was changed."""

    def __init__(self, reasons: list[str], *, hint: str | None = None, unreachable: bool = False) -> None:
        lines = ["restore refused; nothing was changed:"] + [f"  {r}" for r in reasons]
        super().__init__("\n".join(lines), hint=hint)
        self.reasons = reasons
        if unreachable:
            self.exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True)
class MemberPlan:
    host: str
    peer_url: str
    data_dir: str
    has_data: bool  # something is at data_dir now (it is moved aside, never deleted)
    aside: str
    upload: str  # where the snapshot is copied on the host, next to the data dir (same filesystem)
    restore_command: str


@dataclass(frozen=True)
class RestorePlan:
    cluster: str
    snapshot: Path
    check: FileCheck
    metadata: dict[str, Any] | None
    stamp: str
    token: str
    tool: str
    target_version: str
    initial_cluster: str
    members: tuple[MemberPlan, ...]
    control_planes: tuple[str, ...]
    pre_snapshot_from: str | None  # a healthy member; None: etcd is not healthy, no automatic snapshot
    notes: tuple[str, ...] = ()

    def member(self, name: str) -> MemberPlan:
        return next(m for m in self.members if m.host == name)

    def describe(self) -> list[str]:
        m = self.metadata or {}
        size = f"{self.check.size / 1e6:.1f} MB"
        origin = (f"revision {m.get('revision')}, {m.get('total_keys')} keys, taken {m.get('time')} from "
                  f"{m.get('member')} (etcd {m.get('etcd_version')}), reason: {m.get('reason')}"
                  if self.metadata else "no kbuild metadata next to it")
        names = ", ".join(x.host for x in self.members)
        planes = ", ".join(self.control_planes) or "(no control-plane host)"
        lines = [
            f"restore plan for cluster {self.cluster}",
            f"  snapshot {self.snapshot}",
            f"    {size}, sha256 {self.check.sha256}, etcd integrity hash verified; {origin}",
            *[f"  note: {n}" for n in self.notes],
            (f"  1. take a snapshot of the running cluster first (from {self.pre_snapshot_from}) into backups/"
             if self.pre_snapshot_from else
             "  1. NO snapshot of the current state: no etcd member is healthy (the old data directories are "
             "still kept, see 5)"),
            f"  2. copy the snapshot to every member and check it there ({self.tool} snapshot status, sha256)",
            f"  3. stop {', '.join(CONTROL_PLANE_SERVICES)} on {planes}",
            f"  4. stop etcd on {names}",
            "  5. move every data directory aside (kept, never deleted):",
            *[f"       {x.host}: {x.data_dir} -> {x.aside}" if x.has_data else
              f"       {x.host}: {x.data_dir} does not exist (nothing to move)" for x in self.members],
            f"  6. restore the snapshot on every member with {self.tool} (etcd {self.target_version}), "
            f"new cluster token {self.token}, revision moved {RESTORE_REVISION_BUMP:,} on so watches start over:",
            *[f"       {x.host}: name {x.host}, peer URL {x.peer_url}" for x in self.members],
            f"     initial cluster {self.initial_cluster}",
            "  7. start etcd on every member together; wait for cluster health, the member list and the "
            "snapshot's revision (bumped) on every member",
            f"  8. start the control plane on {planes}; wait for kube-apiserver /readyz and the controllers",
            "  if any of 3-8 fails: the moved-aside data directories are put back and everything is restarted",
        ]
        return lines


def build_plan(cluster: Cluster, snapshot: Path, check: FileCheck, metadata: dict[str, Any] | None,
               probes: dict[str, HostProbe | None], stamp: str) -> RestorePlan:
    """The plan, or RestoreRefused listing every reason (unreachable hosts, missing tools, no space...)."""
    target = cluster.settings.versions.etcd
    tool = snapshot_tool(target)
    reasons: list[str] = []
    notes: list[str] = []
    unprobed = [name for name, p in probes.items() if p is None]
    for name in unprobed:
        reasons.append(f"{name}: {why_missing(probes, name)} (every etcd member and control plane must be reachable)")
    if metadata is not None:
        if metadata.get("cluster") != cluster.name:
            reasons.append(f"the snapshot is of cluster {metadata.get('cluster')!r}, the inventory's is "
                           f"{cluster.name!r} (its encrypted secrets and service accounts belong to that cluster)")
        version = str(metadata.get("etcd_version", ""))
        try:
            if version and version_tuple(version) > version_tuple(target):
                reasons.append(f"the snapshot was taken with etcd {version}, newer than the inventory's {target}: "
                               "etcd does not support restoring onto an older minor")
        except KbuildError:
            notes.append(f"unknown etcd version {version!r} in the metadata")
        if metadata.get("sha256") and metadata["sha256"] != check.sha256:
            reasons.append("the file's sha256 differs from the one in its metadata: it changed after it was saved")
    else:
        notes.append("no metadata file: cluster and etcd version of the snapshot cannot be checked")
    members = []
    for host in cluster.etcd_hosts:
        probe = probes.get(host.name)
        data_dir = cluster.etcd.data_dir.rstrip("/")
        if probe is not None:
            if tool not in probe.tools:
                reasons.append(f"{host.name}: no {tool} in /usr/local/bin (etcd {target} restores with it)")
            if probe.mountpoint:
                reasons.append(f"{host.name}: {data_dir} is a mount point, which cannot be moved aside")
            need = 2 * check.size + WAL_RESERVE
            if probe.free_kb is not None and probe.free_kb * 1024 < need:
                reasons.append(f"{host.name}: {probe.free_kb // 1024} MiB free next to {data_dir}, the restore "
                               f"needs {need // (1024 * 1024)} MiB")
        members.append(MemberPlan(
            host=host.name, peer_url=peer_url(host), data_dir=data_dir,
            has_data=probe is None or probe.data_dir != "absent",
            aside=f"{data_dir}.before-restore-{stamp}", upload=f"{data_dir}.restore-{stamp}.db",
            restore_command=snapshot_restore(cluster, host, tool=tool, snapshot=f"{data_dir}.restore-{stamp}.db",
                                             data_dir=data_dir, token=restore_token(cluster, stamp)),
        ))
    if reasons:
        mountpoint = any("mount point" in r for r in reasons)
        hint = ("bring the hosts back (or remove dead ones from the inventory: the restored cluster has the "
                "inventory's members), then run the restore again" if unprobed else
                "run `kbuild bootstrap` to install the tools" if any(f"no {tool}" in r for r in reasons) else
                f"stop etcd, move the data out of the mount point's {cluster.etcd.data_dir}/member by hand, or use a "
                "data_dir inside the mount" if mountpoint else None)
        raise RestoreRefused(reasons, hint=hint, unreachable=bool(unreachable_hosts(probes)))
    healthy = [name for name, p in probes.items() if p is not None and p.is_etcd and p.healthy]
    return RestorePlan(
        cluster=cluster.name, snapshot=snapshot, check=check, metadata=metadata, stamp=stamp,
        token=restore_token(cluster, stamp), tool=tool, target_version=target,
        initial_cluster=initial_cluster(cluster), members=tuple(members),
        control_planes=tuple(h.name for h in cluster.control_plane_hosts),
        pre_snapshot_from=healthy[0] if healthy else None, notes=tuple(notes),
    )
