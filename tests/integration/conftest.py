"""Lab machines for integration tests: one shared lab for the session, and a factory for tests that need their own.

Real parts: systemd-nspawn machines booting Debian's systemd and OpenSSH sshd on a host bridge
(kbuild.lab). Tests marked `integration` are skipped with the reason when this host cannot run
a lab (not root, not Linux, systemd-nspawn missing) unless KBUILD_REQUIRE_LAB=1, which turns
the skip into a failure (CI sets it: there the lab must run).

Fixtures:
  lab          session-scoped LabHandle of the shared lab (<prefix>-master-1, <prefix>-worker-1, <prefix>-worker-2):
                 .inventory .key_file .known_hosts (Paths)   .gateway   .machines: [.name .address .role .roles]
                 .exec(name, "cmd" | [argv], timeout=, input=, check=) -> CompletedProcess  (root, no SSH)
                 .stop(name)  .start(name) (waits for sshd and boot)  .running(name)  .ensure_all_running()
               A test that stops a machine starts it again (try/finally), so the next test sees all three.
  lab_factory  session-scoped: lab_factory(name, masters=1, workers=1) -> LabHandle for a lab of another
               shape, named <prefix>-<name>, on a subnet of its own; lab_factory.release(handle) when
               the module is done with it; whatever is left goes down at session end.

Several sessions may run on one machine at once (labnet.py keeps their names and subnets apart).

Settings (environment):
  KBUILD_TEST_LAB_NAME     the session's lab name prefix (default kb and four random hex digits)
  KBUILD_TEST_LAB_SUBNET   the shared lab's subnet (default: a free block of the pool)
  KBUILD_TEST_LAB_POOL     where labs get their subnets, comma-separated networks
                           (default 198.18.0.32/27,198.18.0.64/26,198.18.0.128/25)
  KBUILD_TEST_LAB_KEEP=1   leave the shared lab up after the session (for debugging; `kbuild lab
                           down --name <prefix>` removes it)
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kbuild.errors import KbuildError
from kbuild.lab.image import ImageSpec, is_built, mirror_from_env
from kbuild.lab.lab import Lab
from kbuild.lab.paths import cache_dir
from kbuild.lab.preflight import BUILD_TOOLS, RUN_TOOLS, check_host
from tests.integration.labnet import Registry, ReservationError, session_name

# Blocks come from the pool, clear of every other lab and test session on the machine (labnet.py):
# a /28 holds up to 5 machines, a /27 up to 21 (gateway .1, machines from .10). The default leaves
# 198.18.0.0/27 alone: a default `kbuild lab up` (198.18.0.1, .10 and up) may be running.
POOL = os.environ.get("KBUILD_TEST_LAB_POOL", "198.18.0.32/27,198.18.0.64/26,198.18.0.128/25")
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
        self.gateway = str(plan.gateway)  # the bridge's own address on the lab subnet
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


def _require_lab_host() -> None:
    reason = lab_unavailable()
    if reason is not None:
        if _require_lab():
            pytest.fail(f"KBUILD_REQUIRE_LAB is set but lab machines are unavailable: {reason}", pytrace=False)
        pytest.skip(f"lab machines unavailable: {reason}")


def _bring_up(name: str, masters: int, workers: int, subnet: str) -> LabHandle:
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


class SessionLabs:
    """The labs of this test session: names with the session's prefix, subnets reserved machine-wide.

    The prefix is KBUILD_TEST_LAB_NAME or, by default, `kb` and four random hex digits, so that two
    sessions on one machine never share a machine; the subnets come from KBUILD_TEST_LAB_POOL (or
    KBUILD_TEST_LAB_SUBNET for the shared lab) through the registry in labnet.py.
    """

    def __init__(self, registry: Registry, prefix: str) -> None:
        self.registry = registry
        self.prefix = prefix
        self.pools = [ipaddress.IPv4Network(p.strip()) for p in POOL.split(",") if p.strip()]

    def name(self, suffix: str | None) -> str:
        return self.prefix if suffix is None else f"{self.prefix}-{suffix}"[:20]

    def reserve(self, name: str, machines: int, subnet: str | None = None) -> str:
        """A subnet for lab `name` that no other lab or session uses (for labs other tools bring up)."""
        try:
            return self.registry.reserve(name, machines, self.pools, subnet)
        except ReservationError as exc:
            pytest.fail(str(exc), pytrace=False)

    def bring_up(self, suffix: str | None, masters: int, workers: int, subnet: str | None = None) -> LabHandle:
        name = self.name(suffix)
        subnet = self.reserve(name, masters + workers, subnet)
        try:
            return _bring_up(name, masters, workers, subnet)
        except BaseException:
            self.registry.release(name)
            raise

    def take_down(self, handle: LabHandle) -> None:
        handle.down()
        self.registry.release(handle.name)


@pytest.fixture(scope="session")
def session_labs(_sigterm_as_interrupt: None) -> SessionLabs:
    _require_lab_host()
    registry = Registry()
    try:
        registry.reap(say=_quiet)
        prefix = os.environ.get("KBUILD_TEST_LAB_NAME") or session_name(registry.taken_names())
    except (KbuildError, OSError) as exc:
        pytest.fail(f"cannot read the lab registry {registry.root}: {exc}", pytrace=False)
    return SessionLabs(registry, prefix)


@pytest.fixture(scope="session")
def lab(session_labs: SessionLabs) -> Iterator[LabHandle]:
    """The session's shared lab: 1 master + 2 workers (<prefix>-master-1, <prefix>-worker-1, <prefix>-worker-2)."""
    handle = session_labs.bring_up(None, SHARED_MASTERS, SHARED_WORKERS, os.environ.get("KBUILD_TEST_LAB_SUBNET"))
    try:
        yield handle
    finally:
        if os.environ.get("KBUILD_TEST_LAB_KEEP", "") in ("", "0"):
            session_labs.take_down(handle)
        else:  # kept for debugging: no longer this session's, so the next session leaves it alone
            session_labs.registry.release(handle.name)
            _quiet(f"kept lab {handle.name}; `kbuild lab down --name {handle.name}` removes it")


