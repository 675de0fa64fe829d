"""Lab machines for integration tests: one shared lab for the session, and a factory for tests that need their own.

Real parts: systemd-nspawn machines booting Debian's systemd and OpenSSH sshd on a host bridge
(kbuild.lab). Tests marked `integration` are skipped with the reason when this host cannot run
a lab (not root, not Linux, systemd-nspawn missing) unless KBUILD_REQUIRE_LAB=1, which turns
the skip into a failure (CI sets it: there the lab must run).

Fixtures:
  lab          session-scoped LabHandle of the shared lab (kbtest-master-1, kbtest-worker-1, kbtest-worker-2):
                 .inventory .key_file .known_hosts (Paths)   .machines: [.name .address .role .roles]
                 .exec(name, "cmd" | [argv], timeout=, input=, check=) -> CompletedProcess  (root, no SSH)
                 .stop(name)  .start(name) (waits for sshd and boot)  .running(name)  .ensure_all_running()
               A test that stops a machine starts it again (try/finally), so the next test sees all three.
  lab_factory  session-scoped: lab_factory(name, masters=1, workers=1, subnet="198.18.0.x/yy") -> LabHandle
               for a lab of another shape (each needs its own subnet); all go down at session end.

Settings (environment):
  KBUILD_TEST_LAB_NAME     shared lab's name (default kbtest)
  KBUILD_TEST_LAB_SUBNET   its subnet (default 198.18.0.192/26: inside 198.18.0.0/24 but clear of
                           the addresses a default lab (198.18.0.0/24) uses: .1 and .10-.73)
  KBUILD_TEST_LAB_POOL     subnets handed to lab_factory labs, a /28 each (default 198.18.0.128/26)
  KBUILD_TEST_LAB_KEEP=1   leave the shared lab up after the session (for debugging; `kbuild lab
                           down --name kbtest` removes it)
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from kbuild.errors import KbuildError
from kbuild.lab.image import ImageSpec, is_built, mirror_from_env
from kbuild.lab.lab import Lab
from kbuild.lab.paths import cache_dir
from kbuild.lab.preflight import BUILD_TOOLS, RUN_TOOLS, check_host

SHARED_NAME = os.environ.get("KBUILD_TEST_LAB_NAME", "kbtest")
SHARED_SUBNET = os.environ.get("KBUILD_TEST_LAB_SUBNET", "198.18.0.192/26")
# Subnets for lab_factory labs (one /28 each: gateway .1, machines from .10, so up to 5 machines).
POOL = os.environ.get("KBUILD_TEST_LAB_POOL", "198.18.0.128/26")
SHARED_MASTERS = 1
SHARED_WORKERS = 2


def lab_unavailable() -> str | None:
    """Why this host cannot run lab machines, or None if it can."""
    needed = list(RUN_TOOLS)
    if not is_built(ImageSpec(mirror=mirror_from_env()), cache_dir()):
        needed += BUILD_TOOLS
    try:
        check_host(needed)
    except KbuildError as exc:
        return str(exc)
    return None


def _require_lab() -> bool:
    return os.environ.get("KBUILD_REQUIRE_LAB", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = lab_unavailable()
    if reason is None or _require_lab():
        return  # with KBUILD_REQUIRE_LAB the `lab` fixture fails loudly instead
    skip = pytest.mark.skip(reason=f"lab machines unavailable: {reason}")
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(skip)


@dataclass(frozen=True)
class LabMachine:
    name: str
    address: str
    role: str  # "master" or "worker"
    roles: tuple[str, ...]  # as in the inventory: etcd, control-plane / worker


class LabHandle:
    """What a test sees of a lab: its inventory and key, its machines, and ways in that bypass SSH."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab
        status = lab.status(probe=False)
        plan = lab.state.plan  # type: ignore[union-attr]
        self.name = lab.name
        self.subnet = status.subnet
        self.dir = Path(status.dir)
        self.inventory = Path(status.inventory)
        self.key_file = Path(status.key_file)
        self.known_hosts = Path(status.known_hosts)  # the host keys as the lab generated them
        self.machines = [LabMachine(m.name, str(m.address), m.role, tuple(m.inventory_roles)) for m in plan.machines]

    def __repr__(self) -> str:
        return f"LabHandle({self.name!r}, {[m.name for m in self.machines]})"

    def machine(self, name: str) -> LabMachine:
        full = self._lab.machine(name)[0].name
        return next(m for m in self.machines if m.name == full)

    def exec(self, name: str, command: str | Sequence[str], *, timeout: float | None = 120,
             input: str | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run `command` (a shell string or an argv list) as root inside machine `name`, without SSH."""
        return self._lab.exec(name, command, timeout=timeout, input=input, check=check)

    def stop(self, name: str) -> None:
        """Shut machine `name` down (its disk is kept)."""
        self._lab.stop(name)

    def start(self, name: str) -> None:
        """Boot machine `name` again and wait until its sshd answers and its boot has finished."""
        self._lab.start(name)
        self.settle([name])

    def settle(self, names: Sequence[str] | None = None, timeout: float = 60) -> None:
        """Wait until systemd has finished booting the machines (sshd answers a little earlier), so a
        test's `systemctl start` never races the boot transaction."""
        for name in names or [m.name for m in self.machines]:
            state = self.exec(name, "systemctl is-system-running --wait", timeout=timeout).stdout.strip()
            if state not in ("running", "degraded"):
                raise AssertionError(f"{name}: systemd is {state!r} after boot")

    def running(self, name: str) -> bool:
        return self._lab.machine(name)[0].running

    def ensure_all_running(self) -> None:
        """Restart any machine a test left stopped, so that the next test sees the whole lab."""
        for machine in self.machines:
            if not self.running(machine.name):
                self.start(machine.name)

    def down(self) -> None:
        self._lab.down()


def _quiet(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr)


def _bring_up(name: str, masters: int, workers: int, subnet: str) -> LabHandle:
    reason = lab_unavailable()
    if reason is not None:
        if _require_lab():
            pytest.fail(f"KBUILD_REQUIRE_LAB is set but lab machines are unavailable: {reason}", pytrace=False)
        pytest.skip(f"lab machines unavailable: {reason}")
    lab = Lab(name, say=_quiet)
    state = lab.state
    if state is not None and (state.masters, state.workers, state.subnet) != (masters, workers, subnet):
        lab.down()  # a leftover of another shape, from a run that could not clean up
    try:
        lab.up(masters, workers, subnet)
    except KbuildError as exc:
        log_tail = _log_tails(lab)
        lab.down()
        pytest.fail(f"cannot bring lab {name!r} up: {exc}{log_tail}", pytrace=False)
    handle = LabHandle(lab)
    handle.settle()
    return handle


def _log_tails(lab: Lab) -> str:
    parts = []
    for machine in lab.machines():
        try:
            tail = machine.paths.log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            continue
        parts.append(f"\n--- {machine.paths.log} (last lines) ---\n" + "\n".join(tail))
    return "".join(parts)


@pytest.fixture(scope="session")
def _sigterm_as_interrupt() -> Iterator[None]:
    # A CI timeout sends SIGTERM; turned into KeyboardInterrupt, pytest still runs fixture
    # teardown, so the labs come down instead of outliving the job.
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, interrupt)
    yield
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def lab(_sigterm_as_interrupt: None) -> Iterator[LabHandle]:
    """The session's shared lab: 1 master + 2 workers (kbtest-master-1, kbtest-worker-1, kbtest-worker-2)."""
    handle = _bring_up(SHARED_NAME, SHARED_MASTERS, SHARED_WORKERS, SHARED_SUBNET)
    try:
        yield handle
    finally:
        if os.environ.get("KBUILD_TEST_LAB_KEEP", "") in ("", "0"):
            handle.down()


