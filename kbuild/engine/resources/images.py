"""Container images in containerd's content store, imported from archives identified by their sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from kbuild.engine.facts import ShellQuery, q
from kbuild.engine.resources.base import Action, Payload, Resource
from kbuild.engine.resources.files import verify_sha256

# What was imported, per image: the sha256 of the archive it came from.
STAMP_DIR = "/var/lib/kbuild/images"


@dataclass(frozen=True)
class ImageFact:
    listed: bool  # containerd has an image of this name in the namespace
    stamp: str  # the archive sha256 recorded at the last import ("" if none)


@dataclass(frozen=True)
class ContainerImage(Resource):
    """An image that must be in containerd under `ref`, as imported from the archive with `sha256`.

    The archive is pushed (`source`) or pulled by the host (`url`), verified on the host, and
    imported with ctr for `platform`. It is imported again when containerd no longer has the
    image (removed, or the content store was wiped) or when the archive is another one.
    """

    ref: str
    sha256: str
    ctr: str  # path of ctr on the host
    address: str  # containerd's socket
    namespace: str = "k8s.io"
    platform: str = "linux/amd64"
    source: Path | None = None
    url: str | None = None
    notify: tuple[str, ...] = field(default=())
    kind = "image"

    def __post_init__(self) -> None:
        if (self.source is None) == (self.url is None):
            raise ValueError(f"image {self.ref}: needs exactly one of a local archive or a URL")

    @property
    def key(self) -> str:
        return f"image:{self.ref}"

    @property
    def stamp_file(self) -> str:
        return f"{STAMP_DIR}/{hashlib.sha256(self.ref.encode()).hexdigest()[:32]}"

    def _ctr(self, *args: str) -> str:
        return " ".join([q(self.ctr), f"--address={q(self.address)}", f"--namespace={q(self.namespace)}",
                         *args])

    def _listed(self) -> str:
        return f"{self._ctr('images', 'ls', '-q', q(f'name=={self.ref}'))} | grep -qxF {q(self.ref)}"

    def fact_query(self, *, with_content: bool = False) -> ShellQuery:
        return ShellQuery(f"if {self._listed()}; then echo listed=yes; else echo listed=no; fi\n"
                          f"echo stamp=$(cat {q(self.stamp_file)} 2>/dev/null)", self.parse_fact)

    def parse_fact(self, output: str) -> ImageFact:
        values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
        return ImageFact(values.get("listed") == "yes", values.get("stamp", "").strip())

    def changes(self, fact: ImageFact) -> list[str]:
        if not fact.listed:
            return ["import"]
        if fact.stamp != self.sha256:
            return ["import (another archive)"]
        return []

    def action(self, fact: ImageFact) -> Action:
        if self.source is not None:
            archive, steps, payload = '"$KB_PAYLOAD"', [], Payload.from_file(self.source)
        else:
            archive, payload = '"$KB_WORK/image.tar"', None
            steps = [f"kb_fetch {q(self.url)} {archive}"]
        steps += [
            verify_sha256(archive, self.sha256),
            f"{self._ctr('images', 'import', f'--platform={q(self.platform)}', archive)} >/dev/null",
            f"if ! {self._listed()}; then echo {q('the archive holds no image named ' + self.ref)} >&2; exit 1; fi",
            f"mkdir -p {STAMP_DIR}",
            f"printf '%s\\n' {q(self.sha256)} > {q(self.stamp_file)}.tmp && mv -f {q(self.stamp_file)}.tmp "
            f"{q(self.stamp_file)}",
        ]
        return Action("\n".join(steps), payload)
