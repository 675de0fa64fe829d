"""The engine on lab hosts. Real parts: OpenSSH sshd, systemd, sudo and coreutils in systemd-nspawn
machines; paramiko on the controller. Nothing Kubernetes here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kbuild.cli import run as cli
from kbuild.connect import open_pool
from kbuild.engine.report import Reporter
from kbuild.engine.resources import Directory, File, Service
from kbuild.engine.runner import HostStatus, Plan, Runner
from kbuild.inventory import load_cluster
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

UNIT = """\
[Unit]
Description=kbuild engine test service {name}

[Service]
ExecStart=/bin/sh -c 'cat /etc/kbtest/{name}.conf; exec sleep infinity'
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


class Events:
    def __init__(self) -> None:
        self.items = []

    def emit(self, event) -> None:
        self.items.append(event)

    def close(self) -> None:
        pass


def plan(version: str = "1", other: str = "1") -> Plan:
    return Plan([
        Directory("/etc/kbtest", mode=0o750),
        File("/etc/kbtest/alpha.conf", f"alpha version {version}\n", notify=("kbtest-alpha",)),
        File("/etc/kbtest/beta.conf", f"beta version {other}\n", notify=("kbtest-beta",)),
        File("/etc/systemd/system/kbtest-alpha.service", UNIT.format(name="alpha"), notify=("kbtest-alpha",)),
        File("/etc/systemd/system/kbtest-beta.service", UNIT.format(name="beta"), notify=("kbtest-beta",)),
        Service("kbtest-alpha"),
        Service("kbtest-beta"),
    ])


@pytest.fixture
def cluster(lab, tmp_path):
    # Each test keeps its own state dir (and known_hosts), so host-key tests cannot leak into others.
    return load_cluster(lab.inventory, state_dir=tmp_path / "state")


def run(cluster, plans_for, *, check=False, diff=False, hosts=None):
    events = Events()
    names = hosts or [h.name for h in cluster.hosts]
    pool = open_pool(cluster, [cluster.host(n) for n in names])
    try:
        runner = Runner(pool, Reporter([events]), check=check, diff=diff)
        outcomes = runner.apply("test", {n: plans_for(n) for n in names})
    finally:
        pool.close()
    return outcomes, pool.stats, events


def invocation(lab, machine: str, unit: str) -> str:
    return lab.exec(machine, f"systemctl show -p InvocationID --value {unit}").stdout.strip()


def test_apply_then_noop_then_one_change(lab, cluster):
    names = [h.name for h in cluster.hosts]
    first, _, _ = run(cluster, lambda n: plan())
    assert {o.status for o in first.values()} == {HostStatus.CHANGED}
    for name in names:
        assert lab.exec(name, "systemctl is-active kbtest-alpha kbtest-beta").stdout.split() == ["active", "active"]
        assert lab.exec(name, "stat -c %a /etc/kbtest").stdout.strip() == "750"
    before = {n: (invocation(lab, n, "kbtest-alpha"), invocation(lab, n, "kbtest-beta")) for n in names}

    # Second run: nothing changes, nothing restarts, one connection and one round trip per host.
    second, stats, _ = run(cluster, lambda n: plan())
    assert {o.status for o in second.values()} == {HostStatus.OK}
    assert all(o.changed == [] and o.restarted == [] for o in second.values())
    assert stats.connections == len(names) and stats.round_trips == len(names)
    assert {n: (invocation(lab, n, "kbtest-alpha"), invocation(lab, n, "kbtest-beta")) for n in names} == before

    # Changing alpha's config restarts alpha only, once, everywhere.
    third, _, _ = run(cluster, lambda n: plan(version="2"))
    for name, outcome in third.items():
        assert outcome.changed == ["file:/etc/kbtest/alpha.conf"] and outcome.restarted == ["kbtest-alpha"]
        assert invocation(lab, name, "kbtest-alpha") != before[name][0]
        assert invocation(lab, name, "kbtest-beta") == before[name][1]
        assert "alpha version 2" in lab.exec(name, "journalctl -u kbtest-alpha -n 5 --no-pager").stdout


def test_check_mode_changes_nothing_on_hosts(lab, cluster):
    run(cluster, lambda n: plan(version="3"))
    target = cluster.hosts[0].name
    snapshot = lab.exec(target, "sha256sum /etc/kbtest/*.conf /etc/systemd/system/kbtest-*.service").stdout
    inv = invocation(lab, target, "kbtest-alpha")
    outcomes, _, events = run(cluster, lambda n: plan(version="4", other="9"), check=True, diff=True)
    assert outcomes[target].status is HostStatus.CHANGED
    assert sorted(outcomes[target].changed) == ["file:/etc/kbtest/alpha.conf", "file:/etc/kbtest/beta.conf"]
    assert any("+alpha version 4" in (e.diff or "") for e in events.items)
    assert lab.exec(target, "sha256sum /etc/kbtest/*.conf /etc/systemd/system/kbtest-*.service").stdout == snapshot
    assert invocation(lab, target, "kbtest-alpha") == inv


def test_stopped_host_is_unreachable_and_others_finish(lab, cluster):
    victim = cluster.hosts[-1].name
    lab.stop(victim)
    try:
        outcomes, _, events = run(cluster, lambda n: plan(version="5"))
        assert outcomes[victim].status is HostStatus.UNREACHABLE
        assert "cannot connect" in (outcomes[victim].message or "")
        others = [o for n, o in outcomes.items() if n != victim]
        assert others and all(o.status is HostStatus.CHANGED for o in others)
        assert any(e.event == "host.unreachable" and e.host == victim for e in events.items)
    finally:
        lab.start(victim)


