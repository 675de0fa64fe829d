"""Stand-in command lines: flag lists per minor, pflag parsing, --version, unknown/removed flags, missing files.

Real parts used: none (the built stand-in executables only).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from io import BytesIO

import pytest

from .build import (
    COMPONENTS,
    SUPPORTED_MINORS,
    SUPPORTED_VERSIONS,
    build_standin,
    flag_list,
)
from .conftest import V133, V134
from .standin.flags import FlagError, parse, parse_spec


def run(binary, *args, timeout=10) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(binary), *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("minor", SUPPORTED_MINORS)
def test_flag_lists_are_complete_data(component, minor):
    specs = parse_spec(flag_list(component, minor))
    assert len(specs) > 50
    assert specs["version"].type == "version" and specs["help"].shorthand == "h" and specs["v"].shorthand == "v"
    assert specs["help"].is_bool and not specs["v"].is_bool


def test_flag_list_difference_between_minors_is_known():
    """Only kubelet --cloud-config went away between 1.33 and 1.34 (removed in v1.34.0-alpha.1, #130161)."""
    diffs = {}
    for comp in COMPONENTS:
        old = set(parse_spec(flag_list(comp, "1.33")))
        new = set(parse_spec(flag_list(comp, "1.34")))
        if old != new:
            diffs[comp] = (sorted(old - new), sorted(new - old))
    assert diffs == {"kubelet": (["cloud-config"], [])}


def test_pflag_parsing():
    specs = parse_spec("--anonymous-auth bool\n--etcd-servers strings\n--v int -v\n--help bool -h\n--version version\n")
    f = parse(["--anonymous-auth=false", "--etcd-servers", "https://a:2379,https://b:2379", "-v=4", "-h", "--version"], specs)
    assert f.get_bool("anonymous-auth", True) is False
    assert f.get_list("etcd-servers") == ["https://a:2379", "https://b:2379"]
    assert f.get("v") == "4" and f.given("help") and f.get("version") == "true"
    assert parse(["--anonymous-auth", "--v", "2"], specs).get_bool("anonymous-auth") is True
    # a bool flag never eats the next word: it stays a positional argument
    assert parse(["--anonymous-auth", "false"], specs).args == ["false"]
    with pytest.raises(FlagError, match=r'invalid argument "yes" for "--anonymous-auth" flag'):
        parse(["--anonymous-auth=yes"], specs)
    with pytest.raises(FlagError, match="flag needs an argument: --etcd-servers"):
        parse(["--etcd-servers"], specs)
    with pytest.raises(FlagError, match="unknown flag: --insecure-port"):
        parse(["--insecure-port=8080"], specs)
    with pytest.raises(FlagError, match="unknown shorthand flag: 'x' in -x"):
        parse(["-x"], specs)


def test_build_is_one_executable_with_stdlib_and_yaml_only():
    data = build_standin("kubelet", "v1.33.5")
    assert data.startswith(b"#!/usr/bin/python3\n")
    assert build_standin("kubelet", "1.33.5") == data  # repeatable, so a mirror's .sha256 holds
    with zipfile.ZipFile(BytesIO(data[len(b"#!/usr/bin/python3\n"):])) as zf:
        names = zf.namelist()
        assert "__main__.py" in names and "standin/_embedded.py" in names
        for name in names:
            tree = ast.parse(zf.read(name))
            for node in ast.walk(tree):
                mods = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    mods = [node.module or ""]
                for mod in mods:
                    top = mod.split(".")[0]
                    assert top in sys.stdlib_module_names or top in ("yaml", "standin"), f"{name} imports {mod}"
    with pytest.raises(ValueError, match="no flag list"):
        build_standin("kubelet", "1.31.0")


def test_supported_versions_are_real_releases():
    assert SUPPORTED_VERSIONS == ("1.33.5", "1.34.1")


@pytest.mark.parametrize("component", COMPONENTS)
def test_version_output(bins, component):
    for version in (V133, V134):
        res = run(bins[(component, version)], "--version")
        assert res.returncode == 0 and res.stdout == f"Kubernetes v{version}\n"


@pytest.mark.parametrize("component", COMPONENTS)
def test_unknown_flag_is_rejected(bins, component):
    res = run(bins[(component, V133)], "--no-such-flag=1")
    assert res.returncode == 1
    assert "unknown flag: --no-such-flag" in res.stderr
    assert res.stderr.startswith("Error: ")


def test_removed_flag_is_rejected_by_the_minor_without_it(bins, tmp_path):
    # kubelet --cloud-config: accepted by 1.33 (it gets past flag parsing to the config checks) ...
    old = run(bins[("kubelet", V133)], "--cloud-config=/etc/cloud.conf", f"--config={tmp_path}/missing.yaml")
    assert "unknown flag" not in old.stderr and "missing.yaml" in old.stderr
    # ... and refused by 1.34, which removed it
    new = run(bins[("kubelet", V134)], "--cloud-config=/etc/cloud.conf")
    assert new.returncode == 1 and "unknown flag: --cloud-config" in new.stderr
    # --insecure-port has been gone for years: refused by every supported apiserver
    for version in (V133, V134):
        res = run(bins[("kube-apiserver", version)], "--insecure-port=8080")
        assert res.returncode == 1 and "unknown flag: --insecure-port" in res.stderr


def test_positional_arguments_are_refused(bins):
    res = run(bins[("kube-scheduler", V133)], "extra")
    assert res.returncode == 1 and "does not take any arguments" in res.stderr


def test_apiserver_missing_cert_file_names_the_file(bins, pki):
    res = run(bins[("kube-apiserver", V133)], "--etcd-servers=https://127.0.0.1:1",
              "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-signing-key-file={pki.dir / 'sa.key'}",
              "--tls-cert-file=/nonexistent/apiserver.crt", "--tls-private-key-file=/nonexistent/apiserver.key")
    assert res.returncode != 0
    assert "/nonexistent/apiserver.crt" in res.stderr and "no such file or directory" in res.stderr


def test_apiserver_requires_service_account_flags_and_valid_service_range(bins, pki):
    res = run(bins[("kube-apiserver", V133)], "--etcd-servers=https://127.0.0.1:1")
    assert res.returncode == 1 and "service-account-issuer is a required flag" in res.stderr
    sa = f"--service-account-signing-key-file={pki.dir / 'sa.key'}"
    res = run(bins[("kube-apiserver", V133)], "--etcd-servers=https://127.0.0.1:1", "--service-account-issuer=https://k", sa,
              "--service-cluster-ip-range=10.0.0.0/8")
    assert res.returncode == 1 and "--service-cluster-ip-range is too large" in res.stderr
    res = run(bins[("kube-apiserver", V133)], "--etcd-servers=https://127.0.0.1:1", "--service-account-issuer=https://k", sa,
              "--authorization-mode=Node,RBAC,Magic")
    assert res.returncode == 1 and 'authorization-mode "Magic" is not a valid mode' in res.stderr


def test_apiserver_checks_encryption_config_and_audit_policy(bins, pki, tmp_path):
    base = ["--etcd-servers=https://127.0.0.1:1", "--service-account-issuer=https://k",
            f"--service-account-signing-key-file={pki.dir / 'sa.key'}"]
    enc = tmp_path / "enc.yaml"
    enc.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n"
                   "  providers:\n  - aescbc:\n      keys:\n      - name: key1\n        secret: c2hvcnQ=\n  - identity: {}\n")
    res = run(bins[("kube-apiserver", V133)], *base, f"--encryption-provider-config={enc}")
    assert res.returncode == 1 and "secret is not of the expected length, got 5" in res.stderr
    enc.write_text(enc.read_text().replace("kind: EncryptionConfiguration", "kind: EncryptionConfig"))
    res = run(bins[("kube-apiserver", V133)], *base, f"--encryption-provider-config={enc}")
    assert res.returncode == 1 and 'no kind "EncryptionConfig" is registered' in res.stderr
    policy = tmp_path / "audit.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")
    res = run(bins[("kube-apiserver", V133)], *base, f"--audit-policy-file={policy}")
    assert res.returncode == 1 and "loaded illegal policy with 0 rules" in res.stderr


