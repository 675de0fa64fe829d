"""Reading files from URLs (urllib) or a mirror directory: timeouts, bounded retries, progress bars, clear errors."""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, TypeVar

from kbuild import __version__
from kbuild.artifacts.checksums import CHUNK
from kbuild.artifacts.errors import DownloadError, NotFound

T = TypeVar("T")
USER_AGENT = f"kbuild/{__version__}"
NETWORK_HINT = ("check the network and proxy settings, or set artifacts.mirror to a reachable mirror; "
                "without any network, use `kbuild artifacts bundle` on a connected machine and import the bundle")


class _Retry(Exception):
    """A failure worth another attempt: connection trouble, timeouts, 5xx, 408/429, short reads."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def is_url(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme in ("http", "https", "file")


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Transport:
    """Fetches files. One instance may serve a whole run; it holds no per-file state."""

    def __init__(self, *, timeout: float = 30.0, attempts: int = 3, backoff: float = 1.0,
                 progress: bool | None = None) -> None:
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._opener = urllib.request.build_opener()
        # A proxy configured for the internet cannot reach the controller's own loopback mirror.
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- public -------------------------------------------------------------------------------------
    def read_text(self, location: str, *, limit: int = 1 << 20) -> str:
        """A small text file (a checksum list). Raises NotFound or DownloadError."""

        def attempt() -> bytes:
            if not is_url(location):
                return self._read_local(location, limit)
            with self._open(location) as response:
                try:
                    data = response.read(limit + 1)
                except TimeoutError:
                    raise _Retry(f"stalled for {self.timeout:g}s") from None
                except (ConnectionError, http.client.HTTPException) as exc:
                    raise _Retry(f"{type(exc).__name__}: {exc}") from None
            return data

        data = self._retrying(location, attempt)
        if len(data) > limit:
            raise DownloadError(location, f"larger than {limit} bytes, not a checksum file")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DownloadError(location, "not a UTF-8 text file") from None

    def fetch(self, location: str, sink: IO[bytes], *, label: str) -> str:
        """Write the file at `location` into `sink` (rewound on each retry) and return its sha256."""

        def attempt() -> str:
            sink.seek(0)
            sink.truncate()
            if not is_url(location):
                return self._copy_local(location, sink, label)
            with self._open(location) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                digest, size = self._copy(response, sink, label, total)
            if total is not None and size != total:
                raise _Retry(f"connection closed after {size} of {total} bytes")
            return digest

        return self._retrying(location, attempt)

    # -- internals ----------------------------------------------------------------------------------
    def _retrying(self, location: str, attempt: Callable[[], T]) -> T:
        last: _Retry | None = None
        for number in range(1, self.attempts + 1):
            try:
                return attempt()
            except _Retry as exc:
                last = exc
                if number < self.attempts:
                    time.sleep(self.backoff * 2 ** (number - 1))
        assert last is not None
        tries = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        raise DownloadError(location, f"{last.reason}{tries}", status=last.status, hint=NETWORK_HINT)

    def _open(self, url: str) -> http.client.HTTPResponse:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        opener = self._direct if _is_loopback(url) else self._opener
        try:
            return opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                raise NotFound(url, "no such file there", status=exc.code,
                               hint="check the version in the inventory, and that the mirror has this file "
                                    "at this path") from None
            if exc.code in (408, 429) or exc.code >= 500:
                raise _Retry(f"server answered {exc.reason}", exc.code) from None
            raise DownloadError(url, f"server answered {exc.reason}", status=exc.code) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, FileNotFoundError):
                raise NotFound(url, "no such file") from None
            raise _Retry(str(exc.reason)) from None
        except TimeoutError:
            raise _Retry(f"no answer within {self.timeout:g}s") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None

    def _copy(self, source: IO[bytes], sink: IO[bytes], label: str, total: int | None) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with self._bar(label, total) as advance:
            try:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    digest.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
                    advance(len(chunk))
            except TimeoutError:
                raise _Retry(f"stalled for {self.timeout:g}s after {size} bytes") from None
            except (ConnectionError, http.client.HTTPException) as exc:
                raise _Retry(f"{type(exc).__name__} after {size} bytes") from None
        sink.flush()
        return digest.hexdigest(), size

    def _read_local(self, location: str, limit: int) -> bytes:
        path = Path(location)
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise NotFound(location, "no such file in the mirror directory",
                           hint="check the mirror layout (see `kbuild artifacts list --urls`)") from None
        except OSError as exc:
            raise DownloadError(location, exc.strerror or str(exc)) from None
        return data

    def _copy_local(self, location: str, sink: IO[bytes], label: str) -> str:
        path = Path(location)
        try:
            with path.open("rb") as handle:
                return self._copy(handle, sink, label, path.stat().st_size)[0]
        except FileNotFoundError:
            raise NotFound(location, "no such file in the mirror directory",
                           hint="check the mirror layout (see `kbuild artifacts list --urls`)") from None
        except IsADirectoryError:
            raise DownloadError(location, "is a directory, not a file") from None
        except PermissionError as exc:
            raise DownloadError(location, exc.strerror or "permission denied") from None

    def _bar(self, label: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
        if not self.progress:
            return nullcontext(lambda n: None)
        return _ProgressBar(label, total)


class _ProgressBar:
    """A transient rich progress bar on stderr for one file."""

    def __init__(self, label: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self._progress.start()
        return lambda n: self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
