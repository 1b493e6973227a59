"""The rows a batch of derived objects implies, in a compact form for the bulk path. Pure, no I/O.

A page is its object rows, the distinct vertices its edges touch, and each edge
as four small integers: the index of its owner in ``objects`` and of its source,
target and node (-1: a plain edge) in ``vertices``. The writer resolves each
distinct vertex to an id once per page (measured: resolving every edge's three
keys inside the INSERT cost SQLite 3-4x the insert itself), and the form is
cheap to build, to hold, and to pickle across a process boundary. Generic over
what an object implies: every edge of ``DerivedObject.edges`` (and so any derived
edge added there later) becomes one row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.graph.derivation import DerivedObject
from app.k8s.kinds import NODE, VertexKey

if TYPE_CHECKING:  # only the type: a list child process (app.sync.list_child) never loads SQLAlchemy
    from app.graph.dialects.base import ObjectRow

Key = tuple[str, str, str]  # kind, namespace, name (a VertexKey, or a plain tuple equal to one)
IndexedEdge = tuple[int, int, int, int]  # owner index, source index, target index, node index (-1: none)
FactRow = tuple[Key, bytes]  # an object's key and its facts document (app.k8s.admission_facts)


@dataclass(frozen=True)
class PageRows:
    objects: list[ObjectRow]  # kind, namespace, name, uid, resource_version, node_name, fingerprint
    vertices: list[Key]  # plain tuples on the wire: a NamedTuple pickles and unpickles 4x slower
    edges: list[IndexedEdge]
    # (object index, vertex index) of the node each object with edges is bound to (GraphStore keeps
    # that vertex too, even when no edge of the object names it).
    anchors: list[tuple[int, int]]
    # NodeRestriction's facts of the page's objects (``nodeauthz load`` carries them here, written in
    # the same transaction; the sync worker writes its own first, in their own).
    facts: list[FactRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.objects)


def object_key(row: ObjectRow) -> VertexKey:
    return VertexKey(row[0], row[1], row[2])


def page_rows(items: Iterable[DerivedObject], facts: list[FactRow] | None = None) -> PageRows:
    latest: dict[Key, DerivedObject] = {}
    for obj in items:
        # The last version of an object in a batch wins, as in GraphStore.apply. (Plain attributes,
        # not ``obj.key``: a cached_property takes a lock on every first access.)
        latest[(obj.kind, obj.namespace, obj.name)] = obj
    objects: list[ObjectRow] = []
    index: dict[Key, int] = {}
    edges: list[IndexedEdge] = []
    anchors: list[tuple[int, int]] = []
    add = index.setdefault
    for i, obj in enumerate(latest.values()):
        objects.append(
            (obj.kind, obj.namespace, obj.name, obj.uid, obj.resource_version, obj.node_name, obj.fingerprint)
        )
        if not obj.edges:
            continue
        if obj.node_name:
            anchors.append((i, add((NODE, "", obj.node_name), len(index))))
        # One row per (from, to) for this owner, the last node winning (the edges' primary key).
        rows: dict[tuple[int, int], int] = {}
        for source, target, node in [(e.source, e.target, e.node) for e in obj.edges]:
            src = add(source, len(index))
            dst = add(target, len(index))
            rows[(src, dst)] = -1 if node is None else add((NODE, "", node), len(index))
        edges.extend((i, src, dst, n) for (src, dst), n in rows.items())
    return PageRows(objects, list(index), edges, anchors, facts or [])


def split_rows(page: PageRows) -> list[PageRows]:
    """One PageRows per object of ``page`` (each sharing its vertex list), to find the one a database refuses."""
    edges: list[list[IndexedEdge]] = [[] for _ in page.objects]
    for o, s, t, n in page.edges:
        edges[o].append((0, s, t, n))
    anchors: list[list[tuple[int, int]]] = [[] for _ in page.objects]
    for o, v in page.anchors:
        anchors[o].append((0, v))
    facts = dict(page.facts)
    return [
        PageRows(
            [row], page.vertices, edges[i], anchors[i], [(k, facts[k])] if (k := row[:3]) in facts else []
        )
        for i, row in enumerate(page.objects)
    ]
