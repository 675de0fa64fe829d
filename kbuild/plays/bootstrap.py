"""`kbuild bootstrap`: the declarative apply of a whole cluster, as ordered phases. Safe to re-run at any time."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from kbuild import layout, pki
from kbuild.engine.facts import q
from kbuild.engine.resources import Command
from kbuild.engine.runner import Gate, Plan
from kbuild.inventory import Host
from kbuild.plays import control_plane, etcd, node, preflight, upgrade
from kbuild.plays.desired import INPUTS, PKI, HostInputs, prepare_inputs
from kbuild.plays.phases import Context, Phase, require_success
from kbuild.render import api_labels
from kbuild.render.files import coredns_has_budget

NODES_REGISTERED_TIMEOUT = 120.0
ADDONS_TIMEOUT = 180.0


def phase_preflight(ctx: Context) -> None:
    preflight.run(ctx)


def phase_pki(ctx: Context) -> None:
    """Generate or reuse the PKI on the controller. In check mode decide only: the PKI the run would leave is
    held in memory (the report), and the state directory is not touched."""
    report = pki.ensure(ctx.cluster, dry_run=ctx.check)
    ctx.state.put(PKI, report)
    changed = report.changed
    verb = "would write" if ctx.check else "wrote"
    ctx.say(f"{len(report.outcomes) - len(changed)} reused, {len(changed)} {verb}"
            + (f": {', '.join(o.name for o in changed[:8])}{' …' if len(changed) > 8 else ''}" if changed else ""),
            phase="pki")
    for warning in report.warnings:
        ctx.say(f"warning: {warning}", phase="pki")


def phase_artifacts(ctx: Context) -> None:
    """Fetch and verify every binary into the controller's cache (push) or its checksums (pull)."""
    generated = ctx.state.find(PKI)  # None with --skip-phases pki: the state directory's PKI as it is
    inputs = prepare_inputs(ctx.cluster, ctx.session.hosts, read_pki=generated.read if generated else None)
    ctx.state.put(INPUTS, inputs)
    count = sum(len(i.artifacts) for i in inputs.values())
    archives = len({image.ref for i in inputs.values() for image in i.images})
    ctx.say(f"{count} host binaries{f' and {archives} image archives' if archives else ''} verified "
            f"({ctx.cluster.artifacts.transfer} mode)", phase="artifacts")


def phase_etcd(ctx: Context) -> None:
    hosts = ctx.selected(ctx.cluster.etcd_hosts)
    if not hosts:
        return
    inputs = ctx.state.get(INPUTS)
    initialized = etcd.initialized_members(ctx)
    plans = {h.name: etcd.plan(ctx.cluster, inputs[h.name]) for h in hosts}
    if not initialized:
        # A new cluster: all members at once, since a member reports ready only when a quorum has formed.
        outcomes = ctx.session.apply("etcd", plans, describe="new etcd cluster: members started together")
    else:
        joining = [h.name for h in hosts if h.name not in initialized]
        if joining:
            raise etcd.MembershipChange(joining, sorted(initialized))
        # A running cluster: one member at a time, each gated on cluster health, so quorum always holds.
        outcomes = ctx.session.apply("etcd", plans, serial=1,
                                    describe="running etcd cluster: members one at a time, gated on health")
    require_success("etcd", outcomes)


def phase_control_plane(ctx: Context) -> None:
    hosts = ctx.selected(ctx.cluster.control_plane_hosts)
    if not hosts:
        return
    inputs = ctx.state.get(INPUTS)
    # One at a time: a changed apiserver certificate or flag must never take every apiserver down at once.
    outcomes = ctx.session.apply("control-plane",
                                {h.name: control_plane.plan(ctx.cluster, inputs[h.name]) for h in hosts},
                                serial=1, describe="apiserver, controller-manager, scheduler; one host at a time")
    require_success("control-plane", outcomes)


def apply_manifest(inputs: HostInputs, path: PurePosixPath, what: str) -> Command:
    """Apply a rendered manifest through the API (server-side, as kbuild's field manager), again only when it
    changed or its objects went missing (a restored etcd, say)."""
    content = next(f.content for f in inputs.rendered if f.path == path)
    digest = hashlib.sha256(content.encode()).hexdigest()
    stamp = f"{layout.ADDONS_DIR}/.applied-{path.stem}"
    return Command(
        f"apply {what}",
        f"{control_plane.kubectl('apply', '--server-side', '--force-conflicts', '--field-manager=kbuild', '-f', str(path))}"
        f" >/dev/null && echo {digest} > {q(stamp)}",
        unless=f"grep -qx {digest} {q(stamp)} && {control_plane.kubectl('get', '-f', str(path))} >/dev/null",
    )


