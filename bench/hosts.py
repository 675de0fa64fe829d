"""Benchmark hosts: lab machines (systemd + sshd in systemd-nspawn), reached out of band (nsenter, never SSH) for
resets, end-state checks and reading sshd's log."""

from __future__ import annotations

import contextlib
import resource
import shlex
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import workload as wl
from bench.workload import Host
from kbuild.errors import KbuildError
from kbuild.lab.image import LAB_USER
from kbuild.lab.lab import Lab
from kbuild.lab.machine import Machine
from tests.integration.labnet import Registry, ReservationError

T = TypeVar("T")
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# Each machine's systemd holds a few inotify instances; Debian's default of 128 per user runs out
# at about 35 machines (on the whole host, other labs included), and systemd then fails to boot.
INOTIFY_PER_MACHINE = 8
SSHD_DROPIN = "/etc/ssh/sshd_config.d/kbbench.conf"
# VERBOSE makes sshd log every session it starts ("Starting session: command ..."): one line per
# remote command or SFTP subsystem, which is how round trips are counted for every tool alike.
SSHD_SETTINGS = "LogLevel VERBOSE\n"

RESET_SCRIPT = f"""
systemctl disable --now {wl.SERVICE}.service >/dev/null 2>&1
rm -f {wl.UNIT_PATH} /etc/systemd/system/multi-user.target.wants/{wl.SERVICE}.service
systemctl daemon-reload
systemctl reset-failed {wl.SERVICE}.service >/dev/null 2>&1
rm -rf {wl.CONF_DIR} {wl.BLOB_PATH} {wl.SEEN} {wl.SYSCTL_FILE} {wl.KBUILD_STAMP} \\
  /home/{LAB_USER}/.ansible /root/.ansible /var/tmp/kbuild.* /tmp/pyinfra-*
echo {wl.SYSCTL_DEFAULT} > /proc/sys/{wl.SYSCTL_KEY.replace('.', '/')}
"""


@dataclass(frozen=True)
class Access:
    """How the tools log in: the same user, key and pinned host keys for all three."""

    user: str
    key_file: Path
    known_hosts: Path


