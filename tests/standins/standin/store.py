"""Object storage for the apiserver stand-in: JSON objects in etcd under /registry/<resource>/[<ns>/]<name>."""

from __future__ import annotations

import json
import uuid

from .apiresources import Resource
from .common import now_rfc3339
from .etcd import KV, EtcdClient


class StoreError(Exception):
    """An API error with its HTTP code and Status reason."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def qualified(res: Resource) -> str:
    return f"{res.plural}.{res.group}" if res.group else res.plural


def not_found(res: Resource, name: str) -> StoreError:
    return StoreError(404, "NotFound", f'{qualified(res)} "{name}" not found')


class Store:
    def __init__(self, etcd: EtcdClient, prefix: str) -> None:
        self.etcd = etcd
        self.prefix = "/" + prefix.strip("/")

    def key(self, res: Resource, namespace: str, name: str) -> str:
        if res.namespaced:
            return f"{self.prefix}/{res.key}/{namespace}/{name}"
        return f"{self.prefix}/{res.key}/{name}"

    @staticmethod
    def _decode(kv: KV) -> dict:
        obj = json.loads(kv.value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    @staticmethod
    def _encode(obj: dict) -> bytes:
        body = json.loads(json.dumps(obj))
        body.get("metadata", {}).pop("resourceVersion", None)  # the revision lives in etcd, as in the real one
        return json.dumps(body, separators=(",", ":")).encode()

    def get(self, res: Resource, namespace: str, name: str) -> dict:
        kv = self.etcd.get(self.key(res, namespace, name))
        if kv is None:
            raise not_found(res, name)
        return self._decode(kv)

    def list(self, res: Resource, namespace: str) -> tuple[list[dict], int]:
        prefix = f"{self.prefix}/{res.key}/" + (f"{namespace}/" if res.namespaced and namespace else "")
        kvs, revision = self.etcd.list(prefix)
        items = []
        for kv in kvs:
            rest = kv.key[len(f"{self.prefix}/{res.key}/"):]
            # services/specs and services/endpoints share a parent: only take direct children of our prefix
            if rest.count("/") != (1 if res.namespaced else 0):
                continue
            items.append(self._decode(kv))
        return items, revision

    def create(self, res: Resource, namespace: str, obj: dict, dry_run: bool = False) -> dict:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise StoreError(422, "Invalid", f"{res.kind} \"\" is invalid: metadata.name: Required value: name or generateName is required")
        if res.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("resourceVersion", None)
        if "spec" in obj:
            meta.setdefault("generation", 1)
        obj["apiVersion"] = res.group_version
        obj["kind"] = res.kind
        if dry_run:
            return obj
        rev = self.etcd.create(self.key(res, namespace, name), self._encode(obj))
        if rev is None:
            raise StoreError(409, "AlreadyExists", f'{qualified(res)} "{name}" already exists')
        meta["resourceVersion"] = str(rev)
        return obj

    def update(self, res: Resource, namespace: str, name: str, obj: dict, expected_rv: str = "",
               dry_run: bool = False) -> dict:
        current = self.get(res, namespace, name)
        cur_rv = current["metadata"]["resourceVersion"]
        if expected_rv and expected_rv != cur_rv:
            raise self.conflict(res, name)
        meta = obj.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp"):
            meta[field] = current["metadata"].get(field)
        if res.namespaced:
            meta["namespace"] = namespace
        meta["name"] = name
        if obj.get("spec") != current.get("spec") and "spec" in obj:
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        obj["apiVersion"] = res.group_version
        obj["kind"] = res.kind
        if dry_run:
            return obj
        rev = self.etcd.update(self.key(res, namespace, name), self._encode(obj), int(cur_rv))
        if rev is None:
            raise self.conflict(res, name)
        meta["resourceVersion"] = str(rev)
        return obj

    @staticmethod
    def conflict(res: Resource, name: str) -> StoreError:
        return StoreError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(res)} "{name}": the object has been '
                                           "modified; please apply your changes to the latest version and try again")

    def delete(self, res: Resource, namespace: str, name: str, dry_run: bool = False) -> dict:
        current = self.get(res, namespace, name)
        if not dry_run:
            self.etcd.delete(self.key(res, namespace, name))
        return current
