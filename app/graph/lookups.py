"""The admission webhook's lookups (a pod's node and uid, a node's uid), answered from ``objects``.

The sync workers keep every pod (bound or not) and every node (name and uid)
in ``objects``; nothing else about them is stored.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Connection, Engine, select

from app.admission.lookups import PodRecord
from app.graph.schema import objects
from app.k8s.kinds import NODE, POD


class StoreLookups:
    """``AdmissionLookups`` over the graph store (one indexed lookup each)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def connect(self) -> AbstractContextManager[Connection]:
        """The connection a look-up reads on (``app.graph.standby`` checks a standby's first)."""
        return self.engine.connect()

    def pod(self, namespace: str, name: str) -> PodRecord | None:
        stmt = select(objects.c.uid, objects.c.node_name).where(
            objects.c.kind == POD, objects.c.namespace == namespace, objects.c.name == name
        )
        with self.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        return PodRecord(namespace=namespace, name=name, uid=row.uid, node_name=row.node_name)

    def node_uid(self, name: str) -> str | None:
        stmt = select(objects.c.uid).where(
            objects.c.kind == NODE, objects.c.namespace == "", objects.c.name == name
        )
        with self.connect() as conn:
            uid: str | None = conn.execute(stmt).scalar()
        return uid
