"""Which rendered files a host gets, from which template, and which services each one restarts."""

from __future__ import annotations

import ipaddress
import itertools
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import tomli_w
import yaml

from kbuild import components as table
from kbuild import layout
from kbuild.artifacts.catalogue import ETCDUTL_SINCE
from kbuild.components import FileSpec
from kbuild.errors import UsageError
from kbuild.inventory import Cluster, Host
from kbuild.render import env as jinja_env
from kbuild.render import flags as flag_tables
from kbuild.render.host_values import Facts, cluster_pod_routes, node_pod_cidr, paths
from kbuild.releases import COREDNS_IMAGE
from kbuild.render.versions import ClusterVersions, cluster_versions, show


@dataclass(frozen=True)
class RenderedFile:
    """One file for a host: where it goes, what it says, and who must restart when it changes."""

    path: PurePosixPath
    content: str
    mode: int
    services: tuple[str, ...]  # systemd services to restart when it changes (a unit: itself)
    template: str  # the template it was rendered from
    role: str = ""  # the role it serves: "etcd", "control-plane" or "node" (hosts running a kubelet)


# Static pod CIDRs need routes to the nodes; a oneshot unit sets them at boot. It restarts nothing when
# it changes: the phase that owns it adds a new node's route live, touching no service.
POD_ROUTE_FILES = (
    FileSpec("kbuild-pod-routes.service.j2", layout.unit_path("kbuild-pod-routes"), (), when=table.bridge_cni),
)


def gets_pod_routes(host: Host) -> bool:
    """Nodes reach each other's pods; so must every apiserver, which calls webhooks and aggregated APIs
    served by pods (--enable-aggregator-routing sends it to their pod IPs), even on a host with no kubelet."""
    return host.runs_kubelet or host.is_control_plane


def pod_routes_role(host: Host) -> str:
    """The phase that sets a host's pod routes: the node phase where there is one, else the control plane's."""
    return "node" if host.runs_kubelet else "control-plane"

# On every object kbuild applies through the API.
ADDON_LABELS = {"app.kubernetes.io/managed-by": "kbuild"}

# The user kube-apiserver authenticates as towards kubelets (its apiserver-kubelet-client certificate's CN).
APISERVER_KUBELET_USER = "kube-apiserver-kubelet-client"

# Start order on a host that has them all (the component table's), the pod routes last.
UNIT_ORDER = (*table.SERVICES, "kbuild-pod-routes")


def file_specs(host: Host, cluster: Cluster | None = None) -> list[FileSpec]:
    """The files the host's roles get; with `cluster`, only those its settings ask for."""
    return [spec for _, spec in _role_specs(host) if cluster is None or spec.when is None or spec.when(cluster)]


def _role_specs(host: Host) -> list[tuple[str, FileSpec]]:
    pairs = [(c.role, spec) for c in table.host_components(host) for spec in c.rendered]
    if gets_pod_routes(host):
        pairs += [(pod_routes_role(host), spec) for spec in POD_ROUTE_FILES]
    return pairs


def units_for(host: Host, cluster: Cluster | None = None) -> list[str]:
    """The systemd services kbuild runs on this host, in start order (with `cluster`: as its settings have it)."""
    present = {s.path.name.removesuffix(".service") for s in file_specs(host, cluster)
               if s.path.parent == layout.UNIT_DIR}
    return [name for name in UNIT_ORDER if name in present]


