"""Component configuration files: parse, check apiVersion/kind and the fields the stand-ins rely on."""

from __future__ import annotations

import base64
import ipaddress
import json
import re

import yaml

from .common import Fatal, check_ca_file, check_cert_key_pair, read_text, require_file

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: object, field: str, default: float) -> float:
    """Go duration string ('10s', '1m30s') to seconds."""
    if value in (None, ""):
        return default
    text = str(value)
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise Fatal(f"invalid configuration: {field}: time: invalid duration {json.dumps(text)}")
    return total


def load_typed(path: str, what: str, kind: str, versions: tuple[str, ...]) -> dict:
    """Decode a versioned config file the way the component's scheme would (kind + apiVersion)."""
    text = read_text(path, what)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise Fatal(f"{what}: failed to decode {path}: yaml: {err}") from err
    if not isinstance(doc, dict):
        raise Fatal(f"{what}: failed to decode {path}: Object 'Kind' is missing in '{text.strip()[:60]}'")
    got_kind, got_version = doc.get("kind"), doc.get("apiVersion")
    if not got_kind:
        raise Fatal(f"{what}: failed to decode {path}: Object 'Kind' is missing")
    if got_kind != kind or got_version not in versions:
        raise Fatal(f"{what}: failed to decode {path}: no kind {json.dumps(got_kind)} is registered for version "
                    f"{json.dumps(got_version)} (expected kind {kind} in {', '.join(versions)})")
    return doc


def _cidrs(value: str, field: str) -> list[ipaddress._BaseNetwork]:
    nets = []
    for part in [p.strip() for p in value.split(",") if p.strip()]:
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError as err:
            raise Fatal(f"invalid configuration: {field}: Invalid value: {json.dumps(value)}: must be a valid CIDR") from err
    return nets


def cidr_list(value: str, field: str) -> list[ipaddress._BaseNetwork]:
    nets = _cidrs(value, field)
    if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
        raise Fatal(f"invalid configuration: {field}: Invalid value: {json.dumps(value)}: only one CIDR allowed "
                    "or a valid DualStack CIDR (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)")
    return nets


def host_port(value: str, field: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[?([0-9A-Za-z.:-]*?)\]?:(\d+)", value or "")
    if not m:
        raise Fatal(f"invalid configuration: {field}: Invalid value: {json.dumps(value)}: must be IP:port")
    port = int(m.group(2))
    if port > 65535:
        raise Fatal(f"invalid configuration: {field}: Invalid value: {json.dumps(value)}: must be a valid port")
    return m.group(1) or "0.0.0.0", port


# -- kubelet ----------------------------------------------------------------------------------------


def kubelet_config(path: str) -> dict:
    what = f"failed to load kubelet config file, path: {path}, error"
    doc = load_typed(path, what, "KubeletConfiguration", ("kubelet.config.k8s.io/v1beta1",))
    bad = []
    driver = doc.get("cgroupDriver", "cgroupfs")
    if driver not in ("cgroupfs", "systemd"):
        bad.append(f'invalid configuration: cgroupDriver {json.dumps(driver)}: supported values are "cgroupfs" and "systemd"')
    authn = doc.get("authentication") or {}
    anon = (authn.get("anonymous") or {}).get("enabled", False)
    if not isinstance(anon, bool):
        bad.append("invalid configuration: authentication.anonymous.enabled must be a boolean")
    mode = (doc.get("authorization") or {}).get("mode", "Webhook")
    if mode not in ("AlwaysAllow", "Webhook"):
        bad.append(f"invalid configuration: authorization.mode {json.dumps(mode)}: supported values are AlwaysAllow and Webhook")
    for ip in doc.get("clusterDNS") or []:
        try:
            ipaddress.ip_address(str(ip))
        except ValueError:
            bad.append(f"invalid configuration: clusterDNS {json.dumps(ip)}: must be a valid IP address")
    for field, lo in (("port", 1), ("healthzPort", 0), ("readOnlyPort", 0)):
        if field in doc and not (lo <= int(doc[field]) <= 65535):
            bad.append(f"invalid configuration: {field} ({doc[field]}) must be between {lo} and 65535, inclusive")
    if bool(doc.get("tlsCertFile")) != bool(doc.get("tlsPrivateKeyFile")):
        bad.append("invalid configuration: tlsCertFile and tlsPrivateKeyFile must be set together")
    if bad:
        raise Fatal("failed to validate kubelet configuration, error: [" + ", ".join(bad) + "]")
    for field in ("nodeStatusUpdateFrequency", "syncFrequency", "nodeStatusReportFrequency"):
        parse_duration(doc.get(field), field, 0)
    ca = (authn.get("x509") or {}).get("clientCAFile")
    if ca:
        check_ca_file(ca, "unable to load client CA file")
    if doc.get("tlsCertFile"):
        check_cert_key_pair(doc["tlsCertFile"], doc["tlsPrivateKeyFile"], "failed to load kubelet serving certificate")
    return doc


# -- kube-proxy -------------------------------------------------------------------------------------


def check_proxy_mode(mode: str) -> None:
    """An empty mode means the default (iptables); anything else must be a mode the proxy has."""
    if mode not in ("", "iptables", "ipvs", "nftables"):
        raise Fatal(f'invalid configuration: KubeProxyConfiguration.Mode: Unsupported value: {json.dumps(mode)}: '
                    'supported values: "iptables", "ipvs", "nftables"')


def kube_proxy_config(path: str) -> dict:
    doc = load_typed(path, "failed to load kube-proxy configuration", "KubeProxyConfiguration",
                     ("kubeproxy.config.k8s.io/v1alpha1",))
    check_proxy_mode(doc.get("mode") or "")
    if doc.get("clusterCIDR"):
        cidr_list(doc["clusterCIDR"], "KubeProxyConfiguration.ClusterCIDR")
    for field in ("healthzBindAddress", "metricsBindAddress"):
        if doc.get(field):
            host_port(doc[field], f"KubeProxyConfiguration.{field[0].upper()}{field[1:]}")
    kubeconfig = (doc.get("clientConnection") or {}).get("kubeconfig")
    if kubeconfig:
        require_file(kubeconfig, "invalid configuration: clientConnection.kubeconfig")
    return doc


# -- kube-scheduler ---------------------------------------------------------------------------------


def scheduler_config(path: str) -> dict:
    doc = load_typed(path, "failed to load kube-scheduler configuration", "KubeSchedulerConfiguration",
                     ("kubescheduler.config.k8s.io/v1",))
    kubeconfig = (doc.get("clientConnection") or {}).get("kubeconfig")
    if kubeconfig:
        require_file(kubeconfig, "invalid configuration: clientConnection.kubeconfig")
    for profile in doc.get("profiles") or []:
        if not profile.get("schedulerName", "default-scheduler"):
            raise Fatal("invalid configuration: profiles[0].schedulerName: Required value")
    return doc


# -- kube-apiserver ---------------------------------------------------------------------------------

_KEY_LENGTHS = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}


