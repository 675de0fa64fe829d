"""The hostile corpus: no inventory, however malformed or malicious, crashes or hangs kbuild, and every
rejection names the key path (or, for a file that is no inventory at all, the file)."""

from __future__ import annotations

from tests.unit.inventory.hostile_corpus import cases, run_all


def test_the_corpus_is_large_and_varied() -> None:
    names = [c.name for c in cases()]
    assert len(names) > 1000 and len(set(names)) == len(names)
    for kind in ("type ", "inject ", "recursive alias", "billion laughs", "deep ", "tag ", "utf-16", "a FIFO",
                 "/dev/zero", "service_cidr fd00::/128", "address ::ffff:", "host name 007", "huge ssh.host"):
        assert any(n.startswith(kind) for n in names), kind


def test_no_crash_no_hang_and_every_rejection_located() -> None:
    counts, examples = run_all()
    print("hostile corpus:", dict(sorted(counts.items())))  # shown with -s; the figures go in the notes
    bad = {kind: examples.get(kind, [])[:5] for kind in ("crash", "hang", "unlocated") if counts[kind]}
    assert not bad, bad
    assert counts["clean"] > counts["accepted"]