def host_files(cluster: Cluster, host: Host) -> list[RenderedFile]:
    """Every unit and config file this host gets (PKI material aside), rendered; pure, no I/O but
    reading templates."""
    versions = cluster_versions(cluster)
    _check_host_extra_flags(host)
    facts = Facts(cluster, host)
    environment = jinja_env.environment(user_templates_dir(cluster))
    base = context(facts, versions)
    jinja_env.check_context(f"the templates of {host.name}", base)
    if gets_pod_routes(host):
        # Checked when the cluster's table was rendered; walking n-1 lines again for each host is what made
        # render quadratic. A control-plane host without a kubelet has no line of its own: it takes them all.
        lines, position = _pod_route_lines(cluster, environment)
        mine = position.get(host.name)
        base["pod_route_lines"] = lines if mine is None else lines[:mine] + lines[mine + 1:]
    rendered: list[RenderedFile] = []
    for role, spec in _role_specs(host):
        if spec.when is not None and not spec.when(cluster):
            continue
        ctx = dict(base, template=spec.template)
        if spec.component:
            ctx["binary"] = str(layout.binary_path(spec.component))
            ctx["flags"] = flag_tables.build(spec.component, facts, versions)
        text = jinja_env.render(environment, spec.template, ctx, checked=frozenset(base))
        if spec.overrides:
            text = merge_overrides(text, getattr(cluster.settings, spec.overrides), f"cluster.{spec.overrides}",
                                   toml=spec.path.suffix == ".toml")
        rendered.append(RenderedFile(spec.path, text, spec.mode, spec.services, spec.template, role))
    return rendered


def _pod_route_lines(cluster: Cluster, environment: jinja2.Environment) -> tuple[list[str], dict[str, int]]:
    """Every kubelet host's line of the pod-routes unit (rendered from _pod_routes.j2 once per cluster), and
    each host's position in them."""
    def render_table(c: Cluster) -> tuple[list[str], dict[str, int]]:
        table = cluster_pod_routes(c)
        text = jinja_env.render(environment, "_pod_routes.j2", {"routes": table})
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != len(table):
            raise jinja_env.TemplateError("_pod_routes.j2", None, None,
                                          f"rendered {len(lines)} lines for {len(table)} routes; it must write one each")
        return lines, {route["name"]: i for i, route in enumerate(table)}

    return cluster.derived(f"pod_route_lines:{user_templates_dir(cluster)}", render_table)