class LabFactory:
    """Labs for tests that need another shape or will tear one down: `lab_factory("ha", masters=4)`.

    A module fixture that makes one hands it back with `release(handle)` when its module is done, so
    its machines and subnet are free for the next; whatever is left goes at session end.
    """

    def __init__(self, labs: SessionLabs) -> None:
        self.labs = labs
        self.handles: list[LabHandle] = []

    def __call__(self, name: str, *, masters: int = 1, workers: int = 1, subnet: str | None = None) -> LabHandle:
        handle = self.labs.bring_up(name, masters, workers, subnet)
        self.handles.append(handle)
        return handle

    def release(self, handle: LabHandle) -> None:
        if handle in self.handles:
            self.handles.remove(handle)
        self.labs.take_down(handle)  # a no-op down for a lab a test already took down

    def reserve(self, name: str, machines: int) -> tuple[str, str]:
        """(lab name, subnet) for a lab another tool brings up; give it back with `forget(name)`."""
        full = self.labs.name(name)
        return full, self.labs.reserve(full, machines)

    def forget(self, full_name: str) -> None:
        self.labs.registry.release(full_name)

    def release_all(self) -> None:
        for handle in reversed(list(self.handles)):
            self.release(handle)


@pytest.fixture(scope="session")
def lab_factory(session_labs: SessionLabs) -> Iterator[LabFactory]:
    factory = LabFactory(session_labs)
    try:
        yield factory
    finally:
        factory.release_all()


# -- a bootstrapped cluster on the shared lab ---------------------------------------------------------