def encryption_config(path: str) -> dict:
    what = "error while parsing file"
    doc = load_typed(path, what, "EncryptionConfiguration", ("apiserver.config.k8s.io/v1",))
    resources = doc.get("resources")
    if not resources:
        raise Fatal(f"{what}: resources: Required value: EncryptionConfiguration.Resources must contain at least one resource")
    for i, res in enumerate(resources):
        if not res.get("resources"):
            raise Fatal(f"{what}: resources[{i}].resources: Required value: "
                        "EncryptionConfiguration.Resources[].Resources must contain at least one resource")
        providers = res.get("providers")
        if not providers:
            raise Fatal(f"{what}: resources[{i}].providers: Required value: "
                        "EncryptionConfiguration.Resources[].Providers must contain at least one provider")
        for j, prov in enumerate(providers):
            kinds = [k for k in prov if k in ("identity", "aescbc", "aesgcm", "secretbox", "kms")]
            if len(kinds) != 1:
                raise Fatal(f"{what}: resources[{i}].providers[{j}]: Invalid value: {json.dumps(prov)}: more than one "
                            "provider specified in a single element, should split into different list elements")
            kind = kinds[0]
            if kind in _KEY_LENGTHS:
                keys = (prov[kind] or {}).get("keys")
                if not keys:
                    raise Fatal(f"{what}: resources[{i}].providers[{j}].{kind}.keys: Required value: keys (secret) must be provided")
                for k, key in enumerate(keys):
                    field = f"resources[{i}].providers[{j}].{kind}.keys[{k}]"
                    if not key.get("name"):
                        raise Fatal(f"{what}: {field}.name: Required value: key name must be provided")
                    try:
                        secret = base64.b64decode(str(key.get("secret", "")), validate=True)
                    except ValueError as err:
                        raise Fatal(f'{what}: {field}.secret: Invalid value: "REDACTED": secrets must be base64 encoded') from err
                    if len(secret) not in _KEY_LENGTHS[kind]:
                        raise Fatal(f'{what}: {field}.secret: Invalid value: "REDACTED": secret is not of the expected length, '
                                    f"got {len(secret)}, expected one of {list(_KEY_LENGTHS[kind])}")
    return doc


_AUDIT_LEVELS = ("None", "Metadata", "Request", "RequestResponse")


def audit_policy(path: str) -> dict:
    what = f"loading audit policy file: failed decoding file {json.dumps(path)}"
    doc = load_typed(path, what, "Policy", ("audit.k8s.io/v1",))
    rules = doc.get("rules") or []
    if not rules:
        raise Fatal(f"loaded illegal policy with 0 rules from file {path}")
    for i, rule in enumerate(rules):
        if rule.get("level") not in _AUDIT_LEVELS:
            raise Fatal(f"loading audit policy file: rules[{i}].level: Unsupported value: {json.dumps(rule.get('level'))}: "
                        f"supported values: {', '.join(json.dumps(x) for x in _AUDIT_LEVELS)}")
    return doc