class BenchLab:
    """A lab whose machines serve as benchmark hosts (the first `n` of them for a run at size n)."""

    def __init__(self, name: str, *, say: Callable[[str], None] = print) -> None:
        self.lab = Lab(name, say=say)
        self.name = name
        self.say = say
        self.limits = HostLimits(say)
        self._machines: dict[str, Machine] = {}

    @property
    def exists(self) -> bool:
        return self.lab.state is not None

    def ensure(self, machines: int, subnet: str) -> None:
        """Bring the lab up with at least `machines` machines (1 master + workers; roles mean nothing here)."""
        self.limits.raise_for(machines)
        state = self.lab.state
        if state is not None and state.masters + state.workers >= machines:
            self.lab.up(state.masters, state.workers, state.subnet)  # starts whatever is stopped
            return
        if state is not None:
            self.say(f"lab {self.name} has {state.masters + state.workers} machines, {machines} needed: recreating it")
            self.lab.down()
        self.lab.up(1, machines - 1, subnet)

    def down(self) -> None:
        self.lab.down()
        self.limits.give_back()

    def hosts(self) -> list[Host]:
        status = self.lab.status(probe=False)
        return [Host(m.name, m.address) for m in status.machines]

    def access(self) -> Access:
        status = self.lab.status(probe=False)
        return Access(LAB_USER, Path(status.key_file), Path(status.known_hosts))

    def exec(self, host: str, script: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # The lab's own lookup reads its state file, which lists every machine: looked up once per host, or
        # each visit to all hosts would cost the square of their number.
        machine = self._machines.get(host)
        if machine is None:
            machine = self._machines[host] = self.lab.machine(host)[0]
        return machine.exec(script, timeout=timeout)  # a string runs through /bin/sh -c

    def on_all(self, hosts: Sequence[Host], script: str | Callable[[Host], str], *,
               timeout: float = 120) -> dict[str, subprocess.CompletedProcess[str]]:
        """Run a script (or one per host) as root on every host at once, out of band."""
        def one(host: Host) -> subprocess.CompletedProcess[str]:
            return self.exec(host.name, script(host) if callable(script) else script, timeout=timeout)

        return dict(zip((h.name for h in hosts), parallel(one, hosts)))

    def prepare(self, hosts: Sequence[Host]) -> None:
        """Wait for boot to finish and turn on sshd's per-session logging."""
        script = (f"systemctl is-system-running --wait >/dev/null 2>&1; "
                  f"printf %s {shlex.quote(SSHD_SETTINGS)} > {SSHD_DROPIN}; systemctl reload ssh")
        check(self.on_all(hosts, script), "preparing the host")

    def reset(self, hosts: Sequence[Host]) -> None:
        """Back to a fresh host: nothing of the workload left, the sysctl at the kernel default."""
        check(self.on_all(hosts, RESET_SCRIPT), "resetting the host")

    def restore(self, hosts: Sequence[Host]) -> None:
        """Reset and drop the sshd logging again (for a lab that others use too)."""
        self.reset(hosts)
        check(self.on_all(hosts, f"rm -f {SSHD_DROPIN}; systemctl reload ssh"), "restoring sshd")


def check(results: dict[str, subprocess.CompletedProcess[str]], what: str) -> None:
    for name, result in results.items():
        if result.returncode != 0:
            raise KbuildError(f"{name}: {what} failed (exit {result.returncode}): "
                              f"{(result.stderr or result.stdout).strip()[-500:]}")


def parallel(fn: Callable[[Host], T], hosts: Sequence[Host], workers: int = 16) -> list[T]:
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        return list(pool.map(fn, hosts))


@contextlib.contextmanager
def held_while_running(lab: str, subnet: str, registry: Registry | None = None) -> Iterator[None]:
    """Reserve `subnet` for `lab` in the test labs' registry (tests/integration/labnet.py) while the bench runs.

    A bench killed outright (SIGKILL, OOM, a session cut off) cannot take its lab down, and a lab of 200
    machines fills every subnet the test sessions draw from. Its reservation then names a dead owner, so
    the next test session takes the lab down instead of failing for want of addresses. A bench that
    ends normally drops the reservation: a lab it keeps (--keep-lab) is then the user's, like any other.
    """
    registry = registry or Registry()
    try:
        registry.reserve(lab, 0, (), subnet)  # an explicit subnet: no block is chosen, only clashes refused
    except ReservationError as exc:
        raise KbuildError(f"lab {lab}: {exc}") from None
    try:
        yield
    finally:
        registry.release(lab)


class HostLimits:
    """The limits of the lab's host that a lab of N machines outgrows, raised for the run and given back after.

    - fs.inotify.max_user_instances: each machine's systemd holds a few inotify instances; Debian's
      128 per user runs out at about 35 machines (other labs count too), and systemd then fails to boot.
    - open files (RLIMIT_NOFILE) of the bench and the tools it starts: one SSH socket per host, plus
      Ansible's ControlPersist sockets and pipes; the usual soft limit of 1024 is near at 200 hosts.
    Each raise is said when it is made and undone by give_back (a limit is never lowered below what it was).
    """

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.say = say
        self.inotify: int | None = None  # the value before we raised it
        self.nofile: tuple[int, int] | None = None

    def raise_for(self, machines: int) -> None:
        try:
            current = int(INOTIFY_INSTANCES.read_text())
        except (OSError, ValueError):
            current = None
        wanted = 1024 + INOTIFY_PER_MACHINE * machines
        if current is not None and current < wanted:
            INOTIFY_INSTANCES.write_text(f"{wanted}\n")
            self.inotify = current if self.inotify is None else self.inotify
            self.say(f"host: raised fs.inotify.max_user_instances {current} -> {wanted} for {machines} machines "
                     f"(given back when the lab goes down)")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted_files = min(hard, max(soft, 4096 + 16 * machines)) if hard != resource.RLIM_INFINITY \
            else max(soft, 4096 + 16 * machines)
        if wanted_files > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted_files, hard))
            self.nofile = self.nofile or (soft, hard)
            self.say(f"bench: raised the open-files limit {soft} -> {wanted_files} (for this run only)")

    def give_back(self) -> None:
        if self.inotify is not None:
            INOTIFY_INSTANCES.write_text(f"{self.inotify}\n")
            self.say(f"host: fs.inotify.max_user_instances back to {self.inotify}")
            self.inotify = None
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            self.nofile = None
