"""kubespray's variables as kbuild reads them: each mapped to a kbuild setting, or warned about with what kbuild does.

One table per kind, so the README's mapping table, the warnings and the tests read the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# kubespray groups -> kbuild roles (the old kube-master/kube-node names too).
ROLE_GROUPS = {
    "kube_control_plane": "control-plane",
    "kube-master": "control-plane",
    "kube_master": "control-plane",
    "etcd": "etcd",
    "kube_node": "worker",
    "kube-node": "worker",
}
BASTION_GROUP = "bastion"

# Cluster-wide variables with a kbuild setting of their own: variable -> path in a kbuild inventory.
MAPPED: dict[str, tuple[str, ...]] = {
    "kube_version": ("cluster", "versions", "kubernetes"),
    "etcd_version": ("cluster", "versions", "etcd"),
    "containerd_version": ("cluster", "versions", "containerd"),
    "runc_version": ("cluster", "versions", "runc"),
    "cni_version": ("cluster", "versions", "cni_plugins"),
    "crictl_version": ("cluster", "versions", "crictl"),
    "kube_service_addresses": ("cluster", "service_cidr"),
    "kube_pods_subnet": ("cluster", "pod_cidr"),
    "kube_network_node_prefix": ("cluster", "node_cidr_mask_size"),
    "kube_apiserver_port": ("cluster", "api_port"),
    "dns_domain": ("cluster", "cluster_domain"),
    "kube_proxy_mode": ("cluster", "proxy_mode"),
    "supplementary_addresses_in_ssl_keys": ("cluster", "extra_sans"),
    "kubelet_fail_swap_on": ("cluster", "fail_swap_on"),
    "kube_encrypt_secret_data": ("cluster", "encryption_at_rest"),
    "kubelet_max_pods": ("cluster", "kubelet_config", "maxPods"),
    "kube_proxy_nodeport_addresses": ("cluster", "kube_proxy_config", "nodePortAddresses"),
    "kube_apiserver_node_port_range": ("cluster", "extra_flags", "kube-apiserver", "service-node-port-range"),
    "upstream_dns_servers": ("cluster", "addons", "coredns", "forward"),
    "etcd_data_dir": ("etcd", "data_dir"),
}
# Mapped with a rule of their own (kubespray.py): what each becomes.
MAPPED_SPECIALLY = {
    "cluster_name": "cluster.name when it is a DNS label (kubespray's default cluster.local is a domain: then "
                    "the inventory's folder names the cluster); also what `{{ cluster_name }}` resolves to",
    "loadbalancer_apiserver": "cluster.api_endpoint (address:port)",
    "apiserver_loadbalancer_domain_name": "cluster.api_endpoint's host when loadbalancer_apiserver is set, and "
                                          "cluster.extra_sans",
    "kube_network_plugin": "cni (bring your own) -> cluster.cni: none; any plugin -> a warning",
    "dns_mode": "none -> cluster.addons.coredns.enabled: false; coredns -> the default",
}
# Per-host variables: variable -> what it becomes.
HOST_MAPPED = {
    "ip": "hosts.<name>.address (first choice)",
    "access_ip": "hosts.<name>.address (when ip is unset)",
    "node_labels": "hosts.<name>.labels",
    "node_taints": "hosts.<name>.taints",
}
CONNECTION_MAPPED = {
    "ansible_host / ansible_ssh_host": "hosts.<name>.ssh.host (and the address when it is an IP and ip, "
                                       "access_ip are unset); ansible_ssh_host wins",
    "ansible_user / ansible_ssh_user": "hosts.<name>.ssh.user (unset: your local user, as Ansible)",
    "ansible_port / ansible_ssh_port": "hosts.<name>.ssh.port",
    "ansible_ssh_private_key_file / ansible_private_key_file": "hosts.<name>.ssh.key_file",
    "ansible_become": "hosts.<name>.ssh.become (commands through sudo -n)",
    "bastion group": "ssh.bastion (its ansible_host, ansible_port, ansible_user)",
}

NETWORK_PLUGIN_NOTE = "is not installed by kbuild; the pod network is the bridge CNI (cluster.cni: bridge), or " \
                      "cluster.cni: none to bring your own"


class _Rule:
    """A warning for some values of a variable; `when` says which, for the README's table."""

    def __init__(self, message: str, when: str, applies: Callable[[Any], bool]) -> None:
        self.message, self.when, self._applies = message, when, applies

    def __call__(self, value: Any) -> str | None:
        return self.message if self._applies(value) else None


