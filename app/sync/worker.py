"""Keeping the persistent graph fresh: informers for each watched resource, committed to the GraphStore.

One informer thread per resource, so a slow or failing resource (a huge pod
re-list, an API group timing out) never delays another's events; the store
is a single-writer handle, so commits are serialised by one lock.

Position: each resource's resourceVersion lives in ``sync_state``, written in
the same transaction as the writes it covers. On start a resource with a
stored position is watched from it (no list: the database already serves the
graph); without one, or after 410, it is listed and reconciled: pages are
applied as they come, then stored objects absent from the list are deleted
in the transaction that records the list's resourceVersion. No live object's
edges are ever removed along the way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from app.graph.admission_facts import FactWriter
from app.graph.bulk_load import bulk_apply, kind_is_empty
from app.graph.bulk_rows import PageRows, split_rows
from app.graph.closure import SUSPEND_ABOVE
from app.graph.derivation import DerivedObject, InvalidObject, derive
from app.graph.explain import graph_totals
from app.graph.fence import LeaseLost
from app.graph.store import GraphStore
from app.graph.write_results import ApplyResult, SyncMark
from app.k8s.admission_facts import FACT_KINDS, derive_facts
from app.k8s.json_fields import FieldError
from app.k8s.kinds import OWNER_KINDS, VertexKey
from app.k8s.watched_resources import CANDIDATES, RESOURCE_NAMES
from app.sync.api_client import KubeApi, ResourceSpec, WatchEvent
from app.sync.freshness import Freshness, LagWindow
from app.sync.informer import Informer, InformerConfig
from app.sync.list_child import ListChildren
from app.sync.list_pages import ListedPage, listed_page, object_key
from app.sync.list_seen import ListSeen
from app.sync.metrics import sync_metrics
from app.telemetry.prometheus import database_errors

log = logging.getLogger(__name__)

APPLY_BATCH = 500  # objects per list transaction
# What the database says about data it will not hold; anything else (connection, lock) is retried.
REFUSED_DATA = (DataError, IntegrityError)
REFUSED_DATA_TYPE = DataError | IntegrityError


class SyncWorker:
    def __init__(
        self,
        store: GraphStore,
        api: KubeApi,
        *,
        resources: Sequence[str] | None = None,
        config: InformerConfig | None = None,
    ) -> None:
        unknown = [r for r in resources or () if r not in CANDIDATES]
        if unknown:
            raise ValueError(f"unknown resources {unknown}; expected some of {', '.join(RESOURCE_NAMES)}")
        self.store = store
        self.api = api
        self.resources: tuple[str, ...] = tuple(resources) if resources else RESOURCE_NAMES
        self.config = config or InformerConfig()
        self.skipped: dict[str, str] = {}  # resource -> why it is not watched
        self.served: list[ResourceSpec] = []
        self._kinds: dict[str, str] = {}
        self._seen: dict[str, ListSeen] = {}
        self._listed: set[str] = set()
        self._fresh: dict[str, bool] = {}  # resource -> its list started with no stored objects
        self._fresh_list: dict[str, bool] = {}  # ... and keeps that answer for the whole list
        self._current: set[str] = set()  # resources whose sync mark this worker has written
        self.set_aside = 0  # objects the database refused (see unstored_objects)
        self._discovered = False
        self._write_lock = threading.Lock()
        self._lost: str | None = None  # why the lease was lost (the message only: no frames kept)
        self._lags = LagWindow()
        self.metrics = sync_metrics()
        self.object_counts: dict[str, int] = {}  # the running counts behind nodeauthz_objects/_edges
        self.edge_count = 0
        # NodeRestriction's facts, committed before the graph write that covers the same events.
        self.facts = FactWriter(store.engine, fence=store.fence)

    # -- state for callers ---------------------------------------------------------------------------

    @property
    def initial_sync_done(self) -> bool:
        """Every served resource has been listed (and reconciled) at least once by this process."""
        return self._discovered and all(s.name in self._listed for s in self.served)

    @property
    def listed(self) -> frozenset[str]:
        return frozenset(self._listed)

    def freshness(self) -> Freshness:
        return self._lags.freshness()

    # -- running -------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set; raises LeaseLost (after stopping every informer) if the fence fails."""
        if not self._discover(stop):
            return
        self._start_counts()
        halt = threading.Event()
        failures: list[BaseException] = []
        children = ListChildren(self.config.list_children, min_items=self.config.list_child_min_items)
        informers = [
            Informer(
                self.api,
                spec,
                self,
                resource_version=self._resume_from(spec),
                config=self.config,
                fatal=(LeaseLost,),
                children=children,
            )
            for spec in self.served
        ]
        for informer in informers:
            if informer.resource_version:
                log.info(
                    "%s: resuming the watch from stored resourceVersion %s",
                    informer.spec.name,
                    informer.resource_version,
                )

        def run_one(informer: Informer) -> None:
            try:
                informer.run(halt)
            except BaseException as exc:  # noqa: BLE001 - re-raised by run() in the caller's thread
                failures.append(exc)
                halt.set()

        threads = [
            threading.Thread(target=run_one, args=(i,), name=f"informer-{i.spec.name}", daemon=True)
            for i in informers
        ]
        for thread in threads:
            thread.start()
        try:
            while not stop.is_set() and not halt.is_set():
                stop.wait(self.config.poll)
        finally:
            halt.set()
            for informer in informers:
                informer.interrupt()
            for thread in threads:
                thread.join(timeout=10.0)
        if failures:
            raise failures[0]

    def _resume_from(self, spec: ResourceSpec) -> str | None:
        """The stored position, unless this resource has facts no complete list has filled yet."""
        position = self.store.resource_version(spec.name)
        if position and spec.kind in FACT_KINDS and not self.facts.listed(spec.name):
            log.info("%s: re-listing once to fill NodeRestriction's facts", spec.name)
            return None
        return position

    def _discover(self, stop: threading.Event) -> bool:
        attempt = 0
        while not stop.is_set():
            try:
                self.served, self.skipped = self.api.discover(self.resources)
                break
            except Exception as exc:  # noqa: BLE001 - an unreachable API is retried, not fatal
                attempt += 1
                delay = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1))
                log.warning("API discovery failed (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
        else:
            return False
        for name, why in self.skipped.items():
            log.warning("%s: skipped, %s", name, why)
        for spec in self.served:
            self._kinds[spec.name] = spec.kind
            log.info("%s: watching %s", spec.name, spec.path)
        self._discovered = True
        return True

    # -- the sink (called from informer threads) ----------------------------------------------------

    def list_started(self, resource: str) -> None:
        self._seen[resource] = ListSeen()
        # An initial list into a kind with no stored objects: the bulk path need not look any up.
        self._fresh[resource] = kind_is_empty(self.store, self._kinds[resource])
        self._fresh_list[resource] = self._fresh[resource]  # (_fresh turns False if a page falls back)

    def list_page(self, resource: str, items: list[dict[str, Any]]) -> None:
        self.list_rows(resource, listed_page(resource, self._kinds[resource], items))

    def list_rows(self, resource: str, page: ListedPage) -> None:
        for warning in page.warnings:
            log.warning("%s", warning)
        if page.invalid:
            self.metrics.skipped.labels(self._kinds[resource], "invalid").inc(page.invalid)
        # A malformed object's key counts as seen: its stored version is kept, as a skipped watch
        # event would keep it.
        self._seen[resource].add(page.seen)
        if self._fresh_list[resource] and len(self._seen[resource]) > SUSPEND_ABOVE:
            self.store.suspend_closure(resource)  # rebuilt once, in list_finished's transaction
        with self._writing():
            self.facts.write(page.rows.facts, page.no_facts)  # before the graph rows (see events)
            self._apply_page(resource, replace(page.rows, facts=[]))

    def list_finished(self, resource: str, resource_version: str) -> None:
        kind = self._kinds[resource]
        with self._writing():
            seen = self._seen.pop(resource, ListSeen())
            stale = seen.unseen(self.store.stream_owned_keys(kind))
            mark = SyncMark(resource, resource_version)
            self.store.resume_closure(resource)
            self._count(self.store.delete(sorted(stale), mark=mark))
            # After the objects: a reader never sees a stored object without its facts.
            stale_facts = seen.unseen(self.facts.stream_stored_keys(kind))
            self.facts.write((), sorted(stale_facts), listed=(resource, resource_version))
        if stale:
            log.info("%s: re-list removed %d objects deleted meanwhile", resource, len(stale))
        self._listed.add(resource)
        self._current.add(resource)

    def events(self, resource: str, events: list[WatchEvent], resource_version: str) -> None:
        kind = self._kinds[resource]
        ops: dict[VertexKey, DerivedObject | None] = {}  # the last event per object wins
        raw: dict[VertexKey, Mapping[str, Any]] = {}
        for event in events:
            obj = self._derive(resource, kind, event.object)
            if event.type == "DELETED":
                key = obj.key if obj is not None else object_key(kind, event.object)
                if key is not None:
                    ops[key] = None
            elif obj is not None and event.type in ("ADDED", "MODIFIED"):
                ops[obj.key] = obj
                raw[obj.key] = event.object
        upserts = [o for o in ops.values() if o is not None]
        deletes = [k for k, o in ops.items() if o is None]
        facts: list[tuple[VertexKey, bytes]] = []
        no_facts: list[VertexKey] = []
        for obj in upserts:
            self._facts_of(resource, obj, raw[obj.key], facts, no_facts)
        mark = SyncMark(resource, resource_version)
        with self._writing():
            # Facts before the objects they describe, and removed after them: a reader that finds an
            # object finds its facts (a crash in between leaves unread rows the next re-list drops).
            self.facts.write(facts, no_facts)
            if upserts:
                self._apply(resource, upserts, mark=None if deletes else mark)
            if deletes:
                self._count(self.store.delete(deletes, mark=mark))
            if not upserts and not deletes:
                self.store.mark(mark)
        self._current.add(resource)
        now = time.monotonic()
        if events:
            lags = [now - e.arrived for e in events]
            self._lags.extend(lags)
            histogram = self.metrics.lag.labels(resource)
            for lag in lags:
                histogram.observe(lag)
        if deletes:  # after the objects they describe (the graph's commit is what the lag measures)
            with self._writing():
                self.facts.write((), deletes)

    def _start_counts(self) -> None:
        """One COUNT when this worker starts writing; from then on, each commit's changes."""
        with self.store.engine.connect() as conn:
            counts, self.edge_count = graph_totals(conn)
        self.object_counts = {kind: counts.get(kind, 0) for kind in OWNER_KINDS} | counts
        self._publish_counts()

    def _count(self, result: ApplyResult) -> None:
        """Fold a committed write into the running counts (called under the write lock)."""
        for kind, delta in result.object_delta.items():
            self.object_counts[kind] = self.object_counts.get(kind, 0) + delta
        self.edge_count += result.edge_delta
        self._publish_counts()

    def _publish_counts(self) -> None:
        for kind, count in self.object_counts.items():
            self.metrics.objects.labels(kind).set(count)
        self.metrics.edges.set(self.edge_count)

    def _apply_page(self, resource: str, page: PageRows) -> None:
        """A list page through the bulk path, one transaction; if the database refuses it, object by
        object, setting aside what it refuses (as ``_apply`` does for events)."""
        if not page.objects:  # nothing to write: no transaction (an empty list is one empty page)
            return
        try:
            self._count(bulk_apply(self.store, page, assume_new=self._fresh.get(resource, False)))
            return
        except REFUSED_DATA:
            self._fresh[resource] = False
        for one in split_rows(page):
            try:
                self._count(bulk_apply(self.store, one))
            except REFUSED_DATA as exc:
                self._set_aside(resource, one.objects[0], exc)

    def _apply(self, resource: str, items: list[DerivedObject], *, mark: SyncMark | None = None) -> None:
        """Apply a batch; an object the database refuses is set aside so it cannot block the rest.

        Only the database's verdict on the data (a value too long, a constraint) sets an object
        aside; a connection or lock failure propagates and the informer retries the whole batch.
        """
        try:
            self._count(self.store.apply(items, mark=mark))
            return
        except REFUSED_DATA:
            pass
        for obj in items:  # find the ones it refuses
            try:
                self._count(self.store.apply([obj]))
            except REFUSED_DATA as exc:
                self._set_aside(
                    resource, (obj.kind, obj.namespace, obj.name, obj.uid, obj.resource_version), exc
                )
        if mark is not None:
            self.store.mark(mark)

    def _set_aside(self, resource: str, row: tuple[Any, ...], exc: REFUSED_DATA_TYPE) -> None:
        """The database refuses this object (kind, namespace, name, uid, resourceVersion, ...)."""
        key, reason = VertexKey(row[0], row[1], row[2]), _first_line(exc.orig or exc)
        log.error("%s: cannot store %s (set aside, access it grants is removed): %s", resource, key, reason)
        self._count(self.store.set_aside(key, row[4], reason))
        self.set_aside += 1
        self.metrics.skipped.labels(key.kind, "refused").inc()

    def watch_established(self, resource: str, resource_version: str) -> None:
        # A writer that resumed from a stored position is current once its watch is open: say so
        # now (same position, this writer's fence), not at the next event or bookmark, which for an
        # idle resource may be a minute away (readiness waits for this writer's marks).
        if resource in self._current:
            return
        with self._writing():
            self.store.mark(SyncMark(resource, resource_version))
        self._current.add(resource)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time; after a lost lease, no writer at all (every later call fails fast)."""
        with self._write_lock:
            if self._lost is not None:
                raise LeaseLost(self._lost)
            try:
                yield
            except LeaseLost as exc:
                self._lost = str(exc)
                raise
            except SQLAlchemyError:
                database_errors().labels("sync_write").inc()
                raise

    def _facts_of(
        self,
        resource: str,
        obj: DerivedObject,
        raw: Mapping[str, Any],
        facts: list[tuple[VertexKey, bytes]],
        no_facts: list[VertexKey],
    ) -> None:
        """Add ``obj``'s NodeRestriction facts to ``facts``; unreadable ones go to ``no_facts`` (dropped:
        a lookup of the object then refuses, rather than answer from an older version's facts)."""
        try:
            doc = derive_facts(obj.kind, raw)
        except FieldError as exc:
            log.warning("%s: %s: cannot read what NodeRestriction needs: %s", resource, obj.key, exc)
            no_facts.append(obj.key)
            return
        if doc is not None:
            facts.append((obj.key, doc))

    def _derive(self, resource: str, kind: str, raw: Mapping[str, Any]) -> DerivedObject | None:
        try:
            return derive(raw, kind)
        except InvalidObject as exc:
            self.metrics.skipped.labels(kind, "invalid").inc()
            key = object_key(kind, raw)
            log.warning("%s: skipping malformed object %s: %s", resource, key or "(no name)", exc)
            return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
