"""Running stand-ins and etcd as child processes in tests: free ports, log capture, readiness waits."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose stderr goes to a file the test can search."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log = log
        self._fh = open(log, "wb")
        self.p = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                  start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 10) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen in output of {self.argv[0]} (rc={self.p.poll()}):\n{self.output()}")

    def wait_exit(self, timeout: float = 10) -> int:
        return self.p.wait(timeout=timeout)

    def stop(self) -> int | None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._fh.close()
        return self.p.returncode


def http_get(url: str, context: ssl.SSLContext | None = None, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def https_get(url: str, ca: Path | None = None, cert: tuple[Path, Path] | None = None, verify: bool = True,
              timeout: float = 5) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return http_get(url, ctx, timeout)


def wait_http(fn, want: int = 200, timeout: float = 10) -> tuple[int, str]:
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
        try:
            code, body = fn()
            if code == want:
                return code, body
            last = (code, body)
        except (OSError, ssl.SSLError) as err:
            last = err
        time.sleep(0.1)
    raise AssertionError(f"never got HTTP {want}: last {last!r}")
