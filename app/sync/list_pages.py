"""A list page as the writer needs it: derived rows, facts, and what the list saw. Pure, no I/O.

The same function serves a page parsed in the informer's thread and one parsed
in a child process (``app.sync.list_child``), so both paths write the same rows.
A malformed object is skipped but its key still counts as seen (its stored
version is kept, exactly as a skipped watch event would keep it); what the
writer would have logged about it travels as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.graph.bulk_rows import Key, PageRows, page_rows
from app.graph.derivation import DerivedObject, InvalidObject, derive
from app.k8s.admission_facts import derive_facts
from app.k8s.json_fields import FieldError
from app.k8s.kinds import CLUSTER_SCOPED, VertexKey


@dataclass(frozen=True)
class ListedPage:
    rows: PageRows  # the page's objects, edges and NodeRestriction facts
    seen: list[Key]  # every object key the page held, malformed ones included
    no_facts: list[Key] = field(default_factory=list)  # objects whose facts could not be read
    invalid: int = 0  # malformed objects skipped
    warnings: list[str] = field(default_factory=list)  # what to log about them

    def wire(self) -> tuple[Any, ...]:
        """Plain tuples only (a NamedTuple pickles and unpickles 4x slower)."""
        r = self.rows
        vertices = [(k[0], k[1], k[2]) for k in r.vertices]
        facts = [((k[0], k[1], k[2]), f) for k, f in r.facts]
        body = (r.objects, vertices, r.edges, r.anchors, facts)
        return body, self.seen, self.no_facts, self.invalid, self.warnings

    @classmethod
    def from_wire(cls, wire: tuple[Any, ...]) -> ListedPage:
        body, seen, no_facts, invalid, warnings = wire
        return cls(PageRows(*body), seen, no_facts, invalid, warnings)


def listed_page(resource: str, kind: str, items: list[dict[str, Any]]) -> ListedPage:
    derived: list[DerivedObject] = []
    facts: list[tuple[Key, bytes]] = []
    no_facts: list[Key] = []
    seen: list[Key] = []
    warnings: list[str] = []
    invalid = 0
    for item in items:
        try:
            obj = derive(item, kind)
        except InvalidObject as exc:
            invalid += 1
            key = object_key(kind, item)
            warnings.append(f"{resource}: skipping malformed object {key or '(no name)'}: {exc}")
            if key is not None:
                seen.append((key.kind, key.namespace, key.name))
            continue
        key3 = (obj.kind, obj.namespace, obj.name)
        derived.append(obj)
        seen.append(key3)
        try:
            doc = derive_facts(obj.kind, item)
        except FieldError as exc:
            warnings.append(f"{resource}: {obj.key}: cannot read what NodeRestriction needs: {exc}")
            no_facts.append(key3)
            continue
        if doc is not None:
            facts.append((key3, doc))
    return ListedPage(page_rows(derived, facts), seen, no_facts, invalid, warnings)


def object_key(kind: str, raw: Mapping[str, Any]) -> VertexKey | None:
    """The object's key from its metadata alone, when even that much is readable."""
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    name, namespace = meta.get("name"), meta.get("namespace", "")
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        return None
    return VertexKey(kind, "" if kind in CLUSTER_SCOPED else namespace, name)