@dataclass
class ClusterLab:
    """A lab with its inventory (with the test mirror) and state dir; `cluster_lab` is the shared lab, bootstrapped."""

    lab: LabHandle
    inventory: Path
    state_dir: Path

    def kbuild(self, *args: str, timeout: float = 600, json_events: bool = True) -> tuple[int, list[dict], str]:
        """Run the kbuild CLI in a child process (--json unless json_events=False): (exit code, events, stderr)."""
        return run_kbuild([*args, "-i", str(self.inventory), "--state-dir", str(self.state_dir)], timeout=timeout,
                          json_events=json_events)


def run_kbuild(args: Sequence[str], *, timeout: float = 600, json_events: bool = True) -> tuple[int, list[dict], str]:
    """(exit code, events, what kbuild said went wrong): its stderr and, with --json, the error object it ends
    stdout with, in the words it prints without --json."""
    argv = [sys.executable, "-m", "kbuild", *args] + (["--json"] if json_events else [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    lines = parse_events(proc.stdout)
    errors = [e["error"] for e in lines if isinstance(e.get("error"), dict)]
    said = [proc.stderr] + [f"error: {e['message']}" + (f"\n  hint: {e['hint']}" if e.get("hint") else "")
                            for e in errors]
    return proc.returncode, [e for e in lines if "event" in e], "\n".join(said)


def parse_events(text: str) -> list[dict]:
    """The JSON event lines of kbuild's --json output (other lines skipped)."""
    events = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


def changed(events: list[dict]) -> list[tuple[str, str]]:
    """(host, resource) of every resource a run changed."""
    return [(e["host"], e["resource"]) for e in events if e["event"] == "resource" and e["status"] == "changed"]


def restarted(events: list[dict]) -> list[tuple[str, str]]:
    """(host, "service NAME") of every service a run restarted."""
    return [(e["host"], e["resource"]) for e in events if e["event"] == "handler" and e["status"] == "restarted"]


def wait_until(condition: Callable[[], object], *, timeout: float = 5.0, interval: float = 0.1) -> bool:
    """Poll `condition` every `interval` seconds until it holds or `timeout` has passed; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def inventory_with_mirror(source: Path, target: Path, mirror: Path, *, preload: Sequence[str] = (),
                          **changes: object) -> Path:
    """A copy of a lab inventory that installs from the test mirror (images too, `preload` among them), with
    top-level sections updated."""
    data = yaml.safe_load(source.read_text())
    data.setdefault("artifacts", {})["mirror"] = str(mirror)
    if preload:
        data["artifacts"]["images"] = {"preload": list(preload)}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


WORKER_ROLE_LABEL = "node-role.kubernetes.io/worker"


@pytest.fixture(scope="session")
def cluster_lab(lab: LabHandle, built_mirror, tmp_path_factory: pytest.TempPathFactory) -> ClusterLab:
    """The shared lab bootstrapped once per session (1 master + 2 workers). Tests that change it put it back."""
    base = tmp_path_factory.mktemp("cluster-lab")
    # The workers carry a role label the kubelet may not set itself (NodeRestriction): kbuild sets it through
    # the API, so every re-run on this lab also checks that its guard sees the label in place.
    hosts = yaml.safe_load(lab.inventory.read_text())["hosts"]
    labelled = {name: {**host, "labels": {**host.get("labels", {}), WORKER_ROLE_LABEL: ""}}
                for name, host in hosts.items() if "worker" in host.get("roles", [])}
    handle = ClusterLab(lab, inventory_with_mirror(lab.inventory, base / "inventory.yaml", built_mirror.root,
                                                   preload=[built_mirror.test_image], hosts=labelled),
                        base / "state")
    code, events, stderr = handle.kbuild("bootstrap")
    if code != 0:
        failed = [e for e in events if e.get("status") in ("failed", "unreachable")]
        pytest.fail(f"bootstrap of the shared lab failed (exit {code}): {failed[-3:]}\n{stderr[-2000:]}",
                    pytrace=False)
    return handle
