"""Applying and removing objects: replacement, removal, idempotence, ownership (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, text

from app.graph import bulk_load
from app.graph.bulk_load import BulkLoad
from app.graph.derivation import derive
from app.graph.reach import has_path
from app.graph.schema import edges, objects, vertices
from app.graph.store import GraphStore
from app.graph.write_results import SyncMark
from app.k8s.kinds import VertexKey
from tests.builders import node, pod, pv, resource_slice, volume_attachment
from tests.writers import fenced


def reach(engine: Engine, node_name: str, kind: str, namespace: str, name: str) -> bool:
    with engine.connect() as conn:
        return has_path(conn, node_name, kind, namespace, name).found


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(vertices)).scalar_one(),
            conn.execute(select(func.count()).select_from(edges)).scalar_one(),
            conn.execute(select(func.count()).select_from(objects)).scalar_one(),
        )


def apply(store: GraphStore, *raw: dict) -> None:
    store.apply([derive(o) for o in raw])


def test_pod_grants_its_node_and_no_other(store: GraphStore, engine: Engine) -> None:
    apply(store, pod("web", "shop", "n1", secrets=("tls",), configmaps=("cfg",), service_account="web-sa"))
    assert reach(engine, "n1", "secret", "shop", "tls")
    assert reach(engine, "n1", "configmap", "shop", "cfg")
    assert reach(engine, "n1", "serviceaccount", "shop", "web-sa")
    assert reach(engine, "n1", "pod", "shop", "web")
    assert not reach(engine, "n2", "secret", "shop", "tls")
    assert not reach(engine, "n1", "secret", "other", "tls")  # namespaces matter


def test_three_hop_pv_secret(store: GraphStore, engine: Engine) -> None:
    apply(
        store,
        pod("db", "shop", "n1", pvcs=("data",)),
        pv(
            "pv-data",
            ("shop", "data"),
            csi_secrets={
                "nodePublishSecretRef": ("csi", "publish"),
                "controllerPublishSecretRef": ("csi", "controller"),
            },
        ),
    )
    assert reach(engine, "n1", "secret", "csi", "publish")
    assert reach(engine, "n1", "pv", "", "pv-data")
    assert reach(engine, "n1", "pvc", "shop", "data")
    assert not reach(engine, "n2", "secret", "csi", "publish")
    assert not reach(
        engine, "n1", "secret", "csi", "controller"
    )  # controller secrets are not kubelet-visible


def test_applying_twice_changes_nothing(store: GraphStore, engine: Engine) -> None:
    obj = pod("web", "shop", "n1", secrets=("a", "b"), configmaps=("c",))
    first = store.apply([derive(obj)])
    before = counts(engine)
    with engine.connect() as conn:
        ids_before = conn.execute(text("SELECT owner_id, from_id, to_id FROM edges ORDER BY 1, 2, 3")).all()
    second = store.apply([derive(obj)])
    assert (first.written, second.written, second.unchanged) == (1, 0, 1)
    assert counts(engine) == before
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT owner_id, from_id, to_id FROM edges ORDER BY 1, 2, 3")).all()
            == ids_before
        )


def test_status_only_update_records_new_resource_version(store: GraphStore, engine: Engine) -> None:
    apply(store, pod("web", "shop", "n1", secrets=("a",), rv="5"))
    result = store.apply([derive(pod("web", "shop", "n1", secrets=("a",), rv="9", phase="Succeeded"))])
    assert result.unchanged == 1
    with engine.connect() as conn:
        assert conn.execute(select(objects.c.resource_version)).scalar_one() == "9"
    assert reach(engine, "n1", "secret", "shop", "a")  # terminal pods keep their edges


def test_update_replaces_exactly_the_owned_edges(store: GraphStore, engine: Engine) -> None:
    apply(
        store, pod("a", "shop", "n1", secrets=("s1", "shared")), pod("b", "shop", "n1", secrets=("shared",))
    )
    apply(store, pod("a", "shop", "n1", secrets=("s2",)))
    assert not reach(engine, "n1", "secret", "shop", "s1")
    assert reach(engine, "n1", "secret", "shop", "s2")
    assert reach(engine, "n1", "secret", "shop", "shared")  # pod b's edge is untouched
    with engine.connect() as conn:
        names = set(conn.execute(select(vertices.c.name).where(vertices.c.kind == "secret")).scalars())
    assert names == {"s2", "shared"}  # s1's vertex went with its last edge


def test_recreated_pod_on_another_node_moves_access(store: GraphStore, engine: Engine) -> None:
    apply(store, pod("web", "shop", "n1", uid="u1", secrets=("tls",)))
    apply(store, pod("web", "shop", "n2", uid="u2", secrets=("tls",)))
    assert not reach(engine, "n1", "secret", "shop", "tls")
    assert reach(engine, "n2", "secret", "shop", "tls")
    with engine.connect() as conn:
        assert conn.execute(select(vertices.c.name).where(vertices.c.kind == "node")).scalars().all() == [
            "n2"
        ]


def test_delete_removes_owned_edges_and_orphans_only(store: GraphStore, engine: Engine) -> None:
    apply(
        store,
        pod("a", "shop", "n1", secrets=("mine", "shared")),
        pod("b", "shop", "n2", secrets=("shared",)),
        pv("pv1", ("shop", "claim"), csi_secrets={"nodeStageSecretRef": ("csi", "stage")}),
    )
    result = store.delete([VertexKey("pod", "shop", "a")])
    assert result.deleted == 1
    assert not reach(engine, "n1", "secret", "shop", "shared")
    assert reach(engine, "n2", "secret", "shop", "shared")
    with engine.connect() as conn:
        kinds = {(k, n) for k, n in conn.execute(select(vertices.c.kind, vertices.c.name))}
    assert ("secret", "mine") not in kinds and ("node", "n1") not in kinds and ("pod", "a") not in kinds
    assert ("pv", "pv1") in kinds and ("secret", "stage") in kinds  # the PV still owns its edges
    store.delete([VertexKey("pod", "shop", "b"), VertexKey("pv", "", "pv1")])
    assert counts(engine) == (0, 0, 0)


def test_deleting_an_unknown_object_is_a_no_op(store: GraphStore, engine: Engine) -> None:
    apply(store, pod("a", "shop", "n1", secrets=("s",)))
    assert store.delete([VertexKey("pod", "shop", "missing")]).deleted == 0
    assert reach(engine, "n1", "secret", "shop", "s")


def test_unbound_and_mirror_pods(store: GraphStore, engine: Engine) -> None:
    apply(
        store,
        pod("pending", "shop", "", secrets=("s",)),
        pod("static", "kube-system", "n1", mirror=True, secrets=("m",), service_account="sa"),
    )
    assert not reach(engine, "n1", "secret", "shop", "s")
    assert reach(engine, "n1", "pod", "kube-system", "static")  # mirror pods: only pod -> node
    assert not reach(engine, "n1", "secret", "kube-system", "m")
    assert not reach(engine, "n1", "serviceaccount", "kube-system", "sa")
    with engine.connect() as conn:  # the unbound pod keeps a row for admission lookups
        assert conn.execute(select(objects.c.node_name).where(objects.c.name == "pending")).scalar_one() == ""


def test_volume_attachments_slices_and_nodes(store: GraphStore, engine: Engine) -> None:
    apply(store, volume_attachment("va1", "n1"), resource_slice("gpu-n1", "n1"), node("n1"))
    assert reach(engine, "n1", "volumeattachment", "", "va1")
    assert reach(engine, "n1", "resourceslice", "", "gpu-n1")
    assert not reach(engine, "n2", "volumeattachment", "", "va1")
    apply(store, volume_attachment("va1", "n2", rv="2"))  # a moved attachment moves access
    assert not reach(engine, "n1", "volumeattachment", "", "va1")
    assert reach(engine, "n2", "volumeattachment", "", "va1")


def test_last_version_in_a_batch_wins(store: GraphStore, engine: Engine) -> None:
    store.apply(
        [derive(pod("a", "shop", "n1", secrets=("old",))), derive(pod("a", "shop", "n1", secrets=("new",)))]
    )
    assert reach(engine, "n1", "secret", "shop", "new")
    assert not reach(engine, "n1", "secret", "shop", "old")


def test_sync_mark_commits_with_the_writes(store: GraphStore) -> None:
    assert store.resource_version("pods") is None
    store.apply([derive(pod("a", "shop", "n1"))], mark=SyncMark("pods", "42"))
    assert store.resource_version("pods") == "42"
    store.delete([VertexKey("pod", "shop", "a")], mark=SyncMark("pods", "43"))
    assert store.resource_version("pods") == "43"
    assert store.owned_keys("pod") == set()


def test_bulk_apply_of_many_objects_in_one_call(store: GraphStore, engine: Engine) -> None:
    pods = [
        derive(pod(f"p{i}", f"ns{i % 7}", f"n{i % 13}", secrets=(f"s{i}",), configmaps=("kube-root-ca.crt",)))
        for i in range(1200)
    ]  # more than one IN-list chunk
    assert store.apply(pods).written == 1200
    assert reach(engine, "n5", "secret", "ns5", "s5")
    assert reach(engine, "n0", "configmap", "ns0", "kube-root-ca.crt")
    assert not reach(engine, "n1", "secret", "ns5", "s5")
    assert store.apply(pods).unchanged == 1200


def test_concurrent_sqlite_writers_wait_instead_of_failing(
    database_url: str, engine: Engine, store: GraphStore
) -> None:
    """Four writer processes' worth of engines on one file: they queue on the write lock and all succeed."""
    import threading

    from app.graph.database import make_engine

    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL writers are serialised by the writer lease (tests/ha/test_lease.py)")
    errors: list[BaseException] = []
    fence = store.fence()  # the writers share one lease, as threads of one writer process would

    def writer(n: int) -> None:
        own = make_engine(database_url)
        try:
            store = fenced(own, fence)
            for i in range(40):
                store.apply([derive(pod(f"p{n}-{i}", "shop", f"n{n}", secrets=(f"s{n}-{i}", "shared")))])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(reach(engine, f"n{n}", "secret", "shop", f"s{n}-39") for n in range(4))
    assert reach(engine, "n3", "secret", "shop", "shared")


def test_one_bulk_transaction_keeps_the_vertex_cache_bounded(
    store: GraphStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A whole file (a million pods) may be one transaction: the cache of shared vertex ids must not grow
    # with it, and vertices cached before it is dropped must still be found, not inserted twice.
    monkeypatch.setattr(bulk_load, "VERTEX_CACHE_LIMIT", 10)
    with BulkLoad(store, assume_new=True) as bulk:
        for page in range(6):
            bulk.apply(
                derive(
                    pod(f"p{page}-{i}", "shop", f"n{i}", configmaps=("kube-root-ca.crt", f"own-{page}-{i}"))
                )
                for i in range(5)
            )
            assert len(store._vertex_ids) <= 10 + 5 * 3  # the limit, plus one page's node/configmaps
    assert reach(engine, "n4", "configmap", "shop", "kube-root-ca.crt")
    assert reach(engine, "n3", "configmap", "shop", "own-5-3")
    assert not reach(engine, "n2", "configmap", "shop", "own-5-3")
    with engine.connect() as conn:
        root = select(func.count()).where(
            vertices.c.kind == "configmap", vertices.c.name == "kube-root-ca.crt"
        )
        assert conn.execute(root).scalar_one() == 1
