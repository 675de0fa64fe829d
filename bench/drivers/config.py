"""The one file every driver reads: hosts, login, parallelism and the workload of this run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.workload import Host, Workload

ENV_VAR = "KBBENCH_CONFIG"  # where pyinfra's inventory and deploy files find it
PERSIST_VARIABLE = "KBBENCH_PERSIST"  # kbuild's ssh.persist for the run, in seconds (the kbuild-kept tool)


@dataclass(frozen=True)
class DriverConfig:
    hosts: list[Host]
    user: str
    key_file: str
    known_hosts: str
    forks: int
    files: int
    version: int
    blob: str
    blob_sha256: str

    @property
    def workload(self) -> Workload:
        return Workload(self.files, Path(self.blob).stat().st_size, self.version)

    def save(self, path: Path) -> Path:
        data = asdict(self)
        path.write_text(json.dumps(data, indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> DriverConfig:
        data = json.loads(path.read_text())
        data["hosts"] = [Host(**h) for h in data["hosts"]]
        return cls(**data)
