"""`kbuild reset`: take a host back to before kbuild, keeping etcd data aside unless told to purge it.

The plan is data (what will be stopped, removed, moved), built by a pure function from the
inventory, shown without --yes, and turned into one shell script per host with --yes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from kbuild import layout
from kbuild.artifacts import host_binaries
from kbuild.engine.facts import q
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.plays import node
from kbuild.plays.control_plane import kubectl
from kbuild.plays.phases import Context, require_success
from kbuild.render import pod_routes, units_for

# Directories that hold nothing but what kbuild put there.
KBUILD_DIRS = (layout.K8S_DIR, layout.KUBELET_DIR, layout.KUBE_PROXY_DIR, layout.CNI_CONF_DIR,
               PurePosixPath("/var/lib/kbuild"), layout.AUDIT_LOG.parent)
EXTRA_UNITS = ("etcd-backup.timer", "etcd-backup.service")


@dataclass
class ResetPlan:
    host: str
    stop_units: list[str] = field(default_factory=list)
    remove_files: list[str] = field(default_factory=list)
    remove_dirs: list[str] = field(default_factory=list)
    etcd_data: str | None = None
    etcd_data_to: str | None = None  # None with etcd_data set: purge
    routes: list[str] = field(default_factory=list)
    kube_proxy_cleanup: bool = False
    remove_pods: bool = False  # a node: its pods go before containerd stops (their shims would outlive it)

    def describe(self) -> list[str]:
        lines = [f"stop and disable: {', '.join(self.stop_units)}" if self.stop_units else ""]
        if self.remove_pods:
            lines.append("stop and remove every pod and container, the kubelet's cgroups (kubepods.slice) and "
                         f"mounts under {layout.KUBELET_DIR}")
        if self.kube_proxy_cleanup:
            lines.append("remove kube-proxy's iptables/nftables rules (KUBE-* chains, kube-proxy tables)")
        if self.routes:
            lines.append(f"remove pod routes: {', '.join(self.routes)}; remove the cni0 bridge")
        lines += [f"remove {path}" for path in self.remove_files + self.remove_dirs]
        if self.etcd_data:
            lines.append(f"move etcd data {self.etcd_data} to {self.etcd_data_to}" if self.etcd_data_to
                         else f"DELETE etcd data {self.etcd_data} (--purge-data)")
        return [line for line in lines if line]


def plan(cluster: Cluster, host: Host, *, purge_data: bool = False, stamp: str | None = None) -> ResetPlan:
    units = units_for(host, cluster)
    result = ResetPlan(host.name)
    result.stop_units = [f"{u}.service" for u in reversed(units)] + (list(EXTRA_UNITS) if host.is_etcd else [])
    result.remove_files = [str(layout.unit_path(u)) for u in units]
    if host.is_etcd:
        # The scheduled-backup machinery goes; the snapshots it wrote (etcd.backup.dir) are data and stay.
        result.remove_files += [f"/etc/systemd/system/{u}" for u in EXTRA_UNITS] + [str(layout.ETCD_BACKUP_SCRIPT)]
    result.remove_files += sorted({str(b.remote_path) for b in host_binaries(cluster.settings.versions, host)})
    if host.runs_kubelet:
        result.remove_files += [str(layout.CONTAINERD_CONFIG)]
        result.remove_files += [s.persist_file for s in node.SYSCTLS] + [m.persist_file for m in node.MODULES]
        result.kube_proxy_cleanup = True
        result.remove_pods = True
    if cluster.settings.cni == "bridge":
        result.routes = [str(route.cidr) for route in pod_routes(cluster, host)]
    result.remove_dirs = [str(d) for d in KBUILD_DIRS]
    if host.is_etcd:
        result.etcd_data = cluster.etcd.data_dir
        if not purge_data:
            result.etcd_data_to = f"{cluster.etcd.data_dir}.reset-{stamp or time.strftime('%Y%m%dT%H%M%S')}"
    return result


def script(p: ResetPlan) -> str:
    """The shell for a plan. Every step tolerates "already gone", so a reset can be repeated."""
    lines = ["set -u"]
    for unit in p.stop_units:
        if unit == "containerd.service" and p.remove_pods:
            lines.append(_REMOVE_PODS)  # the kubelet has stopped: nothing starts them again
        lines.append(f"systemctl disable --now {q(unit)} >/dev/null 2>&1 || true")
    if p.remove_pods:
        # The kubelet's cgroups (systemd driver), and any container process the runtime left behind.
        lines.append("systemctl stop kubepods.slice >/dev/null 2>&1 || true")
        lines.append(f"findmnt -rno TARGET | grep '^{layout.KUBELET_DIR}/' | sort -r | "
                     "while read -r m; do umount -l \"$m\" 2>/dev/null || true; done")
    if p.kube_proxy_cleanup:
        proxy = layout.binary_path("kube-proxy")
        lines.append(f"[ -x {proxy} ] && {proxy} --cleanup >/dev/null 2>&1 || true")
        # Whatever --cleanup missed (or when the binary is already gone): KUBE-* chains and their jumps.
        lines.append(r"""for t in filter nat mangle raw; do
  command -v iptables >/dev/null 2>&1 || break
  iptables -t "$t" -S 2>/dev/null | grep -e '-j KUBE-' | sed 's/^-A/-D/' | while read -r rule; do
    eval "iptables -t $t $rule" 2>/dev/null || true; done
  for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
    iptables -t "$t" -F "$c" 2>/dev/null || true; done
  for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
    iptables -t "$t" -X "$c" 2>/dev/null || true; done