def phase_cluster_objects(ctx: Context) -> None:
    """Objects a hard-way cluster needs in the API: the RBAC that lets the apiserver reach kubelets."""
    first = _first_control_plane(ctx)
    if first is None:
        return
    apply = apply_manifest(ctx.state.get(INPUTS)[first.name], layout.APISERVER_KUBELET_RBAC,
                           "apiserver-to-kubelet RBAC")
    outcomes = ctx.session.apply("cluster-objects", {first.name: Plan([apply])},
                                describe=f"RBAC and other API objects, through {first.name}")
    require_success("cluster-objects", outcomes)


def _remove_coredns_budget() -> Command:
    """A budget rendered earlier (more workers then) is deleted once the cluster can no longer honour it: left in
    place, it would block the last worker's drain. Server-side apply never prunes what a manifest no longer has."""
    budget = ("pdb/coredns", "-n", "kube-system")
    return Command("remove CoreDNS's disruption budget",
                   control_plane.kubectl("delete", *budget, "--ignore-not-found") + " >/dev/null",
                   unless="! " + control_plane.kubectl("get", *budget) + " >/dev/null 2>&1")


def _old_coredns_gone() -> str:
    """True once no replaced CoreDNS pod is still terminating on a Ready node.

    `rollout status` ends when the new replicas are available, while the old ones still answer through their
    lame-duck seconds and until every kube-proxy has dropped them: a name asked for right after bootstrap could
    reach a replica with the previous Corefile. A pod on a node that is not Ready is never cleaned up by its
    kubelet, so it is not waited for. Any kubectl failure prints a line that fails the check."""
    nodes = control_plane.kubectl(
        "get", "nodes", "-o",
        'jsonpath={range .items[*]}node {.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}')
    pods = control_plane.kubectl(
        "get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o",
        'jsonpath={range .items[*]}pod {.spec.nodeName} {.metadata.deletionTimestamp}{"\\n"}{end}')
    verdict = ('$1 == "failed" {stale = 1} $1 == "node" && $3 == "True" {ready[$2] = 1} '
               '$1 == "pod" && NF == 3 && ($2 in ready) {stale = 1} END {exit stale}')
    return (f"{{ {nodes} || echo failed; echo; {pods} || echo failed; echo; }} 2>/dev/null "
            f"| awk {q(verdict)}")


def phase_addons(ctx: Context) -> None:
    """CoreDNS (cluster.addons), applied once the nodes it runs on are up, gated on its rollout."""
    coredns = ctx.cluster.settings.addons.coredns
    first = _first_control_plane(ctx)
    if first is None or not coredns.enabled:
        return
    apply = apply_manifest(ctx.state.get(INPUTS)[first.name], layout.COREDNS_MANIFEST, "CoreDNS")
    resources = [apply] if coredns_has_budget(ctx.cluster) else [apply, _remove_coredns_budget()]
    gates = [] if ctx.check else [
        Gate("CoreDNS available", always=True, timeout=ADDONS_TIMEOUT,
             command=control_plane.kubectl("rollout", "status", "deployment/coredns", "-n", "kube-system",
                                           f"--timeout={int(ADDONS_TIMEOUT)}s")),
        Gate("CoreDNS's old replicas gone", always=True, timeout=ADDONS_TIMEOUT, command=_old_coredns_gone())]
    if ctx.cluster.settings.cni == "none":
        gates = []  # its pods wait for the pod network the user installs
    elif not ctx.cluster.kubelet_hosts:
        # As with kubeadm's control-plane-only clusters: the Deployment is in the API and its pods are
        # scheduled when the first worker joins (the inventory check already warned); nothing to wait on.
        gates = []
        ctx.say("no worker yet: CoreDNS is applied and starts on the first worker added", phase="addons")
    outcomes = ctx.session.apply("addons", {first.name: Plan(resources, gates=gates)},
                                describe=f"CoreDNS ({coredns.replicas} replicas at {ctx.cluster.cluster_dns_ip}), "
                                         f"through {first.name}")
    require_success("addons", outcomes)