class LabFactory:
    """Makes extra labs for tests that need a different shape or will tear one down; all go at session end.

    Names get the shared lab's name as prefix and, without an explicit subnet, each lab gets the next
    free /28 of KBUILD_TEST_LAB_POOL, so several test sessions on one machine never collide.
    """

    def __init__(self) -> None:
        self.labs: list[LabHandle] = []
        pool = ipaddress.ip_network(POOL)
        self._free = list(pool.subnets(new_prefix=28)) if pool.prefixlen <= 28 else [pool]

    def __call__(self, name: str, *, masters: int = 1, workers: int = 1, subnet: str | None = None) -> LabHandle:
        if subnet is None:
            if not self._free:
                pytest.fail(f"KBUILD_TEST_LAB_POOL {POOL} has no free /28 left for lab {name!r}", pytrace=False)
            subnet = str(self._free.pop(0))
        handle = _bring_up(f"{SHARED_NAME}-{name}"[:20], masters, workers, subnet)
        self.labs.append(handle)
        return handle

    def down_all(self) -> None:
        for handle in reversed(self.labs):
            handle.down()  # a no-op for labs a test already took down


@pytest.fixture(scope="session")
def lab_factory(_sigterm_as_interrupt: None) -> Iterator[LabFactory]:
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.down_all()
