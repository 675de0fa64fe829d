"""A lab's record of itself (lab.json): its shape, bridge and image, written before anything is created.

`down` reads it to know what to remove even when `up` was interrupted halfway.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kbuild.lab.errors import LabError
from kbuild.lab.topology import LabPlan, make_plan
from kbuild.state import write_atomic


@dataclass
class LabState:
    name: str
    masters: int
    workers: int
    subnet: str
    bridge: str
    image: str  # the image rootfs the machines' overlays sit on
    created: str
    forward_rule: bool = False  # whether `up` added the host FORWARD rule

    @property
    def plan(self) -> LabPlan:
        return make_plan(self.name, self.masters, self.workers, self.subnet)

    def same_shape(self, plan: LabPlan) -> bool:
        return (self.masters, self.workers, self.subnet) == (plan.masters, plan.workers, str(plan.subnet))

    def describe(self) -> str:
        return (f"{self.masters} master{'s' if self.masters != 1 else ''} and {self.workers} "
                f"worker{'s' if self.workers != 1 else ''} on {self.subnet}")

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), indent=2) + "\n", mode=0o600)

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"{path}: cannot read the lab's state ({exc}); `kbuild lab down` still cleans up") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
