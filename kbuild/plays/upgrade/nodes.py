"""Nodes during an upgrade: their state in the API, and cordon, drain, Ready and uncordon through kubectl."""

from __future__ import annotations

import time

from kbuild.engine.runner import Gate
from kbuild.engine.shell import command
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError
from kbuild.plays.clusterfacts import nodes as node_facts
from kbuild.plays.clusterfacts.installed import start_time_command
from kbuild.plays.clusterfacts.nodes import Node
from kbuild.plays.clusterfacts.version import Version
from kbuild.plays.control_plane import kubectl

# Set on a node kbuild cordoned, so a run that stops between drain and uncordon is finished by the next
# one, and a node an administrator cordoned beforehand is left cordoned (kubespray does the same check).
ANNOTATION = "kbuild.io/upgrade-cordoned"
DRAIN_ATTEMPTS = 3
DRAIN_TIMEOUT = 120  # seconds per attempt; kubectl retries evictions a PodDisruptionBudget refuses (429)
DRAIN_PAUSE = 10.0
READY_TIMEOUT = 180.0


def cordoned_by_kbuild(node: Node) -> bool:
    return ANNOTATION in node.annotations


def _run(conn: Connection, command: str, what: str, timeout: float | None = None) -> str:
    result = conn.run(command, timeout=timeout) if timeout else conn.run(command)
    if not result.ok:
        raise KbuildError(f"{what} failed (through {conn.target.name}, exit {result.rc}): "
                          f"{(result.err or result.out).strip()[-1500:] or 'no output'}")
    return result.out


def cordon(conn: Connection, node: str, target: Version, *, status_command: str) -> bool:
    """Cordon `node` and mark it as cordoned by kbuild; False (and nothing done) when it already was
    unschedulable before: an administrator's cordon outlives the upgrade."""
    state = node_facts.parse(_run(conn, node_facts.COMMAND, f"reading Node {node}")).get(node)
    if state is None:
        raise KbuildError(f"Node {node} is not registered in the API, so it cannot be drained",
                          hint=f"check the kubelet on {node} ({status_command}), then run again")
    if cordoned_by_kbuild(state):
        return True  # an earlier, interrupted run cordoned it
    if state.unschedulable:
        return False
    # The annotation first: a stop right after it still leaves the node known as ours to uncordon.
    _run(conn, kubectl("annotate", "node", node, f"{ANNOTATION}={target}", "--overwrite"),
         f"annotating Node {node}")
    _run(conn, kubectl("cordon", node), f"cordoning Node {node}")
    return True


def drain(conn: Connection, node: str, *, attempts: int = DRAIN_ATTEMPTS, pause: float = DRAIN_PAUSE) -> int:
    """Evict every pod but DaemonSet ones through the eviction API (PodDisruptionBudgets respected);
    retried, since a budget may allow the next eviction only once a replacement pod is ready elsewhere.
    Returns the attempt that succeeded."""
    command = kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                      f"--timeout={DRAIN_TIMEOUT}s")
    last = ""
    for attempt in range(1, attempts + 1):
        result = conn.run(command, timeout=DRAIN_TIMEOUT + 30)
        if result.ok:
            return attempt
        last = (result.err or result.out).strip()[-1500:]
        if attempt < attempts:
            time.sleep(pause)
    raise KbuildError(
        f"draining Node {node} failed {attempts} times (through {conn.target.name}): {last or 'no output'}",
        hint="a PodDisruptionBudget that cannot be met, or a pod no controller manages (kubectl drain refuses to "
             "delete those): resolve it and run the upgrade again; the node stays cordoned meanwhile")


def uncordon(conn: Connection, node: str) -> None:
    _run(conn, kubectl("uncordon", node), f"uncordoning Node {node}")
    _run(conn, kubectl("annotate", "node", node, f"{ANNOTATION}-"), f"unmarking Node {node}")


def kubelet_started(conn: Connection) -> int:
    """When the kubelet on this host started, in seconds since the epoch by the host's own clock."""
    out = _run(conn, start_time_command("kubelet"), "reading the kubelet's "
               f"start time on {conn.target.name}").strip().lstrip("@")
    try:
        return int(out)
    except ValueError:
        raise KbuildError(f"{conn.target.name}: the kubelet is not running (start time {out!r})") from None


def ready_gate(node: str, since: int) -> Gate:
    """The Node is Ready as posted by the kubelet that started at `since`.

    A Ready condition outlives a kubelet restart for up to the node-monitor grace period, so Ready alone
    proves nothing; its lastHeartbeatTime is written by the kubelet with its host's clock, the same clock
    `since` comes from, and a restarted kubelet posts its status at once.
    """
    jsonpath = '{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}'
    get = kubectl("get", "node", node, "-o", f"jsonpath={jsonpath}")
    command = f'set -- $({get}) && [ "$1" = True ] && [ "$(date -d "$2" +%s)" -ge {since} ]'
    return Gate(f"Node {node} Ready", command=command, timeout=READY_TIMEOUT, always=True)
