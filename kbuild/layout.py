"""Where things live on a cluster host: the one table of remote paths that PKI, templates and plays share.

The layout follows kubeadm's where kubeadm has one (/etc/kubernetes/pki, /etc/kubernetes/*.conf,
/var/lib/kubelet/config.yaml), so people who know kubeadm clusters find their way around.
"""

from __future__ import annotations

from pathlib import PurePosixPath as P

BIN_DIR = P("/usr/local/bin")
UNIT_DIR = P("/etc/systemd/system")
K8S_DIR = P("/etc/kubernetes")
PKI_DIR = K8S_DIR / "pki"
ETCD_PKI_DIR = PKI_DIR / "etcd"

# -- certificates and keys (CA keys stay on the controller except the cluster CA key, which the
# controller-manager needs to sign kubelet CSRs) ---------------------------------------------------
CA_CERT = PKI_DIR / "ca.crt"
CA_KEY = PKI_DIR / "ca.key"
APISERVER_CERT = PKI_DIR / "apiserver.crt"
APISERVER_KEY = PKI_DIR / "apiserver.key"
APISERVER_KUBELET_CLIENT_CERT = PKI_DIR / "apiserver-kubelet-client.crt"
APISERVER_KUBELET_CLIENT_KEY = PKI_DIR / "apiserver-kubelet-client.key"
APISERVER_ETCD_CLIENT_CERT = PKI_DIR / "apiserver-etcd-client.crt"
APISERVER_ETCD_CLIENT_KEY = PKI_DIR / "apiserver-etcd-client.key"
FRONT_PROXY_CA_CERT = PKI_DIR / "front-proxy-ca.crt"
FRONT_PROXY_CLIENT_CERT = PKI_DIR / "front-proxy-client.crt"
FRONT_PROXY_CLIENT_KEY = PKI_DIR / "front-proxy-client.key"
SA_KEY = PKI_DIR / "sa.key"
SA_PUB = PKI_DIR / "sa.pub"

ETCD_CA_CERT = ETCD_PKI_DIR / "ca.crt"
ETCD_SERVER_CERT = ETCD_PKI_DIR / "server.crt"
ETCD_SERVER_KEY = ETCD_PKI_DIR / "server.key"
ETCD_PEER_CERT = ETCD_PKI_DIR / "peer.crt"
ETCD_PEER_KEY = ETCD_PKI_DIR / "peer.key"
ETCD_HEALTHCHECK_CLIENT_CERT = ETCD_PKI_DIR / "healthcheck-client.crt"
ETCD_HEALTHCHECK_CLIENT_KEY = ETCD_PKI_DIR / "healthcheck-client.key"

# -- kubeconfigs (client certificates embedded) ----------------------------------------------------
ADMIN_KUBECONFIG = K8S_DIR / "admin.conf"
CONTROLLER_MANAGER_KUBECONFIG = K8S_DIR / "controller-manager.conf"
SCHEDULER_KUBECONFIG = K8S_DIR / "scheduler.conf"
KUBELET_KUBECONFIG = K8S_DIR / "kubelet.conf"
KUBE_PROXY_KUBECONFIG = K8S_DIR / "kube-proxy.conf"

# -- component configuration -------------------------------------------------------------------------
ENCRYPTION_CONFIG = K8S_DIR / "encryption-config.yaml"
ADDONS_DIR = K8S_DIR / "addons"  # cluster objects kbuild applies through the API (RBAC)
APISERVER_KUBELET_RBAC = ADDONS_DIR / "apiserver-to-kubelet-rbac.yaml"
COREDNS_MANIFEST = ADDONS_DIR / "coredns.yaml"
AUDIT_POLICY = K8S_DIR / "audit-policy.yaml"
AUDIT_LOG = P("/var/log/kubernetes/audit.log")
AUTHENTICATION_CONFIG = K8S_DIR / "authentication-config.yaml"  # anonymous auth limited to health endpoints
SCHEDULER_CONFIG = K8S_DIR / "kube-scheduler.yaml"
KUBELET_DIR = P("/var/lib/kubelet")
KUBELET_CONFIG = KUBELET_DIR / "config.yaml"
KUBELET_SERVING_CERT = KUBELET_DIR / "pki" / "kubelet.crt"
KUBELET_SERVING_KEY = KUBELET_DIR / "pki" / "kubelet.key"
KUBE_PROXY_DIR = P("/var/lib/kube-proxy")
KUBE_PROXY_CONFIG = KUBE_PROXY_DIR / "config.yaml"

CONTAINERD_CONFIG = P("/etc/containerd/config.toml")
CONTAINERD_SOCKET = P("/run/containerd/containerd.sock")
CNI_CONF_DIR = P("/etc/cni/net.d")
CNI_BIN_DIR = P("/opt/cni/bin")
# A list (bridge, then portmap for hostPort): containerd loads the first file of the directory by name.
CNI_BRIDGE_CONF = CNI_CONF_DIR / "10-bridge.conflist"
# What kbuild wrote before and removes: a plain .conf of the same rank would shadow the list.
CNI_RETIRED_CONFS = (CNI_CONF_DIR / "10-bridge.conf",)
CNI_LOOPBACK_CONF = CNI_CONF_DIR / "99-loopback.conf"

ETCD_DATA_DIR_DEFAULT = P("/var/lib/etcd")  # the inventory's etcd.data_dir wins
ETCD_BACKUP_SCRIPT = P("/usr/local/sbin/kbuild-etcd-backup")  # run by etcd-backup.service (etcd.backup)

# -- ports ----------------------------------------------------------------------------------------------
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_METRICS_PORT = 2381  # plain HTTP, loopback only
KUBELET_HEALTHZ_PORT = 10248  # plain HTTP, loopback only
KUBELET_PORT = 10250
KUBE_PROXY_METRICS_PORT = 10249  # loopback only
KUBE_PROXY_HEALTHZ_PORT = 10256
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259

# -- systemd units -------------------------------------------------------------------------------------


def unit_path(name: str) -> P:
    return UNIT_DIR / f"{name}.service"


def binary_path(name: str) -> P:
    return BIN_DIR / name
