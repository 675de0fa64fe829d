"""Kubeconfig files with the CA, client certificate and key embedded, and reading them back for checks."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class KubeconfigData:
    """The parts of a kubeconfig kbuild writes and checks (its current context's cluster and user)."""

    server: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def render(cluster_name: str, user: str, data: KubeconfigData) -> bytes:
    """A one-cluster, one-user kubeconfig; deterministic, so an unchanged input gives identical bytes."""
    context = f"{user}@{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "certificate-authority-data": _b64(data.ca_pem),
            "server": data.server,
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(data.cert_pem),
            "client-key-data": _b64(data.key_pem),
        }}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1 << 20).encode()


def parse(text: bytes) -> KubeconfigData:
    """Read the current context's server, CA and client credentials; ValueError saying what is wrong."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Config":
        raise ValueError("not a kubeconfig (kind: Config)")
    context_name = doc.get("current-context")
    try:
        context = _named(doc, "contexts", context_name)["context"]
        cluster = _named(doc, "clusters", context["cluster"])["cluster"]
        user = _named(doc, "users", context["user"])["user"]
        return KubeconfigData(
            server=str(cluster["server"]),
            ca_pem=base64.b64decode(cluster["certificate-authority-data"]),
            cert_pem=base64.b64decode(user["client-certificate-data"]),
            key_pem=base64.b64decode(user["client-key-data"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"incomplete kubeconfig (no embedded {exc} for the current context)") from None


def _named(doc: dict, section: str, name: object) -> dict:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise KeyError(f"{section} entry {name!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
