"""The admission webhook's lookups, answered from the store; authorization questions go to ``authorizer``.

The sync workers keep every pod (bound or not), node, service account, PVC, PV
and CSIDriver in ``objects`` (name, uid, node), and what NodeRestriction reads
of them beyond that in ``admission_facts`` (``app.graph.admission_facts``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from app.admission.lookups import AccessAnswer, AccessQuestion, PodRecord
from app.graph.admission_facts import FactReader
from app.graph.schema import objects
from app.k8s.kinds import NODE, POD

# Asks the API server's authorizer (a SubjectAccessReview); must not raise: a failure is an answer.
Authorizer = Callable[[AccessQuestion], AccessAnswer]


def no_authorizer(question: AccessQuestion) -> AccessAnswer:
    return AccessAnswer(False, error="no API server is configured for SubjectAccessReviews (--kubeconfig)")


class StoreLookups(FactReader):
    """``AdmissionLookups`` over the graph store (one indexed lookup each)."""

    def __init__(self, engine: Engine, authorizer: Authorizer = no_authorizer) -> None:
        super().__init__(engine)
        self.authorizer = authorizer

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

    def authorize(self, question: AccessQuestion) -> AccessAnswer:
        return self.authorizer(question)
