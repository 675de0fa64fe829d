"""Files, directories and artifacts (binaries with a known sha256) on a host."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.engine.facts import ArtifactFact, PathFact, PathQuery, q
from kbuild.engine.redact import redact
from kbuild.engine.resources.base import Action, Ownership, Payload, Resource, ResourceError, install_file

UNIT_DIRS = ("/etc/systemd/system/", "/lib/systemd/system/", "/usr/lib/systemd/system/")


def _expect_file(path: str, fact: PathFact) -> None:
    if fact.type not in ("file", "absent"):
        raise ResourceError(f"{path} is a {fact.type} on the host, expected a regular file; "
                            "move it away and run again")


@dataclass(frozen=True)
class File(Resource):
    """A regular file with exact content, mode and owner."""

    path: str
    content: bytes | str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    notify: tuple[str, ...] = field(default=())
    secret: bool = False
    kind = "file"

    @property
    def key(self) -> str:
        return f"file:{self.path}"

    @property
    def data(self) -> bytes:
        return self.content.encode() if isinstance(self.content, str) else self.content

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def ownership(self) -> Ownership:
        return Ownership(self.mode, self.owner, self.group)

    def fact_query(self, *, with_content: bool = False) -> PathQuery:
        return PathQuery(self.path, content=with_content and not self.secret)

    def changes(self, fact: PathFact) -> list[str]:
        if fact.type == "absent":
            return ["create"]
        if fact.type != "file":
            return [f"replace {fact.type}"]
        found = [] if fact.sha256 == self.sha256 else ["content"]
        return found + self.ownership.differences(fact.mode, fact.owner, fact.group)

    def action(self, fact: PathFact) -> Action:
        _expect_file(self.path, fact)
        if fact.type == "file" and fact.sha256 == self.sha256:
            return Action(self.ownership.fix(self.path))
        return Action(install_file(self.path, '"$KB_PAYLOAD"', self.ownership), Payload.from_bytes(self.data))

    def diff(self, fact: PathFact) -> str | None:
        if fact.type == "file" and fact.sha256 == self.sha256:
            return None
        if self.secret:
            return f"--- {self.path}\n+++ {self.path}\n(secret content not shown)\n"
        old = fact.content if fact.content is not None else b""
        if not _is_text(old) or not _is_text(self.data):
            return f"--- {self.path}\n+++ {self.path}\n(binary content differs)\n"
        lines = difflib.unified_diff(
            old.decode().splitlines(keepends=True), self.data.decode().splitlines(keepends=True),
            fromfile=f"{self.path} (host)" if fact.type == "file" else "/dev/null",
            tofile=f"{self.path} (desired)",
        )
        return redact("".join(lines))

    @property
    def changes_units(self) -> bool:
        return self.path.startswith(UNIT_DIRS)


@dataclass(frozen=True)
class Absent(Resource):
    """A file that must not exist: one an earlier kbuild wrote and no longer wants (a renamed config)."""

    path: str
    notify: tuple[str, ...] = field(default=())
    kind = "absent"

    @property
    def key(self) -> str:
        return f"absent:{self.path}"

    def fact_query(self, *, with_content: bool = False) -> PathQuery:
        return PathQuery(self.path)

    def changes(self, fact: PathFact) -> list[str]:
        return [] if fact.type == "absent" else [f"remove {fact.type}"]

    def action(self, fact: PathFact) -> Action:
        if fact.type == "directory":
            raise ResourceError(f"{self.path} is a directory on the host, expected a file kbuild wrote; "
                                "move it away and run again")
        return Action(f"rm -f {q(self.path)}")


@dataclass(frozen=True)
class Directory(Resource):
    path: str
    mode: int = 0o755
    owner: str = "root"
    group: str = "root"
    notify: tuple[str, ...] = field(default=())
    kind = "directory"

    @property
    def key(self) -> str:
        return f"directory:{self.path}"

    def fact_query(self, *, with_content: bool = False) -> PathQuery:
        return PathQuery(self.path)

    def changes(self, fact: PathFact) -> list[str]:
        if fact.type == "absent":
            return ["create"]
        if fact.type != "directory":
            return [f"replace {fact.type}"]
        return Ownership(self.mode, self.owner, self.group).differences(fact.mode, fact.owner, fact.group)

    def action(self, fact: PathFact) -> Action:
        if fact.type not in ("directory", "absent"):
            raise ResourceError(f"{self.path} is a {fact.type} on the host, expected a directory; "
                                "move it away and run again")
        return Action(f"mkdir -p {q(self.path)}\n" + Ownership(self.mode, self.owner, self.group).fix(self.path))


@dataclass(frozen=True)
class Artifact(Resource):
    """A binary identified by its sha256: pushed from a local file, or pulled by the host from a URL.

    Pulling may take the file out of a tar archive; the archive's checksum is verified on the host
    before anything is extracted. When the file's own sha256 is not known in advance (a pulled
    archive the controller never downloaded), the stamp written at install time records where it
    came from, and that is what a later run compares.
    """

    path: str
    sha256: str | None
    source: Path | None = None  # push: a verified local file
    url: str | None = None  # pull: the file, or the archive holding it
    archive_sha256: str | None = None
    member: str | None = None
    mode: int = 0o755
    owner: str = "root"
    group: str = "root"
    notify: tuple[str, ...] = field(default=())
    kind = "artifact"

    def __post_init__(self) -> None:
        if self.source is None and self.url is None:
            raise ValueError(f"artifact {self.path}: needs a local source or a URL")
        if self.source is not None and self.sha256 is None:
            raise ValueError(f"artifact {self.path}: a pushed file needs its sha256")
        if self.url is not None and self.sha256 is None and self.archive_sha256 is None:
            raise ValueError(f"artifact {self.path}: a pulled file needs its own or its archive's sha256")

    @property
    def key(self) -> str:
        return f"artifact:{self.path}"

    @property
    def provenance(self) -> str:
        if self.member is not None:
            return f"{self.archive_sha256}:{self.member}"
        return self.sha256 or ""

    def fact_query(self, *, with_content: bool = False) -> PathQuery:
        return PathQuery(self.path, artifact=True)

    def changes(self, fact: ArtifactFact) -> list[str]:
        current = fact.path
        if current.type == "absent":
            return ["install"]
        if current.type != "file":
            return [f"replace {current.type}"]
        found: list[str] = []
        if not self._installed(fact):
            if self.sha256 is not None:
                found.append(f"sha256 {_short(current.sha256)} -> {_short(self.sha256)}")
            else:
                found.append("different release" if fact.source != self.provenance else "modified on the host")
        return found + Ownership(self.mode, self.owner, self.group).differences(
            current.mode, current.owner, current.group)

    def action(self, fact: ArtifactFact) -> Action:
        _expect_file(self.path, fact.path)
        own = Ownership(self.mode, self.owner, self.group)
        if self._installed(fact):
            return Action(own.fix(self.path))
        if self.source is not None:
            steps = [verify_sha256('"$KB_PAYLOAD"', self.sha256), install_file(self.path, '"$KB_PAYLOAD"', own)]
            return Action("\n".join(steps + [self._stamp()]), Payload.from_file(self.source))
        steps = [f'kb_fetch {q(self.url)} "$KB_WORK/download"']
        if self.member is not None:
            steps += [
                verify_sha256('"$KB_WORK/download"', self.archive_sha256),
                'mkdir -p "$KB_WORK/unpacked"',
                f'tar -xf "$KB_WORK/download" -C "$KB_WORK/unpacked" {q(self.member)}',
                f'kb_file="$KB_WORK/unpacked/"{q(self.member)}',
            ]
        else:
            steps.append('kb_file="$KB_WORK/download"')
        if self.sha256 is not None:
            steps.append(verify_sha256('"$kb_file"', self.sha256))
        steps += [install_file(self.path, '"$kb_file"', own), self._stamp()]
        return Action("\n".join(steps))

    def _installed(self, fact: ArtifactFact) -> bool:
        """The host's file is this artifact: its sha256 when known, else the stamp (same release, unmodified)."""
        if fact.path.type != "file":
            return False
        if self.sha256 is not None:
            return fact.path.sha256 == self.sha256
        return fact.source == self.provenance and fact.stamped_sha256 == fact.path.sha256

    def _stamp(self) -> str:
        # sha256, then size+mtime (the cheap check facts use), then provenance.
        return ('mkdir -p "${KB_STAMPS:-/var/lib/kbuild/sums}"\n'
                f"kb_st=$(kb_stamp {q(self.path)})\n"
                f"printf '%s\\n%s\\n%s\\n' \"$(sha256sum {q(self.path)} | cut -c1-64)\" "
                f"\"$(stat -c '%s %Y' {q(self.path)})\" {q(self.provenance)} > \"$kb_st\"")


def verify_sha256(file: str, sha256: str | None) -> str:
    """Shell that stops with a clear message unless `file` has `sha256`."""
    return (f'kb_have=$(sha256sum {file} | cut -c1-64)\n'
            f'if [ "$kb_have" != {q(sha256)} ]; then '
            f'echo "checksum mismatch: expected {sha256}, got $kb_have" >&2; exit 1; fi')


def _short(sha: str | None) -> str:
    return (sha or "none")[:12]


def _is_text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:
        data.decode()
        return True
    except UnicodeDecodeError:
        return False
