"""Inventories: kbuild's own YAML format and Ansible (kubespray-style) inventories, validated and resolved."""

from kbuild.inventory.cluster import Cluster, Host, HostSSH
from kbuild.inventory.load import load_cluster
from kbuild.inventory.model import Role

__all__ = ["Cluster", "Host", "HostSSH", "Role", "load_cluster"]