def phase_nodes(ctx: Context) -> None:
    hosts = ctx.selected(ctx.cluster.kubelet_hosts)
    if not hosts:
        return
    inputs = ctx.state.get(INPUTS)
    outcomes = ctx.session.apply("nodes", {h.name: node.plan(ctx.cluster, inputs[h.name]) for h in hosts},
                                describe="containerd, runc, CNI, kubelet, kube-proxy")
    require_success("nodes", outcomes)
    first = _first_control_plane(ctx, selected_only=False)
    if first is None or ctx.check:
        return
    names = " ".join(h.name for h in hosts)
    gate = Gate("nodes registered", always=True, timeout=NODES_REGISTERED_TIMEOUT,
                command=control_plane.kubectl("get", "nodes", *(h.name for h in hosts), "-o", "name"))
    outcomes = ctx.session.apply("nodes-registered", {first.name: Plan(gates=[gate])},
                                describe=f"every kubelet has registered its Node ({names})")
    require_success("nodes-registered", outcomes)
    labels = api_labels_command(hosts)
    if labels is not None:
        outcomes = ctx.session.apply("node-labels", {first.name: Plan([labels])},
                                    describe="labels a kubelet may not set itself, through the API")
        require_success("node-labels", outcomes)


# Every label of every Node, one `node key=value` a line (a label with an empty value shows as `key=`).
_LABEL_LINES = ('go-template={{range .items}}{{$node := .metadata.name}}{{range $k, $v := .metadata.labels}}'
                '{{$node}} {{$k}}={{$v}}{{"\\n"}}{{end}}{{end}}')


def api_labels_command(hosts: list[Host]) -> Command | None:
    """The inventory's labels that NodeRestriction keeps the kubelet from setting (node-role.kubernetes.io/...),
    set through the API once the Nodes exist. One listing of all Nodes decides whether any label is missing
    or has another value, so a re-run costs one kubectl, not one per node."""
    wanted = {h.name: api_labels(h.labels) for h in hosts}
    wanted = {name: labels for name, labels in wanted.items() if labels}
    if not wanted:
        return None
    label = [control_plane.kubectl("label", "node", name, "--overwrite",
                                   *(f"{key}={value}" for key, value in sorted(labels.items()))) + " >/dev/null"
             for name, labels in wanted.items()]
    lines = [f"{name} {key}={value}" for name, labels in wanted.items() for key, value in sorted(labels.items())]
    # All Nodes: with names, kubectl lists a single one as the object itself, not as a list of items.
    listing = control_plane.kubectl("get", "nodes", "-o", _LABEL_LINES)
    # Every wanted line is present when the lines matching one of them, counted once each, are all of them.
    matching = " ".join(f"-e {q(line)}" for line in lines)
    return Command(f"labels of {len(wanted)} Node{'s' if len(wanted) > 1 else ''}", " && ".join(label),
                   unless=f"kb_labels=$({listing}) && "
                          f"test \"$(printf '%s\\n' \"$kb_labels\" | grep -xF {matching} | sort -u | wc -l)\" "
                          f"-eq {len(lines)}")


def _first_control_plane(ctx: Context, *, selected_only: bool = True) -> Host | None:
    candidates = ctx.cluster.control_plane_hosts
    if selected_only:
        candidates = ctx.selected(candidates)
    return candidates[0] if candidates else None


def phase_handlers(ctx: Context) -> None:
    """Restarts still owed (a file changed in one phase for a service no later phase managed)."""
    require_success("handlers", ctx.session.flush_handlers())


PHASES = [
    Phase("preflight", "check every host before anything changes", phase_preflight),
    Phase("pki", "certificates, keys and kubeconfigs on the controller", phase_pki),
    # Hosts running other versions than the inventory: checked against the skew policy before anything is
    # fetched, then rolled exactly as `kbuild upgrade apply` does (snapshot, etcd leader last, apiservers
    # one by one, workers drained), never replaced in parallel by the phases below.
    Phase("upgrade", "rolling upgrade of hosts that run other versions than the inventory", upgrade.bootstrap_phase),
    Phase("artifacts", "binaries fetched and verified", phase_artifacts, provides=(INPUTS,)),
    Phase("etcd", "etcd members", phase_etcd, needs=(INPUTS,)),
    Phase("control-plane", "apiserver, controller-manager, scheduler", phase_control_plane, needs=(INPUTS,)),
    Phase("cluster-objects", "RBAC in the API", phase_cluster_objects, needs=(INPUTS,)),
    Phase("nodes", "container runtime, kubelet and kube-proxy; nodes registered", phase_nodes, needs=(INPUTS,)),
    Phase("addons", "CoreDNS, through the API", phase_addons, needs=(INPUTS,)),
    Phase("handlers", "restarts still owed", phase_handlers),
]
