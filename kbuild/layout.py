"""Where things live on a cluster host: the directories and the paths of everything that is not the PKI.

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
# The PKI's files (certificates, keys, kubeconfigs, the encryption config) are placed by the PKI
# table, kbuild.pki.certlist, under these directories: ask it with remote_path("ca.crt").

KUBELET_DIR = P("/var/lib/kubelet")
KUBELET_PKI_DIR = KUBELET_DIR / "pki"

# -- component configuration -------------------------------------------------------------------------
ADDONS_DIR = K8S_DIR / "addons"  # cluster objects kbuild applies through the API (RBAC)
APISERVER_KUBELET_RBAC = ADDONS_DIR / "apiserver-to-kubelet-rbac.yaml"
COREDNS_MANIFEST = ADDONS_DIR / "coredns.yaml"
AUDIT_POLICY = K8S_DIR / "audit-policy.yaml"
AUDIT_LOG = P("/var/log/kubernetes/audit.log")
AUTHENTICATION_CONFIG = K8S_DIR / "authentication-config.yaml"  # anonymous auth limited to health endpoints
SCHEDULER_CONFIG = K8S_DIR / "kube-scheduler.yaml"
KUBELET_CONFIG = KUBELET_DIR / "config.yaml"
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
