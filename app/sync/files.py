"""Reading Kubernetes objects from files, as ``kubectl get -o json|yaml`` writes them.

A file is a JSON document (a ``List``/``*List`` or a single object) or YAML
(several ``---`` documents). Everything is parsed and derived before anything
is written, so a malformed item fails the whole file with its name and index.
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.graph.admission_facts import FactWriter
from app.graph.derivation import DerivedObject, InvalidObject, derive, owner_kind
from app.graph.store import GraphStore
from app.graph.write_results import ApplyResult
from app.k8s.admission_facts import derive_facts
from app.k8s.json_fields import FieldError
from app.k8s.kinds import VertexKey


class LoadError(ValueError):
    """A file cannot be loaded; the message names the file and the item."""


@dataclass
class LoadedFile:
    source: str
    objects: list[DerivedObject] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    # What NodeRestriction reads of the objects (app.k8s.admission_facts), stored beside the graph.
    facts: list[tuple[VertexKey, bytes]] = field(default_factory=list)


def apply_loaded(store: GraphStore, loaded: LoadedFile) -> ApplyResult:
    """Write a loaded file: its facts, then its graph rows (as the sync worker orders them)."""
    FactWriter(store.engine, fence=store.fence).write(loaded.facts)
    return store.apply(loaded.objects)


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise LoadError(f"{source}: cannot read: {exc.strerror or exc}") from exc


def _documents(source: str, data: bytes) -> list[Any]:
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            return [orjson.loads(data)]
        except orjson.JSONDecodeError as exc:
            raise LoadError(f"{source}: malformed JSON: {exc}") from exc
    try:
        return [
            d
            for d in yaml.load_all(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            if d is not None
        ]
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: malformed YAML: {exc}") from exc


def _items(source: str, documents: list[Any]) -> Iterator[tuple[str, Any]]:
    """(label, object) for every object, unwrapping Lists; label says where it was."""
    for d, doc in enumerate(documents):
        where = f"document {d + 1}" if len(documents) > 1 else ""
        if isinstance(doc, list):
            items = doc
        elif isinstance(doc, Mapping) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
            items = doc["items"]
            if not isinstance(items, list):
                raise LoadError(f"{source}: {where or 'List'}: items is not a list")
        else:
            yield where or "object", doc
            continue
        for i, item in enumerate(items):
            yield f"{where + ' ' if where else ''}item {i}".strip(), item


def load_file(source: str) -> LoadedFile:
    """Parse and derive every object in ``source``; raise LoadError on the first bad item."""
    # Millions of small, long-lived objects: the cyclic GC would rescan them over and over.
    gc.disable()
    try:
        return _load(source)
    finally:
        gc.enable()


def _load(source: str) -> LoadedFile:
    loaded = LoadedFile(source)
    for label, item in _items(source, _documents(source, _read(source))):
        if not isinstance(item, Mapping):
            raise LoadError(f"{source}: {label}: expected an object, got {type(item).__name__}")
        kind = owner_kind(item)
        if kind is None:
            loaded.skipped[str(item.get("kind") or "<no kind>")] += 1
            continue
        try:
            obj = derive(item, kind)
            facts = derive_facts(kind, item)
        except (InvalidObject, FieldError) as exc:
            meta = item.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            ident = f" ({item.get('kind')} {name})" if name else ""
            raise LoadError(f"{source}: {label}{ident}: {exc}") from exc
        loaded.objects.append(obj)
        if facts is not None:
            loaded.facts.append((obj.key, facts))
    return loaded