def _unless(expected: set[Any], message: str) -> _Rule:
    allowed = {str(e).lower() for e in expected}
    return _Rule(message, f"unless {', '.join(sorted(allowed))}", lambda value: str(value).lower() not in allowed)


def _when_true(message: str) -> _Rule:
    return _Rule(message, "when true", lambda value: str(value).lower() in ("true", "yes", "on", "1"))


def _always(message: str) -> _Rule:
    return _Rule(message, "when set", lambda value: True)


ADDON_NOTE = "is not installed by kbuild; install it once the cluster is up"
# variable -> a function of its value giving the warning, or None when kbuild already does that.
WARNED: dict[str, _Rule] = {
    "container_manager": _unless({"containerd"}, "kbuild installs containerd"),
    "etcd_deployment_type": _unless({"host"}, "kbuild runs etcd on the host as a systemd service"),
    "etcd_kubeadm_enabled": _when_true("kbuild runs etcd on the host as a systemd service, not through kubeadm"),
    "enable_nodelocaldns": _when_true("kbuild does not deploy nodelocaldns; pods ask CoreDNS at cluster_dns"),
    "kube_network_plugin_multus": _when_true(f"Multus {ADDON_NOTE}"),
    "kube_proxy_strict_arp": _when_true("set strictARP in cluster.kube_proxy_config (ipvs) if you need it"),
    "kube_proxy_remove": _when_true("kbuild always runs kube-proxy"),
    "auto_renew_certificates": _when_true("kbuild renews certificates with `kbuild certs renew` "
                                          "(pki.renew_before_days)"),
    "kubeconfig_localhost": _when_true("kbuild keeps the admin kubeconfig in its state directory; "
                                       "`kbuild kubeconfig` prints or merges it"),
    "kubectl_localhost": _when_true("kbuild does not copy kubectl to the controller"),
    "enable_dual_stack_networks": _when_true("kbuild builds single-stack clusters"),
    "ipv6_stack": _when_true("kbuild builds single-stack clusters (set IPv6 cluster.pod_cidr/service_cidr for IPv6)"),
    "ntp_enabled": _when_true("kbuild does not manage time synchronisation"),
    "podsecuritypolicy_enabled": _when_true("PodSecurityPolicy no longer exists in Kubernetes"),
    "kube_pod_security_use_default": _when_true("set the admission configuration through cluster.extra_flags"),
    "kubernetes_audit": _when_true("set kube-apiserver's audit flags in cluster.extra_flags"),
}
for _addon in ("helm", "registry", "metrics_server", "local_path_provisioner", "local_volume_provisioner",
               "cephfs_provisioner", "rbd_provisioner", "ingress_nginx", "ingress_alb", "cert_manager", "metallb",
               "argocd", "krew", "dashboard", "gateway_api", "kube_vip", "csi_snapshot_controller",
               "node_feature_discovery", "persistent_volumes", "scheduler_plugins", "cinder_csi", "aws_ebs_csi",
               "azure_csi", "gcp_pd_csi", "vsphere_csi", "upcloud_csi", "expand_persistent_volumes"):
    WARNED[f"{_addon}_enabled"] = _when_true(f"{_addon.replace('_', '-')} {ADDON_NOTE}")
_FIXED_PATHS = "kbuild uses its own fixed paths on the hosts"
for _name in ("bin_dir", "kube_config_dir", "kube_cert_dir", "local_release_dir", "kube_script_dir",
              "kube_manifest_dir", "kube_token_dir", "kube_users_dir", "etcd_config_dir", "etcd_cert_dir",
              "system_namespace"):
    WARNED[_name] = _always(_FIXED_PATHS)
