"""The desired state every tool applies, as data: paths, modes, the template, the binary, and what each host should end with."""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import jinja2

FILES_DIR = Path(__file__).parent / "files"
TEMPLATE = FILES_DIR / "bench.conf.j2"
UNIT_SOURCE = FILES_DIR / "kbbench.service"

CONF_DIR = "/etc/kbbench"
CONF_DIR_MODE = 0o750
CONF_MODE = 0o640
BLOB_PATH = "/usr/local/bin/kbbench-blob"
BLOB_MODE = 0o755
UNIT_PATH = "/etc/systemd/system/kbbench.service"
UNIT_MODE = 0o644
SERVICE = "kbbench"
SEEN = "/run/kbbench.seen"  # the unit copies file-00 here when it starts: proof of a restart after a change
SYSCTL_KEY = "net.ipv4.tcp_keepalive_time"  # per network namespace, so writable inside a lab machine
SYSCTL_VALUE = "600"
SYSCTL_DEFAULT = "7200"  # the kernel's default, restored by a reset
# kbuild's Sysctl resource persists to this path; the other tools are told to use the same file.
SYSCTL_FILE = f"/etc/sysctl.d/90-kbuild-{SYSCTL_KEY}.conf"
KBUILD_STAMP = "/var/lib/kbuild/sums/_usr_local_bin_kbbench-blob"  # kbuild's sha256 stamp for the binary


def conf_path(index: int) -> str:
    return f"{CONF_DIR}/file-{index:02d}.conf"


@dataclass(frozen=True)
class Host:
    name: str
    address: str


@dataclass(frozen=True)
class Workload:
    """M templated files (file-00 feeds the service), a directory, a binary, a unit, a sysctl.

    `version` goes into file-00 only: raising it is the "one file changed" scenario.
    """

    files: int = 20
    blob_bytes: int = 4 * 1024 * 1024
    version: int = 1

    def with_version(self, version: int) -> Workload:
        return Workload(self.files, self.blob_bytes, version)

    def variables(self, host: Host, index: int) -> dict[str, object]:
        return {"kb_host": host.name, "kb_address": host.address, "kb_index": index,
                "kb_version": self.version if index == 0 else 1}

    def render(self, host: Host, index: int) -> str:
        return _template().render(**self.variables(host, index))

    def conf_files(self, host: Host) -> dict[str, str]:
        return {conf_path(i): self.render(host, i) for i in range(self.files)}


@functools.cache
def _template() -> jinja2.Template:
    """Compiled once per process, as any real tool does (kbuild's renderer, pyinfra, Ansible)."""
    return _environment().get_template(TEMPLATE.name)


def _environment() -> jinja2.Environment:
    # The settings pyinfra and Ansible render with too (the template has no block tags, so
    # Ansible's trim_blocks makes no difference); the harness checks the bytes each tool wrote.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(FILES_DIR), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def ensure_blob(workdir: Path, size: int) -> tuple[Path, str]:
    """A deterministic pseudo-random binary of `size` bytes (made once per size), and its sha256."""
    path = workdir / f"kbbench-blob-{size}.bin"
    if not path.exists() or path.stat().st_size != size:
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(random.Random(size).randbytes(size))
        tmp.replace(path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Expected:
    """What the harness checks on one host after a run."""

    conf: dict[str, str]  # path -> sha256
    blob_sha256: str
    unit_sha256: str
    seen_sha256: str  # file-00's content: the service must have (re)started since file-00 got it


def expected(workload: Workload, host: Host, blob_sha256: str) -> Expected:
    conf = {path: _sha(text.encode()) for path, text in workload.conf_files(host).items()}
    return Expected(conf, blob_sha256, _sha(UNIT_SOURCE.read_bytes()), conf[conf_path(0)])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
