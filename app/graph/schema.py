"""The graph schema, defined once; alembic revisions in ``migrations/`` create it.

Reading it with plain SQL:

- ``vertices``: one row per (kind, namespace, name) that some edge touches.
- ``edges``: ``from_id -> to_id``, always pointing toward a node. ``node_id`` is
  the node the edge leads to (upstream's destination edge) or NULL for plain
  edges (secret -> pv, pv -> pvc). ``owner_id`` is the watched object that
  declared the edge; an object's edges are replaced or removed as a unit.
- ``objects``: the watched objects (pods, PVs, VolumeAttachments,
  ResourceSlices, PodCertificateRequests, nodes) with uid, resourceVersion and
  the node they are bound to. ``fingerprint`` digests the derived edge set so
  an update that changes nothing is not rewritten.
- ``sync_state``: per watched resource, the resourceVersion the graph reflects.
- ``unstored_objects``: watched objects the database refused, set aside (see ``nodeauthz stats``).
- ``schema_window``: the oldest code revision that may serve on this schema (expand/contract).
- ``writer_lease``: which replica may write, fenced by ``epoch``.
- ``admission_facts``: what NodeRestriction reads of a watched pod, PV, PVC or CSIDriver beyond
  ``objects`` (``app.k8s.admission_facts``: service account, mirror flag, token audiences and the CSI
  drivers of pod volumes, a PVC's volume, a PV's driver, a CSIDriver's token audiences), as JSON.
- ``admission_fact_lists``: per watched resource, that a complete list has filled ``admission_facts``
  (a writer of an older version kept none: the first writer at this version re-lists once).
- ``reach_closure``: what a walk over plain edges implies, stored at write time
  (``app.graph.closure``): ``(source_id, node_id)`` for every node a vertex with
  plain out-edges (a PV's secret, a PV) reaches through them; ``node_id`` 0 marks a
  walk cut at the depth bound. ``reach_closure_state`` says which writer term
  (lease, holder, epoch) keeps it: readers trust the rows only while that term holds the lease.
- ``denials``: every no-opinion answered for a node, aggregated by (node, verb,
  resource, subresource, namespace, name, reason) with first/last seen and a
  count; written by every replica's webhook (``app.graph.denials``), read by
  ``nodeauthz denials``. ``key`` digests the seven columns.

No secret or configmap contents are stored anywhere: only names.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

NAME = 253  # Kubernetes DNS-subdomain limit for names and namespaces
# Vertex names include derived ones: an ephemeral volume's claim is ``<pod>-<volume>`` (253 + 1 + 63).
VERTEX_NAME = 512
KIND = 32
# Integer PKs: SQLite needs exactly INTEGER for rowid aliasing; PostgreSQL gets BIGINT.
ID = BigInteger().with_variant(Integer(), "sqlite")

vertices = Table(
    "vertices",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("kind", String(KIND), nullable=False),
    Column("namespace", String(NAME), nullable=False),
    Column("name", String(VERTEX_NAME), nullable=False),
    UniqueConstraint("kind", "namespace", "name"),
)

objects = Table(
    "objects",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("kind", String(KIND), nullable=False),
    Column("namespace", String(NAME), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("uid", String(64), nullable=False),
    Column("resource_version", String(64), nullable=False),
    Column("node_name", String(NAME), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    UniqueConstraint("kind", "namespace", "name"),
)

edges = Table(
    "edges",
    metadata,
    Column("owner_id", ID, ForeignKey("objects.id"), primary_key=True),
    Column("from_id", ID, ForeignKey("vertices.id"), primary_key=True),
    Column("to_id", ID, ForeignKey("vertices.id"), primary_key=True),
    # No foreign key: nothing looks edges up by node_id alone, so PostgreSQL
    # would scan the table to check one on every vertex clean-up.
    Column("node_id", ID, nullable=True),
    # The check's walk: "edges out of X that lead to node N (or plain)" is one probe.
    Index(None, "from_id", "node_id", "to_id"),
    # The reverse walk (what does this vertex receive from?) and vertex clean-up.
    Index(None, "to_id", "from_id"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("resource", String(128), primary_key=True),
    Column("resource_version", String(64), nullable=False),
    Column("writer", String(NAME), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("synced_at", DateTime(timezone=True), nullable=False),
)

# Watched objects the database refused (set aside so they never block the objects after them).
unstored_objects = Table(
    "unstored_objects",
    metadata,
    Column("kind", String(KIND), primary_key=True),
    Column("namespace", String(NAME), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("resource_version", String(64), nullable=False),
    Column("reason", String(1024), nullable=False),
    Column("set_aside_at", DateTime(timezone=True), nullable=False),
)

# Which code may serve on this schema (one row): ``serves_from`` is the oldest code revision that
# can, i.e. the newest *contract* revision applied. Written by migrations/env.py after every upgrade,
# read by older code that does not know the newer revisions' names (README "Upgrading").
schema_window = Table(
    "schema_window",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("serves_from", String(32), nullable=False),
    Column("head", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

writer_lease = Table(
    "writer_lease",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(NAME), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Revision 0004: NodeRestriction's facts about watched objects, beside ``objects`` (same key).
admission_facts = Table(
    "admission_facts",
    metadata,
    Column("kind", String(KIND), primary_key=True),
    Column("namespace", String(NAME), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("facts", Text, nullable=False),
)

admission_fact_lists = Table(
    "admission_fact_lists",
    metadata,
    Column("resource", String(128), primary_key=True),
    Column("resource_version", String(64), nullable=False),
    Column("listed_at", DateTime(timezone=True), nullable=False),
)

# The write-time closure of plain-edge walks (app.graph.closure). No foreign keys: rows are
# recomputed whenever the edges they come from change, and ids are never followed from here.
reach_closure = Table(
    "reach_closure",
    metadata,
    Column("source_id", ID, primary_key=True),
    Column("node_id", ID, primary_key=True),
)

# One row: the writer term under which ``reach_closure`` is complete and current.
reach_closure_state = Table(
    "reach_closure_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("lease", String(64), nullable=False),
    Column("holder", String(NAME), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("rebuilt_at", DateTime(timezone=True), nullable=False),
)

REASON = 512

denials = Table(
    "denials",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("node", String(NAME), nullable=False),
    Column("verb", String(KIND), nullable=False),
    Column("resource", String(NAME), nullable=False),
    Column("subresource", String(NAME), nullable=False),
    Column("namespace", String(NAME), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("reason", String(REASON), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    # Retention deletes and ``--since`` read by last_seen.
    Index(None, "last_seen"),
)