done
if command -v nft >/dev/null 2>&1; then
  nft delete table ip kube-proxy 2>/dev/null || true; nft delete table ip6 kube-proxy 2>/dev/null || true
fi""")
    for route in p.routes:
        lines.append(f"ip route del {q(route)} 2>/dev/null || true")
    if p.routes or p.kube_proxy_cleanup:
        lines.append("ip link del cni0 2>/dev/null || true")
    for path in p.remove_files:
        lines.append(f"rm -f {q(path)}")
    for path in p.remove_dirs:
        lines.append(f"rm -rf --one-file-system {q(path)}")
    if p.etcd_data:
        data = q(p.etcd_data)
        if p.etcd_data_to:
            kept = q(f"etcd data kept in {p.etcd_data_to}")
            lines.append(f"if [ -d {data} ]; then mv {data} {q(p.etcd_data_to)} && echo {kept}; fi")
        else:
            lines.append(f"rm -rf --one-file-system {data}")
    lines.append("systemctl daemon-reload 2>/dev/null || true")
    lines.append("rm -rf /var/lib/kbuild/sums")
    return "\n".join(lines)


# Pods through the CRI (so the CNI plugins release their addresses and network namespaces), and with
# ctr whatever is left in the kubelet's namespace (when crictl is not installed).
_REMOVE_PODS = f"""\
if [ -S {layout.CONTAINERD_SOCKET} ]; then
  if [ -x {layout.binary_path("crictl")} ]; then
    {layout.binary_path("crictl")} --runtime-endpoint unix://{layout.CONTAINERD_SOCKET} rmp -af >/dev/null 2>&1 || true
  fi
  if [ -x {layout.binary_path("ctr")} ]; then
    for t in $({layout.binary_path("ctr")} -n k8s.io tasks ls -q 2>/dev/null); do
      {layout.binary_path("ctr")} -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $({layout.binary_path("ctr")} -n k8s.io tasks ls -q 2>/dev/null); do
      {layout.binary_path("ctr")} -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for c in $({layout.binary_path("ctr")} -n k8s.io containers ls -q 2>/dev/null); do
      {layout.binary_path("ctr")} -n k8s.io containers delete "$c" >/dev/null 2>&1 || true; done
  fi
fi"""


def forget_nodes(ctx: Context, plans: dict[str, ResetPlan]) -> None:
    """When some nodes are reset and a control plane stays, delete their Node objects (as `kubeadm reset`
    users do by hand), so the API does not list ghosts. Best effort: the hosts are reset either way."""
    cluster: Cluster = ctx.cluster
    nodes = [h.name for h in cluster.kubelet_hosts if h.name in plans]
    staying = [h for h in ctx.selected(cluster.control_plane_hosts) if h.name not in plans]
    if not nodes or not staying:
        return

    def delete(conn: Connection) -> str:
        result = conn.run(kubectl("delete", "node", "--ignore-not-found", "--wait=false", *nodes))
        return f"deleted Node objects {', '.join(nodes)}" if result.ok else f"could not delete Nodes: {result.err.strip()}"

    ctx.session.each("forget-nodes", [staying[0].name], delete, describe="Node objects of the reset hosts")


def run(ctx: Context, plans: dict[str, ResetPlan]) -> None:
    def reset(conn: Connection) -> str:
        p = plans[conn.target.name]
        result = conn.run(script(p))
        if not result.ok:
            raise KbuildError(f"reset failed: {result.err.strip() or result.out.strip()}")
        kept = [line for line in result.out.splitlines() if line.startswith("etcd data kept")]
        return "; ".join(["reset done", *kept])

    require_success("reset", ctx.session.each("reset", list(plans), reset, describe="removing what kbuild installed"))
    forget_nodes(ctx, plans)
