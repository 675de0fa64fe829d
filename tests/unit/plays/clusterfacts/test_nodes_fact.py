"""The Nodes fact against kubectl 1.37's real `get nodes -o json` (Ready, NotReady, Unknown, cordoned), and what
`kbuild status` and the upgrade make of it; a refused connection and garbage are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbuild.engine.session import QueryError
from kbuild.engine.ssh import Result
from kbuild.plays import cluster_status
from kbuild.plays.clusterfacts import nodes as node_facts
from kbuild.plays.clusterfacts.version import Version
from kbuild.plays.upgrade.nodes import cordoned_by_kbuild

RECORDED = Path(__file__).parent / "recorded"


def test_recorded_nodes_with_their_conditions() -> None:
    nodes = node_facts.parse((RECORDED / "kubectl-1.37-get-nodes.json").read_text())
    assert sorted(nodes) == ["m1", "w1", "w2"]
    w1, w2, m1 = nodes["w1"], nodes["w2"], nodes["m1"]
    assert w1.ready and w1.unschedulable and cordoned_by_kbuild(w1) and w1.kubelet == Version(1, 36, 3)
    assert not w2.ready and not w2.unschedulable and not cordoned_by_kbuild(w2) and w2.kubelet_version == "v1.37.2"
    assert not m1.ready  # Ready is Unknown: its kubelet stopped posting
    report = cluster_status.ClusterStatus([], nodes=list(nodes.values()), expected_nodes=["m1", "w1", "w2", "w3"])
    assert report.problems == ["node m1: not Ready", "node w2: not Ready", "node w3: not registered"]


def test_a_refused_connection_is_one_line_with_kubectls_own_words() -> None:
    said = (RECORDED / "kubectl-1.37-get-nodes-refused.txt").read_bytes()
    with pytest.raises(QueryError) as info:
        node_facts.QUERY.read("m1", Result(1, b"", said))
    message = str(info.value)
    assert message.startswith("m1: kubectl get nodes failed (exit 1): ") and "\n" not in message
    assert message.endswith("The connection to the server 127.0.0.80:26999 was refused - did you specify the right "
                            "host or port?")


@pytest.mark.parametrize(("output", "says"), [
    ("error: You must be logged in to the server (Unauthorized)", "no JSON in the output: error: You must be"),
    ('{"kind": "Status", "status": "Failure"}', "the JSON has no 'items'"),
    ('{"items": {"w1": {}}}', "expected a NodeList"),
    ('{"items": [{"metadata": {}}]}', "'name'"),
    ("{\n  \"items\": [\n", 'no JSON in the output: { "items": ['),  # cut short
])
def test_garbage_is_a_clear_error_not_a_crash(output: str, says: str) -> None:
    with pytest.raises(QueryError, match="^m1: unexpected kubectl get nodes output: ") as info:
        node_facts.QUERY.read("m1", Result(0, output.encode(), b""))
    assert says in str(info.value)
