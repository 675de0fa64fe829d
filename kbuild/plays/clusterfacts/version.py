"""Component versions as the binaries and APIs print them ('Kubernetes v1.33.5', 'etcd Version: 3.5.1')."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from kbuild.errors import UsageError

_VERSION = re.compile(r"(?<![\w.])v?(\d+)\.(\d+)\.(\d+)")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """'1.33.5', 'v1.33.5' -> Version; anything else is a UsageError naming the text."""
        match = _VERSION.fullmatch(str(text).strip())
        if not match:
            raise UsageError(f"{text!r} is not a version like 1.37.2")
        return cls(*(int(part) for part in match.groups()))

    @classmethod
    def find(cls, output: str) -> Version | None:
        """The first X.Y.Z in a `--version` output ('Kubernetes v1.33.5', 'etcd Version: 3.4.23',
        'containerd github.com/containerd/containerd 1.6.20~ds1 …'), or None."""
        match = _VERSION.search(output)
        return cls(*(int(part) for part in match.groups())) if match else None

    @property
    def minor_key(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def minors_to(self, other: Version) -> int:
        """How many minor versions `other` is ahead of this one (negative: behind). Majors must match."""
        return other.minor - self.minor if other.major == self.major else (other.major - self.major) * 1000

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def short(self) -> str:
        return f"{self.major}.{self.minor}"


def version_word(output: str) -> str:
    """The version as the tool spells it ('v1.33.5', '3.5.1', containerd's '1.7.24~ds1'), for display;
    the whole text when it names none."""
    match = _VERSION.search(output)
    if match is None:
        return output.strip()
    end = match.end()
    while end < len(output) and not output[end].isspace():
        end += 1
    return output[match.start():end]
