"""A threaded HTTPS server whose handshake runs per connection and reports the peer's x509 identity."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import klog


def server_context(cert: str, key: str, client_ca: str | None, require_client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        # Like Go's VerifyClientCertIfGiven: no cert is fine (anonymous), a bad cert fails the handshake.
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


class TLSHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler, context: ssl.SSLContext | None, source: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.tls_context = context
        self.log_source = source
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_context is None:
            return sock, addr
        return self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address) -> None:
        # Go's net/http logs handshake failures as one line; no tracebacks.
        import sys

        err = sys.exc_info()[1]
        if isinstance(err, (ssl.SSLError, OSError, TimeoutError)):
            klog.info(self.log_source, f"http: TLS handshake error from {client_address[0]}:{client_address[1]}: {err}")
        else:
            klog.error(self.log_source, "http: panic serving request", err=repr(err))

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        return t


class Handler(BaseHTTPRequestHandler):
    """Base handler: TLS handshake in the worker thread, JSON helpers, HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = ""
    sys_version = ""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def peer_identity(self) -> tuple[str, list[str]] | None:
        """(CN, [O...]) of a verified client certificate, or None."""
        if not isinstance(self.request, ssl.SSLSocket):
            return None
        cert = self.request.getpeercert()
        if not cert:
            return None
        cn, orgs = "", []
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    cn = value
                elif key == "organizationName":
                    orgs.append(value)
        return cn, orgs

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: object) -> None:
        import json

        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def send_text(self, status: int, text: str) -> None:
        self.send_body(status, text.encode(), "text/plain; charset=utf-8")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
