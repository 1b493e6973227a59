"""Files for ``nodeauthz load``, read item by item: every layout kubectl writes, in this process and in a child.

A file streams through the bulk path in batches inside one transaction: a bad item found after
batches were written still leaves the database as it was. Each item's NodeRestriction facts and
the PV-secret closure are written in that same transaction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from app.graph import closure
from app.graph.bulk_load import BulkLoad
from app.graph.closure import rebuild_closure_locked
from app.graph.lookups import StoreLookups
from app.graph.reach import has_path
from app.graph.schema import admission_facts, edges, objects, reach_closure
from app.graph.store import GraphStore
from app.k8s.admission_facts import VIA_PVC, VolumeFact
from app.sync.files import FilePages, LoadError
from tests.builders import node, pod, pv

# In this process, and in a child process (what large files get).
WAYS = {"here": 1 << 40, "child": 0}


def _pods(count: int) -> list[dict]:
    return [
        pod(f"p{i}", "shop", f"n{i % 7}", secrets=(f"s{i}",), configmaps=("kube-root-ca.crt",))
        for i in range(count)
    ]


def _read(path: Path, way: str, batch: int = 3) -> tuple[list[tuple[str, ...]], FilePages]:
    with FilePages(str(path), child_bytes=WAYS[way], batch=batch) as pages:
        rows = [row[:3] for page in pages for row in page.objects]
    return rows, pages


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize(
    "layout",
    [
        "kubectl",  # apiVersion, items, kind, metadata: the List's kind comes after its items
        "apiserver",  # kind, apiVersion, metadata, items
        "array",
    ],
)
def test_every_json_layout_streams_its_items(tmp_path: Path, way: str, layout: str) -> None:
    items = [*_pods(8), node("n1"), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}]
    path = tmp_path / "list.json"
    if layout == "kubectl":
        path.write_text(json.dumps({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}}))
    elif layout == "apiserver":
        path.write_text(json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}))
    else:
        path.write_text(json.dumps(items))
    rows, pages = _read(path, way)
    assert rows == [("pod", "shop", f"p{i}") for i in range(8)] + [("node", "", "n1")]
    assert pages.kinds == {"pod": 8, "node": 1} and pages.skipped == {"Secret": 1}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_bad_input_gives_one_line_naming_the_item(tmp_path: Path, way: str) -> None:
    bad = pod("broken", "shop", "n1")
    bad["spec"]["volumes"] = [{"name": "v", "secret": {"secretName": 7}}]
    cases = {
        "late.json": (
            json.dumps({"items": [*_pods(7), bad], "kind": "List"}),
            "item 7 (Pod broken): spec.volumes[0].secret.secretName: expected string",
        ),
        "notalist.json": (
            json.dumps({"kind": "List", "items": {"item": pod("a")}}),
            "List: items is not a list",
        ),
        "cut.json": (json.dumps({"kind": "List", "items": _pods(5)})[:-400], "malformed JSON"),
        "scalar.json": (
            json.dumps({"kind": "List", "items": [pod("a"), 5]}),
            "item 1: expected an object, got int",
        ),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(LoadError) as raised:
            _read(tmp_path / name, way)
        assert f"{tmp_path / name}: " in str(raised.value) and message in str(raised.value), name


def test_a_single_object_and_yaml_documents(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(pod("solo", "shop", "n1")))
    assert _read(one, "here")[0] == [("pod", "shop", "solo")]
    docs = tmp_path / "docs.yaml"
    docs.write_text(
        "---\n"
        + json.dumps(pod("a", "shop", "n1"))
        + "\n---\n"
        + json.dumps({"kind": "List", "items": _pods(2)})
    )
    assert _read(docs, "here")[0] == [("pod", "shop", "a"), ("pod", "shop", "p0"), ("pod", "shop", "p1")]
    with pytest.raises(LoadError, match="document 2 item 1"):
        docs.write_text(
            "---\n" + json.dumps(pod("a")) + "\n---\n" + json.dumps({"kind": "List", "items": [pod("b"), 3]})
        )
        _read(docs, "here")


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_file_is_all_or_nothing_across_batches(
    tmp_path: Path, store: GraphStore, engine: Engine, way: str
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"items": _pods(20), "kind": "List"}))
    with FilePages(str(good), child_bytes=WAYS[way], batch=3) as pages, BulkLoad(store) as bulk:
        written = sum(bulk.apply_rows(page).written for page in pages)
    assert written == 20 and _count(engine, objects) == 20 and _count(engine, edges) == 60
    assert _count(engine, admission_facts) == 20
    bad = pod("broken", "shop", "n1")
    bad["spec"]["volumes"] = [{"name": "v", "secret": {"secretName": 7}}]
    late = tmp_path / "late.json"
    late.write_text(
        json.dumps({"items": [*_pods(30)[::-1], pod("extra", "shop", "n9"), bad], "kind": "List"})
    )
    with pytest.raises(LoadError):
        with FilePages(str(late), child_bytes=WAYS[way], batch=3) as pages, BulkLoad(store) as bulk:
            for page in pages:  # ten batches are written before the bad item is read
                bulk.apply_rows(page)
    assert _count(engine, objects) == 20 and _count(engine, edges) == 60  # nothing of it committed
    assert _count(engine, admission_facts) == 20


def _load(store: GraphStore, path: Path, way: str) -> None:
    with FilePages(str(path), child_bytes=WAYS[way], batch=3) as pages, BulkLoad(store) as bulk:
        for page in pages:
            bulk.apply_rows(page)


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_loaded_file_stores_what_node_restriction_reads(
    tmp_path: Path, store: GraphStore, engine: Engine, way: str
) -> None:
    token = {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"audience": "vault"}}]}}
    web = pod("web", "shop", "n1", pvcs=("data",), service_account="web-sa", volumes=[token])
    items = [
        *_pods(7),  # fills two batches before the ones that matter
        web,
        {
            "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": "shop", "name": "data"},
            "spec": {"volumeName": "pv-1"},
        },
        pv("pv-1", ("shop", "data")),
        {
            "kind": "CSIDriver",
            "metadata": {"name": "csi.example.com"},
            "spec": {"tokenRequests": [{"audience": "sts"}]},
        },
    ]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    _load(store, path, way)
    lookups = StoreLookups(engine)
    record = lookups.pod("shop", "web")
    assert record is not None
    facts = lookups.pod_facts(record)
    assert facts.service_account == "web-sa"
    assert facts.volumes == (VolumeFact(("vault",)), VolumeFact((), VIA_PVC, "data"))
    assert lookups.pvc_volume_name("shop", "data") == "pv-1"
    assert lookups.pv_csi_driver("pv-1") == "csi.example.com"
    assert lookups.csidriver_audiences("csi.example.com") == ("sts",)
    plain = lookups.pod("shop", "p3")
    assert plain is not None and lookups.pod_facts(plain).service_account == ""  # stored, not missing
    assert _count(engine, admission_facts) == len(items)


def _closure_current(store: GraphStore) -> bool:
    """The stored closure is what a rebuild gives (rebuilt, compared, rolled back)."""
    with store.engine.connect() as conn:
        stored = {(r.source_id, r.node_id) for r in conn.execute(select(reach_closure))}
        rebuild_closure_locked(conn, store.fence())
        rebuilt = {(r.source_id, r.node_id) for r in conn.execute(select(reach_closure))}
        conn.rollback()
    return stored == rebuilt and bool(stored)


@pytest.mark.parametrize("rebuild_above", [closure.REBUILD_ABOVE, 2])  # refreshed, or rebuilt once
@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_load_keeps_the_pv_secret_closure_in_its_transaction(
    tmp_path: Path, store: GraphStore, monkeypatch: pytest.MonkeyPatch, way: str, rebuild_above: int
) -> None:
    monkeypatch.setattr(closure, "REBUILD_ABOVE", rebuild_above)
    volumes = [
        pv(f"v{i}", ("shop", f"c{i}"), csi_secrets={"nodePublishSecretRef": ("csi", f"s{i}")})
        for i in range(4)
    ]

    def pods(shift: int) -> list[dict]:
        return [pod(f"p{i}", "shop", f"n{(i + shift) % 4}", pvcs=(f"c{i}",)) for i in range(4)]

    def reaches(n: int, i: int) -> bool:
        with store.engine.connect() as conn:
            return has_path(conn, f"n{n}", "secret", "csi", f"s{i}").found

    first = tmp_path / "first.json"
    first.write_text(json.dumps({"kind": "List", "items": [*volumes, *pods(0)]}))
    _load(store, first, way)
    assert _closure_current(store)
    assert all(reaches(i, i) and not reaches((i + 1) % 4, i) for i in range(4))
    # Every pod moves to the next node, and a new volume is used on n0: the second load removes
    # edges, and inserts edges from vertices it creates, in batches.
    extra = [
        pv("v4", ("shop", "c4"), csi_secrets={"nodePublishSecretRef": ("csi", "s4")}),
        pod("q", "shop", "n0", pvcs=("c4",)),
    ]
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({"kind": "List", "items": [*pods(1), *extra]}))
    _load(store, moved, way)
    assert _closure_current(store)
    assert all(reaches((i + 1) % 4, i) and not reaches(i, i) for i in range(4))
    assert reaches(0, 4) and not reaches(1, 4)
