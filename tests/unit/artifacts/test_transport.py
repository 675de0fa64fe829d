"""Downloads over HTTP from a loopback server: retries, HTTP statuses in errors, short reads, local mirror files."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator

import pytest

from kbuild.artifacts.errors import DownloadError, NotFound
from kbuild.artifacts.transport import Transport
from tests.unit.artifacts.helpers import sha

BODY = b"x" * 100_000


class Handler(http.server.BaseHTTPRequestHandler):
    counts: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        count = self.counts[self.path] = self.counts.get(self.path, 0) + 1
        if self.path == "/ok" or (self.path == "/flaky" and count > 2):
            self._send(200, BODY)
        elif self.path == "/flaky":
            self._send(503, b"busy")
        elif self.path == "/forbidden":
            self._send(403, b"no")
        elif self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:10])
            self.close_connection = True
        elif self.path == "/big-text":
            self._send(200, b"a" * 3000)
        else:
            self._send(404, b"not here")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def httpd() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(httpd: str) -> str:
    Handler.counts = {}
    return httpd


def transport() -> Transport:
    return Transport(timeout=5, attempts=3, backoff=0, progress=False)


def test_download_returns_the_sha256(server):
    sink = io.BytesIO()
    assert transport().fetch(f"{server}/ok", sink, label="ok") == sha(BODY)
    assert sink.getvalue() == BODY


def test_server_errors_are_retried(server):
    sink = io.BytesIO()
    assert transport().fetch(f"{server}/flaky", sink, label="flaky") == sha(BODY)
    assert Handler.counts["/flaky"] == 3 and sink.getvalue() == BODY


def test_retries_are_bounded_and_the_error_names_url_and_status(server):
    with pytest.raises(DownloadError) as caught:
        Transport(timeout=5, attempts=2, backoff=0, progress=False).fetch(f"{server}/flaky", io.BytesIO(), label="f")
    assert Handler.counts["/flaky"] == 2
    assert caught.value.status == 503
    assert f"cannot download {server}/flaky (HTTP 503)" in str(caught.value)
    assert "after 2 attempts" in str(caught.value)


def test_not_found_is_not_retried(server):
    with pytest.raises(NotFound) as caught:
        transport().read_text(f"{server}/missing")
    assert Handler.counts["/missing"] == 1 and caught.value.status == 404


def test_client_errors_are_not_retried(server):
    with pytest.raises(DownloadError, match="HTTP 403"):
        transport().fetch(f"{server}/forbidden", io.BytesIO(), label="f")
    assert Handler.counts["/forbidden"] == 1


def test_a_short_read_is_retried_then_reported(server):
    with pytest.raises(DownloadError, match="10 of 100000 bytes"):
        transport().fetch(f"{server}/short", io.BytesIO(), label="short")
    assert Handler.counts["/short"] == 3


def test_nothing_listening(server):
    url = server.rsplit(":", 1)[0] + ":9/ok"  # the discard port on loopback: nothing listens there
    with pytest.raises(DownloadError, match="Connection refused"):
        Transport(timeout=5, attempts=1, progress=False).read_text(url)


def test_checksum_text_is_size_limited(server):
    with pytest.raises(DownloadError, match="not a checksum file"):
        transport().read_text(f"{server}/big-text", limit=1000)


def test_local_files(tmp_path):
    (tmp_path / "f").write_bytes(BODY)
    sink = io.BytesIO()
    assert transport().fetch(str(tmp_path / "f"), sink, label="f") == sha(BODY)
    assert transport().read_text(str(tmp_path / "f"), limit=len(BODY)) == BODY.decode()
    with pytest.raises(NotFound):
        transport().fetch(str(tmp_path / "nope"), io.BytesIO(), label="nope")
    with pytest.raises(DownloadError, match="is a directory"):
        transport().fetch(str(tmp_path), io.BytesIO(), label="dir")


def test_progress_bar_path_runs(server):
    sink = io.BytesIO()
    assert Transport(timeout=5, attempts=1, progress=True).fetch(f"{server}/ok", sink, label="ok") == sha(BODY)
