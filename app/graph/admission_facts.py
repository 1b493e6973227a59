"""NodeRestriction's facts about watched objects: written beside the graph, read by the admission webhook.

``FactWriter`` is the writer's side: each ``write`` is one fenced transaction (the
same fence as ``GraphStore``), committed *before* the graph write and sync mark
that cover the same events, so a crash in between only makes a restarted writer
apply those events again (writes are idempotent upserts). ``write_locked`` writes
inside a transaction the caller holds (``nodeauthz load``: a whole file's facts
and graph rows in the bulk path's one transaction; on SQLite a second one would
wait on the first's write lock). ``FactReader`` answers
``AdmissionLookups``' questions about pods, service accounts, PVCs, PVs and
CSIDrivers: an object counts as present when ``objects`` has it (as for pods and
nodes today); its facts must then be stored too, else the lookup raises
``FactsMissing`` and the request is refused (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, select, tuple_

from app.admission.lookups import PodRecord
from app.graph.database import stream_keys
from app.graph.dialects import for_engine
from app.graph.fence import FenceSource, check_fence_locked
from app.graph.schema import NAME, admission_fact_lists, admission_facts, objects
from app.k8s.admission_facts import PodFacts, field_from_json, pod_facts_from_json
from app.k8s.kinds import CSIDRIVER, POD, PV, PVC, SERVICEACCOUNT, VertexKey

CHUNK = 500  # keys per IN (...) list
BATCH = 2_000  # rows per executemany

# (kind, namespace, name): a VertexKey, or a plain tuple equal to one (as the bulk path carries keys).
Key = tuple[str, str, str]


class FactsMissing(LookupError):
    """An object is stored without its facts: written by an older writer, not yet re-listed."""


class FactWriter:
    def __init__(self, engine: Engine, *, fence: FenceSource) -> None:
        self.engine = engine
        self.fence = fence
        self._dialect = for_engine(engine)

    def write(
        self,
        upserts: Sequence[tuple[Key, bytes]] = (),
        deletes: Sequence[Key] = (),
        *,
        listed: tuple[str, str] | None = None,
    ) -> None:
        """Store ``upserts``, drop ``deletes``; ``listed=(resource, resourceVersion)`` records a full list."""
        if not upserts and not deletes and listed is None:
            return
        fence = self.fence()  # raises LeaseLost when this process is not the writer
        with self.engine.connect() as conn:
            conn.begin()
            try:
                check_fence_locked(conn, fence)
                self.write_locked(conn, upserts, deletes, listed=listed)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def write_locked(
        self,
        conn: Connection,
        upserts: Sequence[tuple[Key, bytes]] = (),
        deletes: Sequence[Key] = (),
        *,
        listed: tuple[str, str] | None = None,
    ) -> None:
        """As ``write``, on ``conn``, in a transaction the caller opened and fenced (and commits)."""
        # The last version in a batch wins. A key longer than the columns cannot be stored (the store
        # sets such an object aside, so no lookup finds it): skipped, never blocking the batch.
        latest = {k: f.decode() for k, f in upserts if len(k[1]) <= NAME and len(k[2]) <= NAME}
        for start in range(0, len(deletes), CHUNK):
            chunk = [tuple(k) for k in deletes[start : start + CHUNK]]
            cols = tuple_(admission_facts.c.kind, admission_facts.c.namespace, admission_facts.c.name)
            conn.execute(delete(admission_facts).where(cols.in_(chunk)))
        rows = [{"kind": k[0], "namespace": k[1], "name": k[2], "facts": f} for k, f in latest.items()]
        insert = self._dialect.insert(admission_facts)
        stmt = insert.on_conflict_do_update(
            index_elements=["kind", "namespace", "name"], set_={"facts": insert.excluded.facts}
        )
        for start in range(0, len(rows), BATCH):
            conn.execute(stmt, rows[start : start + BATCH])
        if listed is not None:
            resource, resource_version = listed
            values = {"resource_version": resource_version[:64], "listed_at": datetime.now(UTC)}
            mark = self._dialect.insert(admission_fact_lists).values(resource=resource, **values)
            conn.execute(mark.on_conflict_do_update(index_elements=["resource"], set_=values))

    def stored_keys(self, kind: str) -> set[VertexKey]:
        return set(self.stream_stored_keys(kind))

    def stream_stored_keys(self, kind: str) -> Iterator[VertexKey]:
        """The keys of ``kind`` with stored facts, streamed (a re-list reconciles against them)."""
        return stream_keys(self.engine, admission_facts, kind)

    def listed(self, resource: str) -> bool:
        """Whether a complete list of ``resource`` has filled its facts (then a stored position may resume)."""
        stmt = select(admission_fact_lists.c.resource).where(admission_fact_lists.c.resource == resource)
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None


class FactReader:
    """The lookups NodeRestriction's audience and PodCertificateRequest checks make (one indexed read each)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def connect(self) -> AbstractContextManager[Connection]:
        """The connection a look-up reads on (``app.graph.standby`` checks a standby's first)."""
        return self.engine.connect()

    def _read(self, kind: str, namespace: str, name: str) -> tuple[str, str | None] | None:
        """``(uid, facts)`` of a stored object, None when ``objects`` has no such object."""
        stmt = (
            select(objects.c.uid, admission_facts.c.facts)
            .select_from(
                objects.outerjoin(
                    admission_facts,
                    (admission_facts.c.kind == objects.c.kind)
                    & (admission_facts.c.namespace == objects.c.namespace)
                    & (admission_facts.c.name == objects.c.name),
                )
            )
            .where(objects.c.kind == kind, objects.c.namespace == namespace, objects.c.name == name)
        )
        with self.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (row.uid, row.facts)

    def _facts(self, kind: str, namespace: str, name: str) -> str | None:
        found = self._read(kind, namespace, name)
        if found is None:
            return None
        if found[1] is None:
            where = f"{namespace}/{name}" if namespace else name
            raise FactsMissing(
                f"{kind} {where} is stored without what NodeRestriction reads of it "
                "(the writer has not re-listed it at this version yet)"
            )
        return found[1]

    def pod_facts(self, record: PodRecord) -> PodFacts:
        facts = self._facts(POD, record.namespace, record.name)
        if facts is None:  # deleted since the caller read the pod
            raise FactsMissing(f"pod {record.namespace}/{record.name} is no longer stored")
        return pod_facts_from_json(facts)

    def service_account_uid(self, namespace: str, name: str) -> str | None:
        found = self._read(SERVICEACCOUNT, namespace, name)
        return None if found is None else found[0]

    def pvc_volume_name(self, namespace: str, name: str) -> str | None:
        facts = self._facts(PVC, namespace, name)
        return None if facts is None else str(field_from_json(facts, "volumeName"))

    def pv_csi_driver(self, name: str) -> str | None:
        facts = self._facts(PV, "", name)
        return None if facts is None else str(field_from_json(facts, "driver"))

    def csidriver_audiences(self, name: str) -> tuple[str, ...] | None:
        facts = self._facts(CSIDRIVER, "", name)
        return None if facts is None else tuple(str(a) for a in field_from_json(facts, "audiences"))
