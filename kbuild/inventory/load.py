"""Load an inventory file (kbuild's own YAML or an Ansible inventory), validate all of it, resolve defaults."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kbuild.errors import InventoryError, Problem, UsageError
from kbuild.inventory import ansible, formats, k0sctl, textfile
from kbuild.inventory.ansible import kubespray
from kbuild.inventory.cluster import Cluster, Host, HostSSH, kubernetes_service_ip, split_host_port
from kbuild.inventory.model import (
    DNS_NAME,
    ArtifactSettings,
    ClusterSettings,
    EtcdSettings,
    HostSpec,
    InventorySpec,
    PKISettings,
    Role,
    SSHSettings,
)
from kbuild.inventory.safe import local_dir
from kbuild.inventory.translation import Translation
from kbuild.inventory.yamlsource import KeyPath, YamlDocument, dotted, load_yaml

SECTIONS: dict[str, type[BaseModel]] = {
    "cluster": ClusterSettings,
    "ssh": SSHSettings,
    "pki": PKISettings,
    "etcd": EtcdSettings,
    "artifacts": ArtifactSettings,
}
TOP_LEVEL_KEYS = set(InventorySpec.model_fields)


def load_cluster(path: str | os.PathLike[str], *, state_dir: str | os.PathLike[str] | None = None,
                 text: str | None = None) -> Cluster:
    """Read, validate and resolve an inventory. Raises InventoryError listing every problem found.

    `path` is a kbuild inventory, an Ansible inventory (a file or a directory), the JSON of
    `inventory check --json` or `ansible-inventory --list`, or a k0sctl.yaml. `text`, when given, is
    the inventory already read (from stdin, `-i -`): `path` then only names it.
    """
    file = Path(path)
    if text is not None and formats.kind_of(file, text) == "ansible":
        raise UsageError(f"{file}: an Ansible inventory cannot be read from stdin (its group_vars live beside it)",
                         hint="pass the Ansible inventory's file or directory with -i PATH")
    if text is None:
        text = None if file.is_dir() else read_inventory(file)
    translation = foreign_inventory(file, text)
    if translation is not None:
        return from_translation(translation, file, state_dir, base=file if text is None else None)
    assert text is not None  # a directory is always an Ansible inventory
    doc = load_yaml(text)
    if formats.kind_of(file, text) == "check-json":
        doc = YamlDocument(doc.data["inventory"], {k[1:]: v for k, v in doc.lines.items() if k[:1] == ("inventory",)})
    return validate(doc, file, state_dir=state_dir)


def foreign_inventory(file: Path, text: str | None = None) -> Translation | None:
    """An Ansible inventory or a k0sctl.yaml as a kbuild document (not yet validated); None for kbuild's own.
    `text` is the file's, when the caller has read it already."""
    if file.is_dir():
        return kubespray.translate(ansible.read(file), file)
    if text is None:
        text = read_inventory(file)
    kind = formats.kind_of(file, text)
    if kind == "ansible":
        return kubespray.translate(ansible.read(file), file)
    if kind == "k0sctl":
        return k0sctl.translate(file, text)
    return None


def from_translation(translation: Translation, file: Path, state_dir: str | os.PathLike[str] | None,
                      base: Path | None = None) -> Cluster:
    """Validate an inventory translated from another tool's, reporting each problem where the user wrote it."""
    if any(p.severity == "error" for p in translation.problems):
        raise InventoryError(str(file), translation.problems)
    doc = YamlDocument(translation.native, problems=list(translation.problems))
    try:
        return validate(doc, file, state_dir=state_dir, base=base)
    except InventoryError as exc:
        raise InventoryError(exc.file, [translation.locate(p) for p in exc.problems]) from None


def read_inventory(file: Path) -> str:
    return textfile.read_text(file, "inventory", missing_hint="pass the inventory with -i PATH",
                              not_regular_hint="pass the inventory file itself with -i PATH")


