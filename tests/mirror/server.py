"""Serve a mirror directory over HTTP (127.0.0.1, or a lab bridge's address for pull mode) from a thread,
on a random free port, counting requests."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from types import TracebackType


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass  # tests read `requests` instead of a log on stderr

    def send_head(self):  # noqa: ANN202 - the stdlib's untyped signature
        with self.server.lock:
            self.server.requests.append(self.path)
        return super().send_head()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]
    lock: threading.Lock


class MirrorServer:
    """`with MirrorServer(root) as server:` serves root at server.url until the block ends (or stop())."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self._server = _Server((host, 0), functools.partial(_Handler, directory=str(root)))
        self._server.requests = []
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-mirror", daemon=True)
        self._thread.start()
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.running = True

    @property
    def requests(self) -> list[str]:
        """Paths requested so far (GET and HEAD), in order."""
        with self._server.lock:
            return list(self._server.requests)

    def reset(self) -> None:
        with self._server.lock:
            self._server.requests.clear()

    def stop(self) -> None:
        if self.running:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self.running = False

    def __enter__(self) -> MirrorServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