def merge_overrides(text: str, overrides: dict[str, Any], setting: str, *, toml: bool = False) -> str:
    """A rendered YAML (or TOML) document with `overrides` merged in (mappings key by key, anything else replaced).

    Without overrides the text is returned as rendered, comments and all; with them, the comments
    at its top are kept and a line says which setting changed it.
    """
    if not overrides:
        return text
    data = tomllib.loads(text) if toml else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise UsageError(f"{setting}: the template renders no mapping to merge into")
    header = "".join(line + "\n" for line in itertools.takewhile(lambda l: l.startswith("#"), text.splitlines()))
    merged = _deep_merge(data, overrides)
    try:
        body = tomli_w.dumps(merged) if toml else yaml.safe_dump(merged, sort_keys=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{setting}: cannot be written into the {'TOML' if toml else 'YAML'} file ({exc})") from None
    return f"{header}# With {setting} from the inventory merged in.\n{body}"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` merged into `base`; keys `base` lacks come after its own, sorted, so the file does not
    depend on the order the inventory happens to list them in."""
    merged = dict(base)
    for key, value in sorted(extra.items()):
        if isinstance(value, dict):
            below = merged.get(key)
            merged[key] = _deep_merge(below if isinstance(below, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def _check_host_extra_flags(host: Host) -> None:
    """Extra flags for a component the host does not run would be silently ignored: say so instead."""
    running = units_for(host)  # any unit the roles can have: extra flags for it are the user's business
    for component in host.extra_flags:
        if component not in running:
            raise flag_tables.FlagError(f"hosts.{host.name}.extra_flags.{component}",
                                        f"host {host.name} runs no {component}",
                                        hint=f"its roles ({', '.join(host.role_names)}) run: {', '.join(running)}")


def user_templates_dir(cluster: Cluster) -> str | None:
    """The inventory's templates_dir, resolved against the inventory's directory."""
    value = cluster.settings.templates_dir
    if not value:
        return None
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = cluster.inventory_path.parent / path
    if not path.is_dir():
        raise UsageError(f"cluster.templates_dir: {path} is not a directory",
                         hint="point it at a directory of templates named like the shipped ones")
    return str(path.resolve())


def coredns_has_budget(cluster: Cluster) -> bool:
    """CoreDNS gets a disruption budget only when a drained node's replica has another node to go to: with one
    kubelet host, every replica is on it and the budget would block that host's drain (and so every upgrade)."""
    return cluster.settings.addons.coredns.replicas > 1 and len(cluster.kubelet_hosts) > 1


def context(facts: Facts, versions: ClusterVersions) -> dict[str, Any]:
    """The variables every template sees (plus `binary` and `flags` in unit templates)."""
    cluster, host, settings = facts.cluster, facts.host, facts.cluster.settings
    ctx: dict[str, Any] = {
        "paths": paths(),
        "host": {
            "name": host.name,
            "address": facts.host_ip,
            "arch": host.arch,
            "roles": host.role_names,
            "is_etcd": host.is_etcd,
            "is_control_plane": host.is_control_plane,
            "runs_kubelet": host.runs_kubelet,
        },
        "cluster": {
            "name": cluster.name,
            "domain": settings.cluster_domain,
            "dns_ip": str(cluster.cluster_dns_ip),
            "pod_cidr": str(settings.pod_cidr),
            "service_cidr": str(settings.service_cidr),
            "api_server_url": cluster.api_server_url,
            "kubernetes_service_ip": str(cluster.kubernetes_service_ip),
            "proxy_mode": settings.proxy_mode,
            "fail_swap_on": settings.fail_swap_on,
        },
        "versions": {
            "kubernetes": settings.versions.kubernetes,
            "kubernetes_minor": show(versions.kubernetes),
            "etcd": settings.versions.etcd,
            "etcd_minor": show(versions.etcd),
            "containerd": settings.versions.containerd,
        },
        "etcd": {
            "data_dir": cluster.etcd.data_dir,
            # etcd before 3.5 refuses to start on arm64 unless told this platform is unsupported.
            "unsupported_arch": host.arch if host.arch != "amd64" and versions.etcd < (3, 5) else None,
            "backup": {
                **cluster.etcd.backup.model_dump(),
                "script": str(layout.ETCD_BACKUP_SCRIPT),
                "endpoint": f"https://{facts.loopback}:{layout.ETCD_CLIENT_PORT}",
                "status_tool": str(layout.binary_path("etcdutl" if versions.etcd >= ETCDUTL_SINCE else "etcdctl")),
            },
        },
        "apiserver_kubelet_user": APISERVER_KUBELET_USER,
        "coredns": {
            **settings.addons.coredns.model_dump(),
            "image": COREDNS_IMAGE,
            "budget": coredns_has_budget(cluster),
            "labels": ADDON_LABELS | {"kbuild.addon": "coredns"},
            "service_labels": ADDON_LABELS | {"kbuild.addon": "coredns", "k8s-app": "kube-dns",
                                              "kubernetes.io/name": "CoreDNS"},
        },
    }
    # pod_route_lines: added by host_files once this context is checked (see _pod_route_lines)
    if host.runs_kubelet:
        pod_net = node_pod_cidr(cluster, host)
        ctx["node"] = {
            "pod_cidr": str(pod_net),
            "default_route": "::/0" if pod_net.version == 6 else "0.0.0.0/0",
            "taints": [_taint(host, t) for t in host.taints],
            "api_labels": flag_tables.api_labels(host.labels),
        }
        ctx["containerd"] = {
            "sandbox_image": versions.profile.pause_image,
            "socket": str(layout.CONTAINERD_SOCKET),
        }
    return ctx


@dataclass(frozen=True)
class PodRoute:
    """One other node's pod CIDR, reached through that node's address."""

    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    via: str
    node: str


def pod_routes(cluster: Cluster, host: Host) -> list[PodRoute]:
    """The routes this host needs to reach every pod; none on a host that gets no pod routes."""
    if not gets_pod_routes(host):
        return []
    return [PodRoute(node_pod_cidr(cluster, other), str(other.address), other.name) for other in cluster.kubelet_hosts
            if other.name != host.name]


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _taint(host: Host, text: str) -> dict[str, str]:
    """'key=value:Effect' or 'key:Effect' -> the KubeletConfiguration registerWithTaints form."""
    index = host.taints.index(text)
    body, sep, effect = text.rpartition(":")
    if not sep or effect not in TAINT_EFFECTS or not body:
        raise UsageError(f"hosts.{host.name}.taints.{index}: {text!r} is not key[=value]:Effect",
                         hint=f"Effect is one of {', '.join(TAINT_EFFECTS)}")
    key, _, value = body.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint
