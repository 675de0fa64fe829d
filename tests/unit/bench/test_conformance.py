"""The conformance bench's counting, from a ginkgo JSON report: only the selected specs count, each failure
carries its explanation, and the table adds up."""

from __future__ import annotations

from bench import conformance


def spec(sig: str, text: str, state: str, conformance_tag: bool = True) -> dict:
    leaf = f"{text}{' [Conformance]' if conformance_tag else ''}"
    return {"LeafNodeType": "It", "ContainerHierarchyTexts": [f"[sig-{sig}] Things"], "LeafNodeText": leaf,
            "State": state, "Failure": {"Message": "boom"} if state == "failed" else {}}


def test_only_selected_specs_count_and_failures_say_why():
    report = [{"SuiteDescription": "Kubernetes e2e suite", "SpecReports": [
        spec("network", "should answer", "passed"),
        spec("node", "should be consumable via the environment", "failed"),
        spec("node", "should not count: not conformance", "failed", conformance_tag=False),
        spec("storage", "should not count: another SIG", "failed"),
        spec("apps", "should run the lifecycle of a Deployment", "skipped"),  # left out: agnhost 2.55
        spec("apps", "should create a PodDisruptionBudget", "passed"),
        {"LeafNodeType": "SynchronizedBeforeSuite", "State": "passed"},
    ]}]
    payload = conformance.summarize(report, 12.34)
    assert (payload["selected"], payload["passed"], payload["failed"], payload["skipped"]) == (3, 2, 1, 0)
    assert payload["per_sig"]["node"] == {"selected": 1, "passed": 0, "failed": 1, "skipped": 0}
    assert payload["per_sig"]["apps"] == {"selected": 1, "passed": 1, "failed": 0, "skipped": 0}
    assert "storage" not in payload["per_sig"]
    [failure] = payload["failures"]
    assert failure["spec"] == "[sig-node] Things should be consumable via the environment [Conformance]"
    assert "Debian reverts busybox commit 9c143ce" in failure["explanation"]
    assert payload["selection"]["left_out"] == conformance.SKIPPED and payload["seconds"] == 12.3
    payload.update(machine={}, version="v1.37.2", ginkgo_version="v2.32.0")
    table = conformance.markdown(payload)
    assert "| **all** | 3 | 2 | 1 | 0 |" in table and "| sig-apps | 1 | 1 | 0 | 0 |" in table and "9c143ce" in table


def test_the_left_out_specs_are_the_ones_the_skip_pattern_drops():
    """Each SKIPPED text is found by the pattern ginkgo gets, and a spec that only shares words is not."""
    import re
    skip = re.compile(conformance.SKIP)
    assert all(skip.search(f"[sig-x] Things {text} [Conformance]") for text in conformance.SKIPPED)
    # The StatefulSet entries name their container: the Deployment and ReplicaSet scale specs stay in.
    assert skip.search("[sig-apps] StatefulSet Basic StatefulSet functionality [StatefulSetBasic] should have a "
                       "working scale subresource [Conformance]")
    assert not skip.search("[sig-apps] Deployment Deployment should have a working scale subresource [Conformance]")
    assert not skip.search("[sig-apps] ReplicaSet Replicaset should have a working scale subresource [Conformance]")
    assert not skip.search("[sig-network] EndpointSlice should create Endpoints and EndpointSlices for Pods "
                           "matching a Service [Conformance]")  # nginx is built now
