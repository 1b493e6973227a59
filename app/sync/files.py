"""Reading Kubernetes objects from files, as ``kubectl get -o json|yaml`` writes them, item by item.

A file is a JSON document (a ``List``/``*List``, an array, or a single object) or
YAML (several ``---`` documents). Nothing is held whole: a JSON List's items are
parsed one at a time (ijson) and YAML one document at a time, and handed out as
batches of derived objects with their NodeRestriction facts, so memory stays
bounded by a batch, not by the file (the 150,000-pod List took 2.7 GB parsed
whole). A malformed item raises LoadError naming the file and item; the caller
writes a file, facts and graph rows, in one transaction, so nothing of a file
with a bad item is applied.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import ijson
import orjson
import yaml

from app.graph.admission_facts import FactWriter
from app.graph.bulk_rows import PageRows, page_rows
from app.graph.derivation import DerivedObject, InvalidObject, derive, owner_kind
from app.graph.store import GraphStore
from app.graph.write_results import ApplyResult
from app.k8s.admission_facts import derive_facts
from app.k8s.json_fields import FieldError
from app.k8s.kinds import VertexKey
from app.sync.row_process import ChildRows

BATCH = 2_000  # derived objects per batch handed to the writer
CHILD_BYTES = 8 << 20  # files from this size are parsed in a second process (it starts in ~0.3 s)
SPOOL_BYTES = 16 << 20  # stdin beyond this is spooled to a temporary file, not memory

# An object and what NodeRestriction reads of it (app.k8s.admission_facts; None: a kind without facts).
Loaded = tuple[DerivedObject, bytes | None]


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


class FileStream:
    """The derived objects of one file and their facts, in batches; ``skipped`` counts unused kinds seen so far."""

    def __init__(self, source: str, batch: int = BATCH, *, path: str | None = None) -> None:
        """``path``: where to read ``source`` from (stdin already saved to a file)."""
        self.source = source
        self.batch = batch
        self.skipped: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self._fp = _open(source) if path is None else _open_file(source, path)

    def close(self) -> None:
        self._fp.close()

    def __enter__(self) -> FileStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self) -> Iterator[list[Loaded]]:
        # Many small objects: the cyclic GC would rescan them over and over (JSON holds no cycles).
        gc.disable()
        try:
            pending: list[Loaded] = []
            for label, item in _items(self.source, self._fp):
                loaded = self._derive(label, item)
                if loaded is not None:
                    pending.append(loaded)
                    if len(pending) >= self.batch:
                        yield pending
                        pending = []
            if pending:
                yield pending
        finally:
            gc.enable()

    def _derive(self, label: str, item: Any) -> Loaded | None:
        if not isinstance(item, Mapping):
            raise LoadError(f"{self.source}: {label}: expected an object, got {type(item).__name__}")
        kind = owner_kind(item)
        if kind is None:
            self.skipped[str(item.get("kind") or "<no kind>")] += 1
            return None
        try:
            obj = derive(item, kind)
            facts = derive_facts(kind, item)
        except (InvalidObject, FieldError) as exc:
            meta = item.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            ident = f" ({item.get('kind')} {name})" if name else ""
            raise LoadError(f"{self.source}: {label}{ident}: {exc}") from exc
        self.kinds[obj.kind] += 1
        return obj, facts


def load_file(source: str) -> LoadedFile:
    """Parse and derive every object in ``source`` at once (small files: the demo's sample)."""
    loaded = LoadedFile(source)
    with FileStream(source) as stream:
        for batch in stream.batches():
            for obj, facts in batch:
                loaded.objects.append(obj)
                if facts is not None:
                    loaded.facts.append((obj.key, facts))
        loaded.skipped = stream.skipped
    return loaded


def _open(source: str) -> IO[bytes]:
    """A seekable binary file: JSON Lists are read in two passes (the List's kind may follow its items)."""
    if source == "-":
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by FileStream
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        return spool
    return _open_file(source, source)


def _open_file(source: str, path: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by FileStream
    except OSError as exc:
        raise LoadError(f"{source}: cannot read: {exc.strerror or exc}") from exc


class FilePages:
    """The page rows of one file, for the bulk path; a large file is parsed in a second process.

    Iterate once; then ``kinds`` and ``skipped`` count what the file held. Raises LoadError
    (before any page if the file cannot be read at all).
    """

    def __init__(self, source: str, *, child_bytes: int = CHILD_BYTES, batch: int = BATCH) -> None:
        self.source = source
        self.batch = batch
        self.kinds: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._saved: str | None = None
        if source == "-":  # the child cannot read this process's stdin: save it (to disk when large)
            with tempfile.NamedTemporaryFile(prefix="nodeauthz-load-", delete=False) as saved:
                shutil.copyfileobj(sys.stdin.buffer, saved)
            self._saved = self.path = saved.name
        else:
            self.path = source
            _open_file(source, source).close()
        self._in_child = os.path.getsize(self.path) >= child_bytes

    def __iter__(self) -> Iterator[PageRows]:
        counts: tuple[Counter[str], Counter[str]]
        if self._in_child:
            rows = ChildRows(file_pages, self.source, self.path, self.batch)
            yield from rows
            counts = rows.result
        else:
            counts = yield from file_pages(self.source, self.path, self.batch)
        self.kinds, self.skipped = counts

    def close(self) -> None:
        if self._saved is not None:
            os.unlink(self._saved)
            self._saved = None

    def __enter__(self) -> FilePages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_pages(
    source: str, path: str, batch: int
) -> Generator[PageRows, None, tuple[Counter[str], Counter[str]]]:
    """The producer (in either process): page rows, then the counts of kinds applied and skipped."""
    with FileStream(source, batch, path=path) as stream:
        for loaded in stream.batches():
            # Plain tuples for the facts' keys, as for the vertices (they may cross a pipe).
            facts = [((o.kind, o.namespace, o.name), f) for o, f in loaded if f is not None]
            yield page_rows([o for o, _ in loaded], facts)
        return stream.kinds, stream.skipped


def _first_byte(fp: IO[bytes]) -> bytes:
    while chunk := fp.read(1 << 16):
        stripped = chunk.lstrip()
        if stripped:
            fp.seek(0)
            return stripped[:1]
    fp.seek(0)
    return b""


def _items(source: str, fp: IO[bytes]) -> Iterator[tuple[str, Any]]:
    """(label, object) for every object, unwrapping Lists; label says where it was."""
    first = _first_byte(fp)
    if first in (b"{", b"["):
        try:
            yield from _json_items(source, fp, first)
        except ijson.JSONError as exc:
            raise LoadError(f"{source}: malformed JSON: {exc}") from exc
        return
    try:
        yield from _yaml_items(source, fp)
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: malformed YAML: {exc}") from exc


def _json_items(source: str, fp: IO[bytes], first: bytes) -> Iterator[tuple[str, Any]]:
    if first == b"[":
        for i, item in enumerate(ijson.items(fp, "item", use_float=True)):
            yield f"item {i}", item
        return
    kind, items_event = _list_head(fp)
    fp.seek(0)
    if items_event is not None and kind is None:
        kind = next(ijson.items(fp, "kind", use_float=True), None)  # kubectl writes it after the items
        fp.seek(0)
    if items_event is None or not (isinstance(kind, str) and kind.endswith("List")):
        try:
            yield "object", orjson.loads(fp.read())  # one object, not a List: small
        except orjson.JSONDecodeError as exc:
            raise LoadError(f"{source}: malformed JSON: {exc}") from exc
        return
    if items_event != "start_array":
        raise LoadError(f"{source}: List: items is not a list")
    for i, item in enumerate(ijson.items(fp, "items.item", use_float=True)):
        yield f"item {i}", item


def _list_head(fp: IO[bytes]) -> tuple[Any, str | None]:
    """The top-level ``kind`` if it comes before ``items``, and the event that opens ``items`` (None: none).

    Reads only up to the items (an API server's List puts kind and metadata first, kubectl's
    apiVersion); a document without items is one object and is read through.
    """
    kind: Any = None
    events = ijson.parse(fp, use_float=True)
    for prefix, event, value in events:
        if prefix == "kind" and event != "map_key":
            kind = value
        elif prefix == "" and event == "map_key" and value == "items":
            return kind, next(events)[1]
    return kind, None


def _yaml_items(source: str, fp: IO[bytes]) -> Iterator[tuple[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = (d for d in yaml.load_all(fp, Loader=loader) if d is not None)
    current = next(documents, None)
    following = next(documents, None)  # one ahead: labels say "document N" only when there are several
    several = following is not None
    d = 0
    while current is not None:
        where = f"document {d + 1}" if several else ""
        yield from _unwrap(source, where, current)
        current, following = following, next(documents, None) if following is not None else None
        d += 1


def _unwrap(source: str, where: str, doc: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, Mapping) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
        items = doc["items"]
        if not isinstance(items, list):
            raise LoadError(f"{source}: {where or 'List'}: items is not a list")
    else:
        yield where or "object", doc
        return
    for i, item in enumerate(items):
        yield f"{where + ' ' if where else ''}item {i}".strip(), item