def test_ping_cli_json_and_exit_codes(lab, tmp_path):
    state = tmp_path / "state"
    proc = subprocess.run([str(Path(".venv/bin/kbuild").resolve()), "ping", "-i", str(lab.inventory),
                           "--state-dir", str(state), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    pongs = [e for e in events if e["event"] == "message"]
    assert len(pongs) == len(lab.machines) and all("pong" in e["message"] and "root" in e["message"] for e in pongs)
    assert events[-1]["event"] == "run.end" and events[-1]["data"]["connections"] == len(lab.machines)
    assert (state / "known_hosts").stat().st_mode & 0o777 == 0o600


def test_changed_host_key_is_refused(lab, tmp_path):
    state = tmp_path / "state"
    assert cli(["ping", "-i", str(lab.inventory), "--state-dir", str(state)]) == 0
    victim = lab.machines[0].name
    # The shared lab's other users have recorded this host's key: it gets its own keys back afterwards.
    lab.exec(victim, "mkdir -p /root/kbtest-hostkeys && cp -a /etc/ssh/ssh_host_* /root/kbtest-hostkeys/")
    try:
        lab.exec(victim, "rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A >/dev/null && systemctl restart ssh")
        cluster = load_cluster(lab.inventory, state_dir=state)
        known_before = (state / "known_hosts").read_text()
        outcomes, _, _ = run(cluster, lambda n: Plan([File("/etc/kbtest-hostkey", "must not be written\n")]))
        assert outcomes[victim].status is HostStatus.UNREACHABLE
        assert "HOST KEY CHANGED" in outcomes[victim].message and "ssh-keygen" in outcomes[victim].message
        assert lab.exec(victim, "test -e /etc/kbtest-hostkey; echo $?").stdout.strip() == "1"
        assert (state / "known_hosts").read_text() == known_before  # never silently replaced
        assert all(o.status is HostStatus.CHANGED for n, o in outcomes.items() if n != victim)
    finally:
        lab.exec(victim, "rm -f /etc/ssh/ssh_host_* && cp -a /root/kbtest-hostkeys/. /etc/ssh/ "
                         "&& rm -rf /root/kbtest-hostkeys && systemctl restart ssh")
    # The host has its original keys again: the lab's own known_hosts, strictly, accepts it.
    strict = derived_inventory(lab, tmp_path / "strict.yaml", host_key_policy="strict", known_hosts=str(lab.known_hosts))
    assert cli(["ping", "-i", str(strict), "--state-dir", str(tmp_path / "strict-state"), "--limit", victim]) == 0


def derived_inventory(lab, path: Path, **ssh) -> Path:
    data = yaml.safe_load(lab.inventory.read_text())
    data.setdefault("ssh", {}).update(ssh)
    path.write_text(yaml.safe_dump(data))
    return path


def test_strict_policy_refuses_unknown_hosts(lab, tmp_path):
    inv = derived_inventory(lab, tmp_path / "strict.yaml", host_key_policy="strict")
    code = cli(["ping", "-i", str(inv), "--state-dir", str(tmp_path / "state")])
    assert code == 4
    assert not (tmp_path / "state" / "known_hosts").exists()


def test_bastion(lab, tmp_path):
    """Reach the last machine only through the first one (a jump host), with the same verification."""
    first, last = lab.machines[0], lab.machines[-1]
    inv = derived_inventory(lab, tmp_path / "bastion.yaml", bastion={"host": str(first.address)})
    cluster = load_cluster(inv, state_dir=tmp_path / "state")
    outcomes, stats, _ = run(cluster, lambda n: Plan([File("/etc/kbtest-bastion", "via jump\n")]),
                             hosts=[last.name])
    assert outcomes[last.name].status is HostStatus.CHANGED
    assert lab.exec(last.name, "cat /etc/kbtest-bastion").stdout == "via jump\n"


@pytest.mark.skipif(shutil.which("ssh-agent") is None, reason="ssh-agent (openssh-client) is not installed")
def test_ssh_agent_supplies_the_key(lab, tmp_path):
    """No key_file in the inventory: the key comes from a running ssh-agent (SSH_AUTH_SOCK), as users expect."""
    data = yaml.safe_load(lab.inventory.read_text())
    data["ssh"].pop("key_file", None)
    inv = tmp_path / "agent.yaml"
    inv.write_text(yaml.safe_dump(data))
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        wait_until(socket_path.exists)
        env = dict(os.environ, SSH_AUTH_SOCK=str(socket_path), HOME=str(tmp_path))  # no ~/.ssh keys to find
        added = subprocess.run(["ssh-add", str(lab.key_file)], env=env, capture_output=True, text=True)
        assert added.returncode == 0, added.stderr
        proc = subprocess.run([sys.executable, "-m", "kbuild", "ping", "-i", str(inv), "--state-dir",
                               str(tmp_path / "state")], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        # And without the agent the same inventory cannot log in.
        bare = dict(env)
        bare.pop("SSH_AUTH_SOCK")
        proc = subprocess.run([sys.executable, "-m", "kbuild", "ping", "-i", str(inv), "--state-dir",
                               str(tmp_path / "state")], env=bare, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 4 and "authentication failed" in proc.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=10)
