"""What a list saw, kept small: the stored objects it did not see are the ones deleted meanwhile.

A re-list deletes every stored object of its kind that it did not see. Keeping each seen key as a
tuple of three strings cost ~240 bytes (tracemalloc), and the stored keys were loaded beside
them: about 1 GB for a list of a million pods. A 16-byte BLAKE2b digest per key (~75 bytes in a
set) gives the same answer (two keys colliding, about one chance in 10**26 at a million, would keep
one stale object), and the stored keys are streamed past the digests rather than loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from app.graph.bulk_rows import Key
from app.k8s.kinds import VertexKey


def key_digest(key: Key) -> bytes:
    kind, namespace, name = key
    # NUL cannot occur in a Kubernetes name or kind, so the joined form is unambiguous.
    return hashlib.blake2b(f"{kind}\0{namespace}\0{name}".encode(), digest_size=16).digest()


class ListSeen:
    """The keys one list has seen so far, as digests."""

    def __init__(self) -> None:
        self._digests: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, keys: Iterable[Key]) -> None:
        self._digests.update(map(key_digest, keys))

    def unseen(self, stored: Iterable[VertexKey]) -> list[VertexKey]:
        """The stored keys this list did not see, in the order given."""
        digests = self._digests
        return [key for key in stored if key_digest(key) not in digests]
