"""The PV-secret closure during a rollout: rows an old writer left stale never allow anything.

Code from before revision 0005 writes edges without touching ``reach_closure``. It writes under
its own lease epoch, so new readers stop trusting the rows the moment it takes the lease, and the
next new writer rebuilds them in its first transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from sqlalchemy import Connection, Engine, delete, select

from app.graph.closure import ClosureKeeper
from app.graph.derivation import derive
from app.graph.fence import Fence
from app.graph.reach import Reach, has_path
from app.graph.readers import open_reader
from app.graph.schema import reach_closure, reach_closure_state, vertices, writer_lease
from app.graph.store import GraphStore
from app.ha.lease import LeaseManager
from app.k8s.kinds import VertexKey
from tests.builders import pod, pv
from tests.writers import TEST_LEASE_SECONDS, fenced


class _BeforeTheClosure(ClosureKeeper):
    """The write path of code older than revision 0005: edges change, the closure is never touched."""

    def touched(self, from_ids: Iterable[int]) -> None:
        pass

    def refresh_locked(self, conn: Connection, fence: Fence) -> None:
        pass


def _writer(
    engine: Engine, holder: str, *, old_code: bool = False, monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[GraphStore, LeaseManager, Fence]:
    manager = LeaseManager(engine, holder=holder, duration=TEST_LEASE_SECONDS)
    if old_code:  # nor does its takeover hand the closure over
        assert monkeypatch is not None
        with monkeypatch.context() as m:
            m.setattr("app.ha.lease.hand_over_locked", lambda *_: False)
            fence = manager.try_acquire()
    else:
        fence = manager.try_acquire()
    assert fence is not None
    store = fenced(engine, fence)
    if old_code:
        store._closure = _BeforeTheClosure()
    return store, manager, fence


def _reach(database_url: str, engine: Engine, node: str, key: VertexKey) -> tuple[Reach, Reach]:
    """The answer through the webhook's reader and through the CLI's check."""

    async def read() -> Reach:
        reader = await open_reader(database_url, pool_size=1)
        try:
            return await reader.reach(node, key.kind, key.namespace, key.name)
        finally:
            await reader.close()

    with engine.connect() as conn:
        offline = has_path(conn, node, key.kind, key.namespace, key.name)
    return asyncio.run(read()), offline


SECRET = VertexKey("secret", "csi", "publish")
VOLUME = pv("vol", ("shop", "data"), csi_secrets={"nodePublishSecretRef": ("csi", "publish")})


def _closure_of(engine: Engine, key: VertexKey) -> set[str]:
    """The nodes the stored closure says ``key`` reaches."""
    source, node = vertices.alias("source"), vertices.alias("node")
    stmt = (
        select(node.c.name)
        .select_from(reach_closure)
        .join(source, source.c.id == reach_closure.c.source_id)
        .join(node, node.c.id == reach_closure.c.node_id)
        .where(source.c.kind == key.kind, source.c.namespace == key.namespace, source.c.name == key.name)
    )
    with engine.connect() as conn:
        return set(conn.execute(stmt).scalars())


def test_rows_an_old_writer_left_stale_are_not_trusted(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, new_lease, new_fence = _writer(engine, "new")
    # "other" keeps node n1 in the graph, so a stale row would name a node that still exists.
    new.apply(
        [derive(VOLUME), derive(pod("db", "shop", "n1", pvcs=("data",))), derive(pod("other", "shop", "n1"))]
    )
    assert _closure_of(engine, SECRET) == {"n1"}  # answered from the closure
    assert all(r.found for r in _reach(database_url, engine, "n1", SECRET))
    new_lease.release(new_fence)

    # The rollout's old writer moves the pod to n2 (deleted, recreated) and leaves the rows alone.
    old, old_lease, old_fence = _writer(engine, "old", old_code=True, monkeypatch=monkeypatch)
    assert old_fence.epoch == new_fence.epoch + 1
    old.delete([VertexKey("pod", "shop", "db")])
    old.apply([derive(pod("db", "shop", "n2", pvcs=("data",)))])
    assert _closure_of(engine, SECRET) == {"n1"}  # stale
    assert not any(r.found for r in _reach(database_url, engine, "n1", SECRET))
    assert all(r.found for r in _reach(database_url, engine, "n2", SECRET))  # by the walk
    old_lease.release(old_fence)

    # The next new writer rebuilds in its first transaction, whatever it writes.
    newer, _, newer_fence = _writer(engine, "newer")
    newer.apply([derive(pod("web", "shop", "n3"))])
    with engine.connect() as conn:
        state = conn.execute(select(reach_closure_state)).one()
    assert (state.holder, state.epoch) == ("newer", newer_fence.epoch)
    assert _closure_of(engine, SECRET) == {"n2"}
    assert not any(r.found for r in _reach(database_url, engine, "n1", SECRET))
    assert all(r.found for r in _reach(database_url, engine, "n2", SECRET))


def _state(engine: Engine) -> tuple[str, int, object] | None:
    with engine.connect() as conn:
        row = conn.execute(select(reach_closure_state)).first()
    return None if row is None else (row.holder, row.epoch, row.rebuilt_at)


def test_a_takeover_hands_the_closure_over_without_a_rebuild(database_url: str, engine: Engine) -> None:
    """A rolling update or failover between current writers: the rows stay trusted throughout, and
    the new writer's first write does not rebuild them (seconds at 150,000 pods, while events wait)."""
    first, first_lease, first_fence = _writer(engine, "first")
    first.apply([derive(VOLUME), derive(pod("db", "shop", "n1", pvcs=("data",)))])
    holder, epoch, rebuilt_at = _state(engine) or ("", 0, None)
    assert (holder, epoch) == ("first", first_fence.epoch)
    first_lease.release(first_fence)

    second, _, second_fence = _writer(engine, "second")
    assert _state(engine) == ("second", second_fence.epoch, rebuilt_at)  # handed over in the takeover
    second.apply([derive(pod("web", "shop", "n2", pvcs=("data",)))])  # the claim now also on n2
    assert _state(engine) == ("second", second_fence.epoch, rebuilt_at)  # kept, not rebuilt
    assert _closure_of(engine, SECRET) == {"n1", "n2"}
    assert all(r.found for r in _reach(database_url, engine, "n2", SECRET))


def test_a_lease_row_made_anew_forgets_the_closure(engine: Engine) -> None:
    """Epochs start again at 1 in a new lease row: a state row from before could name a term that recurs."""
    store, lease, fence = _writer(engine, "w")
    store.apply([derive(VOLUME)])
    assert _state(engine) is not None
    lease.release(fence)
    with engine.begin() as conn:
        conn.execute(delete(writer_lease))  # an operator resets the lease
    again, _, again_fence = _writer(engine, "w")
    assert again_fence.epoch == 1 and _state(engine) is None
    again.apply([derive(pod("web", "shop", "n2"))])
    holder, epoch, _ = _state(engine) or ("", 0, None)
    assert (holder, epoch) == ("w", 1)