_NO_PROXY = "kbuild configures no proxy on the hosts; it downloads on the controller and pushes (artifacts.transfer)"
_MIRROR = "kbuild's binaries and images come from the official sites or artifacts.mirror"
_LOCAL_LB = "kbuild runs no API load balancer on the nodes; they use cluster.api_endpoint or the first control plane"
_SINGLE_STACK = "kbuild builds single-stack clusters"
for _names, _note in (
        (("http_proxy", "https_proxy", "no_proxy", "additional_no_proxy"), _NO_PROXY),
        (("download_run_once", "download_localhost", "download_container", "download_force_cache",
          "download_keep_remote_cache"), "kbuild downloads on the controller and pushes (artifacts.transfer)"),
        (("kube_image_repo", "gcr_image_repo", "docker_image_repo", "quay_image_repo", "github_image_repo",
          "files_repo", "registry_host", "github_url", "dl_k8s_io_url", "storage_googleapis_url"), _MIRROR),
        (("loadbalancer_apiserver_localhost", "loadbalancer_apiserver_type", "loadbalancer_apiserver_port",
          "loadbalancer_apiserver_healthcheck_port", "loadbalancer_apiserver_keepalive_timeout"), _LOCAL_LB),
        (("kube_service_addresses_ipv6", "kube_pods_subnet_ipv6", "kube_network_node_prefix_ipv6",
          "ipv4_stack"), _SINGLE_STACK),
        (("kube_log_level", "kube_feature_gates", "kube_apiserver_enable_admission_plugins",
          "kube_apiserver_admission_control_config_file", "kube_token_auth", "kube_webhook_token_auth",
          "kube_oidc_auth"), "set the flag in cluster.extra_flags"),
        (("ntp_servers", "ntp_package"), "kbuild does not manage time synchronisation"),
        (("etcd_member_name",), "kbuild names each etcd member after its host"),
):
    for _name in _names:
        WARNED[_name] = _always(_note)

# Families of kubespray variables by prefix, when no entry above names them.
WARNED_PREFIXES: dict[str, str] = {
    "calico_": "Calico is not installed by kbuild", "cilium_": "Cilium is not installed by kbuild",
    "flannel_": "Flannel is not installed by kbuild", "kube_ovn_": "Kube-OVN is not installed by kbuild",
    "weave_": "Weave is not installed by kbuild", "macvlan_": "macvlan is not installed by kbuild",
    "kube_router_": "kube-router is not installed by kbuild", "multus_": "Multus is not installed by kbuild",
    "crio_": "kbuild installs containerd, not CRI-O", "docker_": "kbuild installs containerd, not Docker",
    "containerd_": "set containerd settings in cluster.containerd_config",
    "kubelet_": "set kubelet settings in cluster.kubelet_config (KubeletConfiguration keys)",
    "kube_proxy_": "set kube-proxy settings in cluster.kube_proxy_config",
    "kube_apiserver_": "set the flag in cluster.extra_flags.kube-apiserver",
    "kube_controller_": "set the flag in cluster.extra_flags.kube-controller-manager",
    "kube_scheduler_": "set the flag in cluster.extra_flags.kube-scheduler",
    "kube_oidc_": "set the OIDC flags in cluster.extra_flags.kube-apiserver",
    "etcd_": "set the flag in cluster.extra_flags.etcd", "coredns_": "CoreDNS is set in cluster.addons.coredns",
    "nodelocaldns_": "kbuild does not deploy nodelocaldns", "dns_": "CoreDNS is set in cluster.addons.coredns",
    "metrics_server_": f"metrics-server {ADDON_NOTE}", "ingress_": f"the ingress controller {ADDON_NOTE}",
    "cert_manager_": f"cert-manager {ADDON_NOTE}", "metallb_": f"MetalLB {ADDON_NOTE}",
    "argocd_": f"Argo CD {ADDON_NOTE}", "helm_": f"Helm {ADDON_NOTE}", "krew_": f"krew {ADDON_NOTE}",
    "kube_vip_": f"kube-vip {ADDON_NOTE}", "registry_": f"the registry {ADDON_NOTE}",
}
PROXY_MODES = ("iptables", "nftables", "ipvs")


def warning_for(name: str, value: Any) -> str | None:
    """What kbuild does instead of `name: value`; None when it is what kbuild does anyway."""
    if name in WARNED:
        return WARNED[name](value)
    for prefix, note in WARNED_PREFIXES.items():
        if name.startswith(prefix):
            return note
    return None


def is_known(name: str) -> bool:
    return (name in MAPPED or name in MAPPED_SPECIALLY or name in HOST_MAPPED or name in WARNED
            or any(name.startswith(p) for p in WARNED_PREFIXES))
