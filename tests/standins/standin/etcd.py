"""etcd v3 client over the JSON gRPC gateway (/v3/kv/*), mTLS, several endpoints (etcd 3.4 and 3.5)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import urllib.parse
from dataclasses import dataclass


class EtcdError(Exception):
    """No endpoint answered, or an endpoint answered with an error."""


@dataclass
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


class EtcdClient:
    def __init__(self, endpoints: list[str], cafile: str | None, certfile: str | None, keyfile: str | None,
                 timeout: float = 5) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.context: ssl.SSLContext | None = None
        if any(e.startswith("https://") for e in endpoints):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if cafile:
                ctx.load_verify_locations(cafile=cafile)
            else:
                ctx.load_default_certs()
            if certfile and keyfile:
                ctx.load_cert_chain(certfile, keyfile)
            self.context = ctx
        self._lock = threading.Lock()
        self._preferred = 0

    def _call(self, method: str, path: str, body: dict | None, timeout: float | None = None) -> dict:
        errors = []
        n = len(self.endpoints)
        for i in range(n):
            idx = (self._preferred + i) % n
            url = urllib.parse.urlsplit(self.endpoints[idx])
            try:
                if url.scheme == "https":
                    conn = http.client.HTTPSConnection(url.hostname, url.port or 2379, context=self.context,
                                                       timeout=timeout or self.timeout)
                else:
                    conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=timeout or self.timeout)
                try:
                    payload = json.dumps(body).encode() if body is not None else None
                    conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    raw = resp.read()
                finally:
                    conn.close()
            except (OSError, ssl.SSLError) as err:
                errors.append(f"{self.endpoints[idx]}: {err}")
                continue
            with self._lock:
                self._preferred = idx
            data = json.loads(raw or b"{}")
            if resp.status >= 400:
                raise EtcdError(f"{self.endpoints[idx]}{path}: {resp.status} {data.get('message') or data.get('error')}")
            return data
        raise EtcdError("context deadline exceeded: " + "; ".join(errors))

    def health(self) -> bool:
        try:
            data = self._call("GET", "/health", None, timeout=2)
        except (EtcdError, ValueError):
            return False
        return str(data.get("health")) == "true"

    def get(self, key: str) -> KV | None:
        kvs = self._range({"key": _b64(key)})
        return kvs[0] if kvs else None

    def list(self, prefix: str) -> tuple[list[KV], int]:
        data = self._call("POST", "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return self._kvs(data), int(data.get("header", {}).get("revision", 0))

    def _range(self, req: dict) -> list[KV]:
        return self._kvs(self._call("POST", "/v3/kv/range", req))

    @staticmethod
    def _kvs(data: dict) -> list[KV]:
        return [
            KV(
                key=base64.b64decode(kv["key"]).decode(),
                value=base64.b64decode(kv.get("value", "")),
                create_revision=int(kv.get("create_revision", 0)),
                mod_revision=int(kv.get("mod_revision", 0)),
            )
            for kv in data.get("kvs") or []
        ]

    def create(self, key: str, value: bytes) -> int | None:
        """Put only if the key does not exist; the new revision, or None if it existed."""
        return self._txn(key, value, {"target": "CREATE", "create_revision": "0"})

    def update(self, key: str, value: bytes, mod_revision: int) -> int | None:
        """Put only if the key is still at mod_revision (optimistic concurrency, like the real storage)."""
        return self._txn(key, value, {"target": "MOD", "mod_revision": str(mod_revision)})

    def _txn(self, key: str, value: bytes, compare: dict) -> int | None:
        req = {
            "compare": [{"key": _b64(key), "result": "EQUAL", **compare}],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
        }
        data = self._call("POST", "/v3/kv/txn", req)
        if not data.get("succeeded"):
            return None
        return int(data.get("header", {}).get("revision", 0))

    def put(self, key: str, value: bytes) -> int:
        data = self._call("POST", "/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(data.get("header", {}).get("revision", 0))

    def delete(self, key: str) -> int:
        data = self._call("POST", "/v3/kv/deleterange", {"key": _b64(key)})
        return int(data.get("deleted", 0))
