"""The encryption-at-rest configuration for kube-apiserver: a random key made once and kept for good.

Losing or replacing the key makes every Secret stored in etcd unreadable, so an existing file is
only ever validated and reused, never rewritten. The provider is secretbox (XSalsa20-Poly1305,
authenticated), which the Kubernetes docs prefer to aescbc (open to padding-oracle attacks); the
identity provider after it lets the apiserver still read Secrets written before encryption was on.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path

import yaml

from kbuild.pki.errors import PKIError

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
PROVIDERS = ("secretbox", "aescbc", "aesgcm")
KEY_BYTES = 32


def new_config() -> bytes:
    secret = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [{
            "resources": ["secrets"],
            "providers": [
                {"secretbox": {"keys": [{"name": "key1", "secret": secret}]}},
                {"identity": {}},
            ],
        }],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def validate(path: Path, data: bytes) -> None:
    """Check an existing configuration is one kube-apiserver would load; PKIError naming the file if not.

    Hand edits (a rotated key, another provider) are fine as long as the shape holds.
    """
    def fail(why: str) -> PKIError:
        return PKIError(f"{path}: {why}", hint="restore it from a backup: it holds the key that decrypts the "
                                             "cluster's Secrets (move it away only for a cluster with no data)")
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise fail(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise fail(f"not an {KIND} ({API_VERSION})")
    resources = doc.get("resources")
    if not isinstance(resources, list) or not resources:
        raise fail("has no resources")
    for entry in resources:
        providers = entry.get("providers") if isinstance(entry, dict) else None
        if not isinstance(providers, list) or not providers:
            raise fail("a resources entry has no providers")
        for provider in providers:
            if not isinstance(provider, dict) or len(provider) != 1:
                raise fail("a provider must be a mapping with one key")
            (kind, body), = provider.items()
            if kind in PROVIDERS:
                _check_keys(kind, body, fail)


def _check_keys(kind: str, body: object, fail: Callable[[str], PKIError]) -> None:
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys:
        raise fail(f"the {kind} provider has no keys")
    for key in keys:
        try:
            raw = base64.b64decode(str(key["secret"]), validate=True)
        except (KeyError, TypeError, ValueError):
            raise fail(f"a {kind} key has no valid base64 secret") from None
        if kind == "secretbox" and len(raw) != KEY_BYTES:
            raise fail(f"a secretbox key must be {KEY_BYTES} bytes, got {len(raw)}")
        if kind != "secretbox" and len(raw) not in (16, 24, 32):
            raise fail(f"an {kind} key must be 16, 24 or 32 bytes, got {len(raw)}")
