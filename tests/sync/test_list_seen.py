"""A re-list deletes exactly the stored objects it did not see, from digests of the keys it saw."""

from __future__ import annotations

import tracemalloc

from app.k8s.kinds import VertexKey
from app.sync.list_seen import ListSeen


def test_unseen_is_the_stored_keys_the_list_did_not_see() -> None:
    seen = ListSeen()
    seen.add([("pod", "ns", "a"), ("pod", "ns", "b")])
    seen.add([VertexKey("pod", "ns", "c")])
    stored = [VertexKey("pod", "ns", n) for n in ("a", "b", "c", "d", "e")]
    assert seen.unseen(stored) == [VertexKey("pod", "ns", "d"), VertexKey("pod", "ns", "e")]
    assert len(seen) == 3


def test_keys_that_join_to_the_same_text_stay_apart() -> None:
    seen = ListSeen()
    seen.add([("pod", "ab", "c")])
    assert seen.unseen([VertexKey("pod", "a", "bc"), VertexKey("pvc", "ab", "c")]) == [
        VertexKey("pod", "a", "bc"),
        VertexKey("pvc", "ab", "c"),
    ]


def test_a_list_of_a_hundred_thousand_keys_stays_small() -> None:
    """~240 bytes a key as tuples of strings (a million pods: ~1 GB in the writer); well under half as digests."""
    keys = [("pod", f"namespace-{i % 3000}", f"pod-name-{i:08d}-abcdefghij") for i in range(100_000)]
    tracemalloc.start()
    try:
        seen = ListSeen()
        for start in range(0, len(keys), 500):
            seen.add(keys[start : start + 500])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held / len(keys) < 100, f"{held / len(keys):.0f} bytes per key"
