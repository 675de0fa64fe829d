"""A lab as a whole: bring it up, report on it, start and stop its machines, and take it down leaving nothing."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kbuild.errors import UsageError
from kbuild.lab import cgroups, hostknobs, keys, network
from kbuild.lab.errors import LabError, LabNotFound
from kbuild.lab.firstboot import known_hosts_lines, machine_files, write_files
from kbuild.lab.image import ImageSpec, ensure_image, is_built, mirror_from_env
from kbuild.lab.image import prune as prune_images
from kbuild.lab.inventory import render_inventory
from kbuild.lab.machine import Machine, find_nspawns, ssh_answers, wait_gone
from kbuild.lab.mounts import mount_overlay, mounts_under, remove_tree, unmount_all
from kbuild.lab.paths import LabPaths, cache_dir, labs_dir
from kbuild.lab.topology import (
    DEFAULT_NAME,
    DEFAULT_SUBNET,
    LabPlan,
    MachineSpec,
    bridge_name,
    check_name,
    make_plan,
)
from kbuild.lab.preflight import BUILD_TOOLS, RUN_TOOLS, check_host
from kbuild.lab.state import LabState
from kbuild.state import ensure_dir, write_atomic

BOOT_TIMEOUT = 120.0  # seconds for every machine's sshd to answer after start
STOP_TIMEOUT = 20.0  # seconds for a clean shutdown before SIGKILL


@dataclass
class MachineStatus:
    name: str
    role: str
    address: str
    running: bool
    ssh: bool | None  # None: not probed
    pid: int | None
    log: str


@dataclass
class LabStatus:
    name: str
    dir: str
    subnet: str
    bridge: str
    bridge_present: bool
    inventory: str
    key_file: str
    known_hosts: str  # the host keys the lab generated, one line per machine and key type
    image: str
    machines: list[MachineStatus] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class DownReport:
    existed: bool
    stopped: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class Lab:
    """One named lab on this host. Every method that changes something holds the labs' lock."""

    def __init__(self, name: str = DEFAULT_NAME, *, base: Path | None = None, cache: Path | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.name = check_name(name)
        self.base = base or labs_dir()
        self.paths = LabPaths.for_lab(name, self.base)
        self.cache = cache or cache_dir()
        self.say = say

    # -- reading -----------------------------------------------------------------------------
    @property
    def state(self) -> LabState | None:
        return LabState.load(self.paths.state_file)

    def _require_state(self) -> LabState:
        state = self.state
        if state is None:
            raise LabNotFound(f"no lab named {self.name!r} (nothing in {self.paths.root}); "
                              f"create it with `kbuild lab up --name {self.name}`")
        return state

    def machine(self, name: str) -> tuple[Machine, MachineSpec]:
        spec = self._require_state().plan.machine(name)
        return self._machine(spec.name), spec

    def _machine(self, name: str) -> Machine:
        return Machine(name, self.paths.machine(name), self.name)

    def machines(self) -> list[Machine]:
        """Every machine the lab has or may have half-made: those of its plan and any directory found."""
        names: list[str] = []
        state = self.state
        if state is not None:
            names += [m.name for m in state.plan.machines]
        if self.paths.machines_dir.is_dir():
            names += sorted(p.name for p in self.paths.machines_dir.iterdir() if p.is_dir() and p.name not in names)
        return [self._machine(n) for n in names]

    # -- image -------------------------------------------------------------------------------
    def image_spec(self, mirror: str | None = None) -> ImageSpec:
        return ImageSpec(mirror=mirror_from_env(mirror))

    def build_image(self, *, rebuild: bool = False, mirror: str | None = None) -> Path:
        """Build the image if it is missing (or `rebuild`); return its rootfs."""
        check_host([*RUN_TOOLS, *BUILD_TOOLS])
        return self._ensure_image(self.image_spec(mirror), rebuild=rebuild)

    def _ensure_image(self, spec: ImageSpec, *, rebuild: bool = False) -> Path:
        fresh = rebuild or not is_built(spec, self.cache)
        users = labs_using(spec.rootfs(self.cache), self.base) if rebuild else []
        rootfs = ensure_image(spec, self.cache, rebuild=rebuild, in_use=users, say=self.say)
        if fresh:
            in_use = {Path(s.image) for s in lab_states(self.base)}
            for old in prune_images(self.cache, spec.dir(self.cache), in_use):
                self.say(f"removed unused lab image {old}")
        return rootfs

    # -- up ----------------------------------------------------------------------------------
    def up(self, masters: int = 1, workers: int = 2, subnet: str = DEFAULT_SUBNET, *, mirror: str | None = None,
           timeout: float = BOOT_TIMEOUT, inventory_out: Path | None = None) -> LabStatus:
        """Create and boot the lab (or start what is stopped of an existing one); return its status."""
        plan = make_plan(self.name, masters, workers, subnet)
        spec = self.image_spec(mirror)
        check_host([*RUN_TOOLS, *([] if is_built(spec, self.cache) else BUILD_TOOLS)])
        with self._locked():
            state = self.state
            if state is not None and not state.same_shape(plan):
                raise UsageError(f"lab {self.name!r} already exists with {state.describe()}; "
                                 f"take it down first with `kbuild lab down --name {self.name}`")
            if state is None:
                image = self._ensure_image(spec)
                self._check_addresses(plan)
                ensure_dir(self.base, mode=0o755)
                ensure_dir(self.paths.root)
                state = LabState(self.name, plan.masters, plan.workers, str(plan.subnet), plan.bridge, str(image),
                                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                state.save(self.paths.state_file)  # before anything exists, so `down` can find it all
            else:
                image = Path(state.image)
                if not image.is_dir():
                    raise LabError(f"lab {self.name!r} was made from image {image}, which is gone; "
                                   f"run `kbuild lab down --name {self.name}` and `up` again")
            self._prepare_host(plan, state)
            login_key = keys.ensure_login_key(self.paths.key, self.paths.public_key, f"kbuild-lab-{self.name}")
            machines = [(self._machine(m.name), m) for m in plan.machines]
            started = []
            for machine, machine_spec in machines:
                self._create(machine, machine_spec, plan, image, login_key)
                if not machine.running:
                    machine.start(image, plan.bridge)
                    started.append(machine.name)
            if started:
                self.say(f"started {', '.join(started)}; waiting for sshd")
            self._wait_ssh(machines, timeout)
            self._write_known_hosts(plan)
            inventory = render_inventory(plan, self.paths.key)
            write_atomic(self.paths.inventory, inventory, mode=0o600)
            if inventory_out is not None:
                write_atomic(inventory_out.absolute(), inventory, mode=0o644)
        return self.status()

    def _check_addresses(self, plan: LabPlan) -> None:
        wanted = [plan.gateway, *(m.address for m in plan.machines)]
        problems = network.address_conflicts(plan.subnet, wanted, plan.bridge, network.interfaces())
        if problems:
            raise UsageError(f"cannot use {plan.subnet} for lab {self.name!r}: {'; '.join(problems)}; "
                             "pick another subnet with --subnet")

    def _prepare_host(self, plan: LabPlan, state: LabState) -> None:
        if network.ensure_bridge(plan.bridge, plan.gateway_cidr, self.name):
            self.say(f"created bridge {plan.bridge} with {plan.gateway_cidr}")
        loaded = hostknobs.load_modules()
        if loaded:
            self.say(f"host: loaded kernel module {', '.join(loaded)} (machines cannot load modules themselves)")
        tuned = hostknobs.set_kernel_settings()
        if tuned:
            self.say(f"host: set {', '.join(tuned)} (what a kubelet sets at start, and the inotify limits "
                     "every machine's root draws on: machines share this kernel)")
        if hostknobs.ensure_forward_rule(plan.bridge, self.name) and not state.forward_rule:
            state.forward_rule = True
            state.save(self.paths.state_file)
            self.say(f"host: inserted iptables rule `{' '.join(hostknobs.forward_rule(plan.bridge, self.name))}` "
                     "because the host's FORWARD chain drops bridged traffic; `lab down` removes it")

    def _create(self, machine: Machine, spec: MachineSpec, plan: LabPlan, image: Path, login_key: str) -> None:
        """First-boot files for a new machine, written once (a machine keeps its identity across restarts)."""
        paths = machine.paths
        if paths.created_marker.exists():
            return
        ensure_dir(paths.dir)
        mount_overlay(image, paths.upper, paths.work, paths.merged)
        write_files(paths.merged, machine_files(plan, spec, login_key, keys.host_keys(spec.name)))
        paths.created_marker.write_text(f"{spec.address}\n")

    def _wait_ssh(self, machines: Sequence[tuple[Machine, MachineSpec]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(machines)
        while waiting:
            with ThreadPoolExecutor(max_workers=min(16, len(waiting))) as pool:
                answers = list(pool.map(lambda ms: ssh_answers(str(ms[1].address), timeout=1.0), waiting))
            waiting = [ms for ms, ok in zip(waiting, answers) if not ok]
            for machine, spec in waiting:
                if not machine.running:
                    raise LabError(f"{machine.name}: the machine stopped while booting; see {machine.paths.log}",
                                   hint=f"`kbuild lab down --name {self.name}` removes the lab")
            if waiting and time.monotonic() >= deadline:
                machine, spec = waiting[0]
                others = f" (also {', '.join(m.name for m, _ in waiting[1:])})" if len(waiting) > 1 else ""
                raise LabError(f"{machine.name}: sshd at {spec.address}:22 did not answer within {timeout:g} s"
                               f"{others}; see {machine.paths.log}",
                               hint=f"`kbuild lab down --name {self.name}` removes the lab")
            if waiting:
                time.sleep(0.3)

    def _write_known_hosts(self, plan: LabPlan) -> None:
        lines: list[str] = []
        for spec in plan.machines:
            ssh_dir = self.paths.machine(spec.name).upper / "etc/ssh"
            public = [p.read_text() for p in sorted(ssh_dir.glob("ssh_host_*_key.pub"))]
            lines += known_hosts_lines(str(spec.address), public)
        write_atomic(self.paths.known_hosts, "".join(f"{line}\n" for line in lines), mode=0o644)

    # -- status ------------------------------------------------------------------------------
    def status(self, *, probe: bool = True) -> LabStatus:
        check_host(RUN_TOOLS)
        state = self._require_state()
        plan = state.plan
        bridge = network.interfaces().get(plan.bridge)
        machines = [(self._machine(m.name), m) for m in plan.machines]
        pids = [machine.pid for machine, _ in machines]

        def reachable(item: tuple[tuple[Machine, MachineSpec], int | None]) -> bool | None:
            (_machine, spec), pid = item
            return ssh_answers(str(spec.address), timeout=2.0) if probe and pid else (False if probe else None)

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(machines)))) as pool:
            ssh = list(pool.map(reachable, zip(machines, pids)))
        return LabStatus(
            name=self.name, dir=str(self.paths.root), subnet=state.subnet, bridge=plan.bridge,
            bridge_present=bridge is not None and bridge.alias == network.owner_tag(self.name),
            inventory=str(self.paths.inventory), key_file=str(self.paths.key),
            known_hosts=str(self.paths.known_hosts), image=state.image,
            machines=[MachineStatus(m.name, spec.role, str(spec.address), pid is not None, up, pid, str(m.paths.log))
                      for (m, spec), pid, up in zip(machines, pids, ssh)],
        )

    # -- one machine -------------------------------------------------------------------------
    def stop(self, name: str, *, timeout: float = STOP_TIMEOUT) -> bool:
        """Shut one machine down (SIGKILL after `timeout`); return False if it was not running."""
        check_host(RUN_TOOLS)
        machine, _spec = self.machine(name)
        with self._locked():
            was_running = machine.request_stop()
            if wait_gone([machine], timeout):
                machine.kill()
                wait_gone([machine], 10)
            machine.release()
        return was_running

    def start(self, name: str, *, timeout: float = BOOT_TIMEOUT) -> bool:
        """Start one stopped machine and wait for its sshd; return False if it was already running."""
        check_host(RUN_TOOLS)
        machine, spec = self.machine(name)
        state = self._require_state()
        with self._locked():
            if machine.running:
                return False
            if not machine.paths.created_marker.exists():
                raise LabError(f"{machine.name} was never created; run `kbuild lab up --name {self.name}`")
            self._prepare_host(state.plan, state)
            machine.start(Path(state.image), state.plan.bridge)
            self._wait_ssh([(machine, spec)], timeout)
        return True

    def exec(self, name: str, command: str | Sequence[str], *, timeout: float | None = 120,
             input: str | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command inside a machine through its namespaces (no SSH)."""
        check_host(RUN_TOOLS)
        machine, _spec = self.machine(name)
        return machine.exec(command, timeout=timeout, input=input, check=check)

    # -- down --------------------------------------------------------------------------------
    def down(self, *, timeout: float = STOP_TIMEOUT) -> DownReport:
        """Stop every machine, unmount, delete the bridge and the lab directory; verify nothing is left."""
        check_host(RUN_TOOLS)
        with self._locked():
            try:
                state = self.state
            except LabError:
                state = None  # a damaged state file must not stop the clean-up
            bridge = state.bridge if state else bridge_name(self.name)
            report = DownReport(existed=self.paths.root.exists() or network.interfaces().get(bridge) is not None)
            machines = self.machines()
            for machine in machines:
                if machine.request_stop():
                    report.stopped.append(machine.name)
            stubborn = wait_gone(machines, timeout)
            for machine in stubborn:
                machine.kill()
                report.killed.append(machine.name)
            wait_gone(stubborn, 10)
            busy = [group for machine in machines for group in machine.release()]
            self._remove_cgroups()
            if self.paths.root.exists():
                unmount_all(self.paths.root)
            if network.delete_bridge(bridge, self.name):
                report.removed.append(f"bridge {bridge}")
            if hostknobs.remove_forward_rule(bridge, self.name):
                report.removed.append("iptables FORWARD rule")
            if self.paths.root.exists():
                remove_tree(self.paths.root)
                report.removed.append(str(self.paths.root))
            self._verify_gone(bridge, busy)
        return report

    def _remove_cgroups(self) -> None:
        for hierarchy in cgroups.current_hierarchies():
            group = hierarchy.path / cgroups.lab_group(self.name)
            if group.is_dir():
                cgroups.remove([p for p in group.iterdir() if p.is_dir()])
                with contextlib.suppress(OSError):
                    group.rmdir()

    def _verify_gone(self, bridge: str, busy_cgroups: list[Path]) -> None:
        left: list[str] = []
        left += [f"process {pid} (nspawn for {root})" for pid, root in find_nspawns(self.paths.root).items()]
        left += [f"cgroup {group} (processes still in it)" for group in busy_cgroups if group.exists()]
        left += [f"mount {m.target}" for m in mounts_under(self.paths.root)]
        if network.interfaces().get(bridge) is not None:
            left.append(f"interface {bridge}")
        if self.paths.root.exists():
            left.append(f"directory {self.paths.root}")
        if left:
            raise LabError(f"lab {self.name!r} could not be removed completely: {', '.join(left)}")

    # -- locking -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One lock for all labs, on their parent directory: nothing extra is left behind by `down`,
        # and two labs never race for the same addresses or bridge.
        ensure_dir(self.base, mode=0o755)
        fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def lab_names(base: Path | None = None) -> list[str]:
    root = base or labs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if LabPaths(p).state_file.is_file())


def lab_states(base: Path | None = None) -> list[LabState]:
    states = []
    for name in lab_names(base):
        with contextlib.suppress(LabError):
            state = LabState.load(LabPaths.for_lab(name, base).state_file)
            if state is not None:
                states.append(state)
    return states


def labs_using(image_rootfs: Path, base: Path | None = None) -> list[str]:
    """Labs whose machines sit on `image_rootfs`."""
    return [s.name for s in lab_states(base) if Path(s.image) == image_rootfs]
