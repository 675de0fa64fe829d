"""Kubeconfig loading and a small JSON client that verifies the API server like client-go does."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass

import yaml

from .common import Fatal, read_text, require_file


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: dict, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.body = body


class TransportError(Exception):
    """No HTTP answer: refused connection, TLS verification failure, timeout."""


@dataclass
class ClientConfig:
    server: str
    context: ssl.SSLContext
    token: str = ""
    source: str = ""


def _pem(data_b64: str | None, path: str | None, base: str, what: str) -> bytes | None:
    if data_b64:
        try:
            return base64.b64decode(data_b64)
        except ValueError as err:
            raise Fatal(f"{what}: illegal base64 data") from err
    if path:
        full = path if os.path.isabs(path) else os.path.join(base, path)
        return read_text(full, what).encode()
    return None


def load(path: str, what: str = "kubeconfig") -> ClientConfig:
    """Load a kubeconfig file; every file it names must exist, its current context must resolve."""
    text = read_text(path, f"invalid configuration: {what}")
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise Fatal(f"error loading config file {json.dumps(path)}: yaml: {err}") from err
    if not isinstance(doc, dict) or doc.get("kind", "Config") != "Config":
        kind = doc.get("kind") if isinstance(doc, dict) else None
        raise Fatal(f"error loading config file {json.dumps(path)}: no kind {json.dumps(kind)} is registered")
    ctx_name = doc.get("current-context", "")
    contexts = {c.get("name"): c.get("context", {}) for c in doc.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster", {}) for c in doc.get("clusters") or []}
    users = {u.get("name"): u.get("user", {}) for u in doc.get("users") or []}
    if not ctx_name:
        raise Fatal(f"invalid configuration: {path}: no configuration has been provided (current-context is empty)")
    if ctx_name not in contexts:
        raise Fatal(f"invalid configuration: context was not found for specified context: {ctx_name}")
    context = contexts[ctx_name]
    cluster = clusters.get(context.get("cluster"))
    if cluster is None:
        raise Fatal(f"invalid configuration: cluster {json.dumps(context.get('cluster'))} not found for context {json.dumps(ctx_name)}")
    user = users.get(context.get("user"), {})
    server = cluster.get("server", "")
    if not server.startswith("https://"):
        raise Fatal(f"invalid configuration: {path}: server {json.dumps(server)} must be an https:// URL")
    base = os.path.dirname(os.path.abspath(path))
    ca = _pem(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base, "unable to load root certificates")
    cert = _pem(user.get("client-certificate-data"), user.get("client-certificate"), base, "unable to load client certificate")
    key = _pem(user.get("client-key-data"), user.get("client-key"), base, "unable to load client key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cluster.get("insecure-skip-tls-verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca:
        try:
            ctx.load_verify_locations(cadata=ca.decode())
        except ssl.SSLError as err:
            raise Fatal(f"unable to load root certificates: unable to parse bytes as PEM block ({err.reason})") from err
    else:
        ctx.load_default_certs()
    if cluster.get("tls-server-name"):
        ctx.check_hostname = True
    if cert or key:
        if not (cert and key):
            raise Fatal("invalid configuration: client-cert-data and client-key-data must be specified together")
        _load_pair(ctx, cert, key)
    return ClientConfig(server=server.rstrip("/"), context=ctx, token=user.get("token", ""), source=path)


def _load_pair(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl wants files: write them privately, load, delete at once.
    with tempfile.TemporaryDirectory(prefix="kubeconfig-") as tmp:
        cpath, kpath = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cpath, "wb") as fh:
            fh.write(cert)
        fd = os.open(kpath, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        try:
            ctx.load_cert_chain(cpath, kpath)
        except ssl.SSLError as err:
            raise Fatal(f"tls: private key does not match public key ({err.reason})") from err


class ApiClient:
    """JSON over HTTPS to one API server; one connection per call keeps it simple and thread-safe."""

    def __init__(self, cfg: ClientConfig, user_agent: str) -> None:
        self.cfg = cfg
        self.user_agent = user_agent
        url = urllib.parse.urlsplit(cfg.server)
        self.host = url.hostname or ""
        self.port = url.port or 443

    def request(self, method: str, path: str, body: object | None = None,
                content_type: str = "application/json", timeout: float = 10) -> dict:
        url = self.cfg.server + path
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if self.cfg.token:
            headers["Authorization"] = "Bearer " + self.cfg.token
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.cfg.context, timeout=timeout)
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except ssl.SSLCertVerificationError as err:
            raise TransportError(f'{method.title()} "{url}": tls: failed to verify certificate: x509: {err.verify_message}') from err
        except ssl.SSLError as err:
            raise TransportError(f'{method.title()} "{url}": remote error: tls: {err.reason or err}') from err
        except OSError as err:
            raise TransportError(f'{method.title()} "{url}": {err.strerror or err}') from err
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"message": raw.decode(errors="replace")}
        if resp.status >= 400:
            msg = data.get("message") if isinstance(data, dict) else None
            raise ApiError(resp.status, data if isinstance(data, dict) else {}, msg or f"the server responded with status {resp.status}")
        return data

    def get_or_none(self, path: str) -> dict | None:
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise


def load_checked(path: str, flag: str) -> ClientConfig:
    require_file(path, f"invalid configuration: {flag}")
    return load(path, flag)
