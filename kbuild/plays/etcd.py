"""The etcd phase: binaries, certificates, data directory and unit on every etcd host, gated on cluster health."""

from __future__ import annotations

from kbuild import layout
from kbuild.engine.resources import Directory, Service
from kbuild.engine.runner import Gate, Plan
from kbuild.engine.shell import command
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster
from kbuild.pki.certlist import remote_path
from kbuild.plays.desired import HostInputs, artifact_resources, parents_of, pki_resources, rendered_resources
from kbuild.plays.phases import Context, require_success

ETCD_HEALTH_TIMEOUT = 180.0


def etcdctl(cluster: Cluster, *args: str, endpoints: str | None = None) -> str:
    """An etcdctl command line authenticating with the healthcheck client certificate (mTLS).

    Each of `args` is one argument, quoted here (kbuild.engine.shell.Raw for a "$variable")."""
    target = endpoints or f"https://127.0.0.1:{layout.ETCD_CLIENT_PORT}"
    return "ETCDCTL_API=3 " + command(
        layout.binary_path("etcdctl"), f"--endpoints={target}",
        f"--cacert={remote_path('etcd-ca.crt')}", f"--cert={remote_path('etcd-healthcheck-client.crt')}",
        f"--key={remote_path('etcd-healthcheck-client.key')}", "--command-timeout=5s", *args,
    )


def health_gate(cluster: Cluster, *, always: bool = False) -> Gate:
    return Gate("etcd cluster healthy", command=etcdctl(cluster, "endpoint", "health", "--cluster"),
                timeout=ETCD_HEALTH_TIMEOUT, interval=2.0, always=always, unit="etcd")


def plan(cluster: Cluster, inputs: HostInputs) -> Plan:
    files = artifact_resources(inputs, "etcd") + pki_resources(inputs, "etcd") + rendered_resources(inputs, "etcd")
    # etcd refuses a data directory others can read (it warns, and 3.6 fails): 0700 from the start.
    data_dir = Directory(cluster.etcd.data_dir, mode=0o700)
    # Scheduled snapshots (etcd.backup): the timer runs when enabled, and is stopped and disabled otherwise.
    backups = cluster.etcd.backup.enabled
    timer = Service("etcd-backup.timer", enabled=backups, running=backups)
    return Plan([*parents_of(files), data_dir, *files, Service("etcd"), timer], gates=[health_gate(cluster)])


def initialized_members(ctx: Context) -> set[str]:
    """etcd hosts whose data directory already holds a member: then the cluster exists and is rolled, not formed."""
    found: set[str] = set()

    def probe(conn: Connection) -> str:
        result = conn.run(member_probe(ctx.cluster))
        if result.out.strip() == "initialized":
            found.add(conn.target.name)
        return f"data directory {result.out.strip()}"

    names = [h.name for h in ctx.selected(ctx.cluster.etcd_hosts)]
    outcomes = ctx.session.each("etcd-members", names, probe, describe="which members already exist")
    require_success("etcd-members", outcomes)
    return found


def member_probe(cluster: Cluster) -> str:
    """Prints `initialized` when the data directory holds a member (run even in check mode: read only)."""
    return f"{command('test', '-d', cluster.etcd.data_dir + '/member')} && echo initialized || echo empty"


class MembershipChange(KbuildError):
    """Adding a member to a running etcd cluster needs `member add` first; kbuild refuses rather than guess."""

    def __init__(self, joining: list[str], existing: list[str]) -> None:
        super().__init__(
            f"etcd is already running on {', '.join(existing)}, and {', '.join(joining)} would join it as "
            "new member(s): kbuild does not yet add members to a running etcd cluster; nothing was changed",
            hint="remove the etcd role from the new host(s) for now, or add the member by hand with "
                 "`etcdctl member add` and start it with --initial-cluster-state=existing",
        )