def test_kubelet_config_kind_is_checked(bins, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n")
    res = run(bins[("kubelet", V133)], f"--config={cfg}")
    assert res.returncode == 1 and 'no kind "KubeProxyConfiguration" is registered' in res.stderr
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemdd\n"
                   "authentication:\n  x509:\n    clientCAFile: /nonexistent/ca.crt\n")
    res = run(bins[("kubelet", V133)], f"--config={cfg}")
    assert res.returncode == 1 and 'cgroupDriver "systemdd"' in res.stderr
    cfg.write_text(cfg.read_text().replace("systemdd", "systemd"))
    res = run(bins[("kubelet", V133)], f"--config={cfg}")
    assert res.returncode == 1 and "/nonexistent/ca.crt" in res.stderr


def test_kube_proxy_and_scheduler_configs_are_checked(bins, tmp_path):
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: userspace\n")
    res = run(bins[("kube-proxy", V133)], f"--config={cfg}")
    assert res.returncode == 1 and 'Unsupported value: "userspace"' in res.stderr
    cfg.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n"
                   "clientConnection:\n  kubeconfig: /nonexistent/kube-proxy.conf\n")
    res = run(bins[("kube-proxy", V133)], f"--config={cfg}")
    assert res.returncode == 1 and "/nonexistent/kube-proxy.conf" in res.stderr
    sched = tmp_path / "sched.yaml"
    sched.write_text("apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n")
    res = run(bins[("kube-scheduler", V133)], f"--config={sched}")
    assert res.returncode == 1 and 'for version "kubescheduler.config.k8s.io/v1beta3"' in res.stderr


def test_controller_manager_needs_a_kubeconfig_and_its_files(bins, tmp_path):
    res = run(bins[("kube-controller-manager", V133)])
    assert res.returncode == 1 and "unable to load in-cluster configuration" in res.stderr
    res = run(bins[("kube-controller-manager", V133)], f"--kubeconfig={tmp_path}/cm.conf")
    assert res.returncode == 1 and f"{tmp_path}/cm.conf" in res.stderr
    res = run(bins[("kube-controller-manager", V133)], "--cluster-signing-cert-file=/nonexistent/ca.crt",
              "--cluster-signing-key-file=/nonexistent/ca.key")
    assert res.returncode == 1 and "/nonexistent/ca.crt" in res.stderr