def validate(doc: YamlDocument, file: Path, *, state_dir: str | os.PathLike[str] | None = None,
             base: Path | None = None) -> Cluster:
    """Validate a kbuild inventory document; relative paths in it are relative to `base` (default: its folder)."""
    problems = list(doc.problems)  # from reading it: errors stop here, warnings (Ansible import) go on
    if any(p.severity == "error" for p in problems):
        raise InventoryError(str(file), problems)
    data = doc.data
    if not isinstance(data, dict):
        raise InventoryError(str(file), [Problem("", "the inventory must be a mapping: kbuild's (cluster, hosts) or "
                                                     "an Ansible inventory's groups", 1)])

    parsed: dict[str, Any] = {}
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(_unknown_key(doc, (str(key),), TOP_LEVEL_KEYS))
    for key in ("cluster", "hosts"):
        if key not in data:
            problems.append(Problem(key, "required section is missing", None))

    for name, model in SECTIONS.items():
        if name in data:
            value = data[name] if data[name] is not None else {}
            parsed[name] = _validate_model(model, value, (name,), doc, problems)
        elif name != "cluster":
            parsed[name] = model()

    state_value = data.get("state_dir")
    if state_value is not None and not isinstance(state_value, str):
        problems.append(Problem("state_dir", "must be a path (a string)", doc.line_of(("state_dir",))))
    elif state_value is not None:
        try:
            local_dir(state_value)
        except ValueError as exc:
            problems.append(Problem("state_dir", str(exc), doc.line_of(("state_dir",))))

    hosts: dict[str, HostSpec] = {}
    raw_hosts = data.get("hosts")
    if "hosts" in data and (not isinstance(raw_hosts, dict) or not raw_hosts):
        problems.append(Problem("hosts", "must be a mapping of host name to host settings, with at least one host",
                                doc.line_of(("hosts",))))
    elif isinstance(raw_hosts, dict):
        for name, spec in raw_hosts.items():
            name = str(name)
            if not DNS_NAME.match(name):
                problems.append(Problem(f"hosts.{name}", node_name_problem(name), doc.line_of(("hosts", name))))
            host = _validate_model(HostSpec, spec if spec is not None else {}, ("hosts", name), doc, problems)
            if host is not None:
                hosts[name] = host

    cluster_settings = _usable(parsed.get("cluster"))
    complete = {name: host for name, host in hosts.items() if not isinstance(host, _Partial)}
    problems += _cross_checks(cluster_settings, {n: _usable(h) for n, h in hosts.items()}, doc,
                              raw_hosts if isinstance(raw_hosts, dict) else {})
    errors = [p for p in problems if p.severity == "error"]
    if errors or "cluster" not in parsed or any(v is None or isinstance(v, _Partial) for v in parsed.values()) \
            or len(complete) != len(hosts):
        raise InventoryError(str(file), problems)

    warnings = tuple(p.render(str(file)) for p in problems if p.severity == "warning")
    return _resolve(file, parsed, hosts, state_value, state_dir, warnings, base or file.parent)


# -- model validation with readable messages ---------------------------------------------------


def _validate_model(model: type[BaseModel], value: Any, base: KeyPath, doc: YamlDocument,
                    problems: list[Problem]) -> Any:
    if not isinstance(value, dict):
        problems.append(Problem(dotted(base), f"must be a mapping, got {_kind(value)}", doc.line_of(base)))
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        for err in exc.errors():
            loc = base + tuple(str(p) for p in err["loc"])
            problems.append(_problem_from(err, model, base, loc, doc))
        bad_keys = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    # Validate again without the broken keys so the checks across fields still run on the rest and
    # every problem is reported in one go; the inventory stays rejected.
    try:
        partial = model.model_validate({k: v for k, v in value.items() if k not in bad_keys})
    except ValidationError:
        return None
    return _Partial(partial)


class _Partial:
    """A section that validated only after its broken keys were dropped: good for cross-checks only."""

    def __init__(self, model: BaseModel) -> None:
        self.model = model


def _usable(value: Any) -> Any:
    return value.model if isinstance(value, _Partial) else value


def _problem_from(err: dict[str, Any], model: type[BaseModel], base: KeyPath, loc: KeyPath,
                  doc: YamlDocument) -> Problem:
    kind = err["type"]
    line = doc.line_of(loc)
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[len(base):-1])
        return _unknown_key(doc, loc, allowed)
    if kind == "missing":
        return Problem(dotted(loc), "required key is missing", line)
    message = err["msg"].removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error") and "input" in err and not isinstance(err["input"], dict):
        message = f"{message} (got {err['input']!r})"
    return Problem(dotted(loc), message, line)


def _unknown_key(doc: YamlDocument, loc: KeyPath, allowed: set[str]) -> Problem:
    key = loc[-1]
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else (f"; allowed: {', '.join(sorted(allowed))}" if allowed else "")
    return Problem(dotted(loc), f"unknown key {key!r}{hint}", doc.line_of(loc))


