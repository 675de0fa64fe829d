"""Container image references (registry/repository:tag) as the kubelet, containerd and the inventory spell them."""

from __future__ import annotations

import re
from dataclasses import dataclass

# No digests: an image archive carries a tag, and kbuild imports it under that reference.
REFERENCE = re.compile(r"^(?P<registry>[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?)/"
                       r"(?P<repository>[a-z0-9]+([._/-][a-z0-9]+)*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$",
                       re.ASCII)


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        match = REFERENCE.fullmatch(text)  # `$` would let a trailing newline through
        if not match:
            raise ValueError(f"{text!r} is not an image reference like registry.k8s.io/pause:3.10.2 "
                             "(registry host, repository and tag; digests are not supported)")
        return cls(match["registry"], match["repository"], match["tag"])

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"
