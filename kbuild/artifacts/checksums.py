"""sha256 helpers: hashing files, reading upstream checksum files, and the inventory's pinned checksums."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.artifacts.errors import ArtifactConfigError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BSD_LINE = re.compile(r"^SHA256 \((?P<name>.+)\) = (?P<hash>[0-9a-fA-F]{64})$")
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalise(value: str) -> str | None:
    """A sha256 as 64 lowercase hex digits (a `sha256:` prefix is accepted), or None if it is not one."""
    text = value.strip().lower().removeprefix("sha256:")
    return text if SHA256.match(text) else None


def parse_checksum_file(text: str, filename: str) -> str | None:
    """The sha256 that a checksum file gives for `filename`, or None if it lists none.

    Upstream uses three shapes: dl.k8s.io's NAME.sha256 holds the bare hash; SHA256SUMS, runc.sha256sum
    and containerd's .sha256sum are `sha256sum` output (`HASH  NAME` or `HASH *NAME`, several lines);
    some tools write the BSD form `SHA256 (NAME) = HASH`. A bare hash counts only when it is the
    file's sole entry, so a list for other files never vouches for this one.
    """
    bare: list[str] = []
    named = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bsd = _BSD_LINE.match(line)
        if bsd:
            named = True
            if _same_file(bsd["name"], filename):
                return bsd["hash"].lower()
            continue
        parts = line.split()
        value = normalise(parts[0])
        if value is None:
            continue
        if len(parts) == 1:
            bare.append(value)
            continue
        named = True
        if _same_file(parts[-1].lstrip("*"), filename):
            return value
    return bare[0] if len(bare) == 1 and not named else None


def _same_file(listed: str, filename: str) -> bool:
    return listed.removeprefix("./").rsplit("/", 1)[-1] == filename


@dataclass(frozen=True)
class Pins:
    """Checksums pinned in the inventory (`artifacts.checksums`): key is a file name or a URL.

    A URL pin (official or mirror URL) names exactly one file; a file-name pin applies to every file of
    that name, which is ambiguous for dl.k8s.io binaries across versions and arches (pin by URL there).
    """

    by_key: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, checksums: Mapping[str, str]) -> Pins:
        pins: dict[str, str] = {}
        bad: list[str] = []
        for key, value in checksums.items():
            sha = normalise(str(value))
            if sha is None:
                bad.append(f"{key}: {value!r}")
            else:
                pins[key.strip()] = sha
        if bad:
            raise ArtifactConfigError(
                "artifacts.checksums: not a sha256 (64 hex digits): " + "; ".join(bad),
                hint="write each pin as `FILE-NAME-OR-URL: <64 hex digits>` (a sha256: prefix is fine)")
        return cls(pins)

    def lookup(self, *urls: str, by_name: bool = True) -> tuple[str, str] | None:
        """(sha256, key) of the most specific pin for a file known by these URLs: a URL first, then (with
        `by_name`) its name."""
        for url in urls:
            if url in self.by_key:
                return self.by_key[url], url
        if not by_name:
            return None
        for url in urls:
            name = url.rsplit("/", 1)[-1]
            if name in self.by_key:
                return self.by_key[name], name
        return None