def _fields_at(model: type[BaseModel], rel: KeyPath) -> set[str]:
    """The keys the schema allows at a path below `model` (for 'did you mean' hints)."""
    current: Any = model
    for part in rel:
        current = _field_model(current, part)
        if current is None:
            return set()
    return set(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else set()


def _field_model(model: Any, part: str) -> Any:
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
        return None
    annotation = model.model_fields[part].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "nothing"}.get(type(value), type(value).__name__)


# -- checks across fields and hosts ---------------------------------------------------------------


def _cross_checks(cluster: ClusterSettings | None, hosts: dict[str, HostSpec], doc: YamlDocument,
                  raw_hosts: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def add(path: KeyPath, message: str, severity: str = "error") -> None:
        problems.append(Problem(dotted(path), message, doc.line_of(path), severity))

    seen: dict[Any, str] = {}
    for name, host in hosts.items():
        if host.address in seen:
            add(("hosts", name, "address"), f"address {host.address} is already used by host {seen[host.address]!r}")
        else:
            seen[host.address] = name

    all_valid = len(hosts) == len(raw_hosts)
    if all_valid and hosts:
        roles = [set(h.roles) for h in hosts.values()]
        if not any(Role.CONTROL_PLANE in r for r in roles):
            add(("hosts",), "no host has the role control-plane; at least one is needed")
        etcd_count = sum(Role.ETCD in r for r in roles)
        if etcd_count == 0:
            add(("hosts",), "no host has the role etcd; at least one is needed")
        elif etcd_count % 2 == 0:
            add(("hosts",), f"{etcd_count} etcd members: an even count tolerates no more failures than "
                            f"{etcd_count - 1}; use an odd number", "warning")
        if not any(Role.WORKER in r for r in roles):
            add(("hosts",), "no host has the role worker: pods have nowhere to run", "warning")

    if cluster is None:
        return problems

    pod, svc = cluster.pod_cidr, cluster.service_cidr
    if pod.version == svc.version and pod.overlaps(svc):
        add(("cluster", "service_cidr"), f"{svc} overlaps cluster.pod_cidr {pod}")
    if svc.version == 4 and not 12 <= svc.prefixlen <= 28:
        add(("cluster", "service_cidr"), f"{svc} must be between /12 and /28 (kube-apiserver allocates from it, "
                                         "and needs room for the kubernetes and DNS service IPs)")
    if svc.version == 6 and not 108 <= svc.prefixlen <= 124:
        add(("cluster", "service_cidr"), f"{svc} must be between /108 and /124 (kube-apiserver refuses a larger "
                                         "IPv6 range, and needs room for the kubernetes and DNS service IPs)")
    if pod.version == 6 and pod.prefixlen > 112:
        add(("cluster", "pod_cidr"), f"{pod} is too small: an IPv6 pod network needs at least a /112, each node "
                                     "getting 16 bits of it")
    elif pod.prefixlen > cluster.node_cidr_mask_size:
        add(("cluster", "pod_cidr"), f"{pod} is smaller than one node's range "
                                     f"(/{cluster.node_cidr_mask_size}, cluster.node_cidr_mask_size)")
    elif hosts and pod.version == 4:
        blocks = 2 ** (cluster.node_cidr_mask_size - pod.prefixlen)
        nodes = sum(Role.WORKER in h.roles for h in hosts.values())
        if blocks < nodes:
            add(("cluster", "pod_cidr"), f"{pod} holds only {blocks} node ranges of "
                                         f"/{cluster.node_cidr_mask_size} for {nodes} nodes")
    if cluster.cluster_dns is not None and cluster.cluster_dns not in svc:
        add(("cluster", "cluster_dns"), f"{cluster.cluster_dns} is not inside cluster.service_cidr {svc}")
    elif cluster.cluster_dns is not None and cluster.cluster_dns in (svc.network_address, kubernetes_service_ip(svc)):
        add(("cluster", "cluster_dns"), f"{cluster.cluster_dns} is the network address or the `kubernetes` Service's "
                                        f"address of {svc}; pick another (kbuild's default is the 10th address)")

    for name, host in hosts.items():
        for label, net in (("pod_cidr", pod), ("service_cidr", svc)):
            if host.address.version == net.version and host.address in net:
                add(("hosts", name, "address"), f"{host.address} is inside cluster.{label} {net}; "
                                                "host addresses must be outside the cluster's networks")

    if cluster.api_endpoint:
        try:
            host_part, _ = split_host_port(cluster.api_endpoint, cluster.api_port)
            if not _is_name_or_ip(host_part):
                add(("cluster", "api_endpoint"), f"{host_part!r} is neither a DNS name nor an IP address")
        except ValueError as exc:
            add(("cluster", "api_endpoint"), str(exc))
    for i, san in enumerate(cluster.extra_sans):
        if not _is_name_or_ip(san):
            add(("cluster", "extra_sans", str(i)), f"{san!r} is neither a DNS name nor an IP address")
    return problems


def node_name_problem(name: str) -> str:
    """Why `name` cannot be a Node name, and the name Kubernetes would accept instead."""
    suggestion = re.sub(r"[^a-z0-9.-]+", "-", name.lower())
    suggestion = ".".join(part.strip("-") for part in suggestion.split(".") if part.strip("-"))[:253]
    hint = f"; try {suggestion!r}" if suggestion and DNS_NAME.match(suggestion) else ""
    return (f"host name {name!r} is not a valid node name (a DNS subdomain as Kubernetes wants for Nodes: lowercase "
            f"letters, digits, '-' and '.', like cp-1 or cp1.example.com){hint}")


def _is_name_or_ip(value: str) -> bool:
    if "%" in value:  # an interface scope means nothing in a certificate or to a client elsewhere
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(DNS_NAME.match(value.lower())) and not value.replace(".", "").isdigit()


# -- resolution --------------------------------------------------------------------------------


def _resolve(file: Path, parsed: dict[str, Any], hosts: dict[str, HostSpec], state_value: str | None,
             state_override: str | os.PathLike[str] | None, warnings: tuple[str, ...], base: Path) -> Cluster:
    settings: ClusterSettings = parsed["cluster"]
    ssh: SSHSettings = parsed["ssh"]
    if state_override is not None:
        state_dir = _state_dir_option(str(state_override), "--state-dir")
    elif os.environ.get("KBUILD_STATE_DIR"):
        state_dir = _state_dir_option(os.environ["KBUILD_STATE_DIR"], "KBUILD_STATE_DIR")
    elif state_value:
        state_dir = _relative_to(base, state_value)
    else:
        state_dir = base / ".kbuild" / settings.name

    resolved: list[Host] = []
    for name, spec in hosts.items():
        o = spec.ssh
        key_file = o.key_file or ssh.key_file
        bastion = o.bastion or ssh.bastion
        if bastion is not None and bastion.key_file:  # paramiko opens key files as given: resolve it here
            bastion = bastion.model_copy(update={"key_file": str(_relative_to(base, bastion.key_file))})
        resolved.append(Host(
            name=name,
            address=spec.address,
            roles=frozenset(spec.roles),
            arch=spec.arch,
            ssh=HostSSH(
                host=o.host or str(spec.address),
                port=o.port or ssh.port,
                user=o.user or ssh.user,
                key_file=str(_relative_to(base, key_file)) if key_file else None,
                become=ssh.become if o.become is None else o.become,
                bastion=bastion,
                connect_timeout=o.connect_timeout or ssh.connect_timeout,
                retries=ssh.retries if o.retries is None else o.retries,
                persist=ssh.persist if o.persist is None else o.persist,
            ),
            labels=dict(spec.labels),
            taints=tuple(spec.taints),
            extra_flags={k: dict(v) for k, v in spec.extra_flags.items()},
        ))
    known_hosts = _relative_to(base, ssh.known_hosts) if ssh.known_hosts else state_dir / "known_hosts"
    return Cluster(
        name=settings.name,
        settings=settings,
        pki=parsed["pki"],
        etcd=parsed["etcd"],
        artifacts=parsed["artifacts"],
        hosts=tuple(resolved),
        inventory_path=file,
        state_dir=state_dir,
        host_key_policy=ssh.host_key_policy,
        known_hosts=known_hosts,
        warnings=warnings,
        state_dir_given=state_override is not None or bool(os.environ.get("KBUILD_STATE_DIR")),
    )


def _state_dir_option(value: str, where: str) -> Path:
    """The same rule as the inventory's state_dir, for the command line and the environment."""
    try:
        local_dir(str(Path(os.path.expanduser(value)).absolute()))
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}", hint="give the cluster a directory of its own, e.g. .kbuild/<cluster>") from None
    return Path(value)


def _relative_to(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path
