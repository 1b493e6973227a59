"""The benchmark cluster generator: shape, realism, determinism and checks with known answers."""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from benchmarks.generate import PRESETS, generate, main, write_list
from benchmarks.shapes import MAX_NODES, Shape, sample_checks, scale_shape

SMALL = PRESETS["small"]
MIRROR = "kubernetes.io/config.mirror"
Obj = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name)


@pytest.fixture(scope="module")
def small() -> list[Obj]:
    return list(generate(SMALL, 7))


def _pods(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] == "Pod"]


def _is_mirror(pod: Obj) -> bool:
    return MIRROR in pod["metadata"].get("annotations", {})


def _pod_refs(pod: Obj) -> Iterator[Key]:
    """Secrets, configmaps and claims a pod names, written independently of the generator."""
    ns, spec = pod["metadata"]["namespace"], pod["spec"]
    for s in spec.get("imagePullSecrets", []):
        yield ("secret", ns, s["name"])
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                yield ("secret", ns, e["secretRef"]["name"])
            if "configMapRef" in e:
                yield ("configmap", ns, e["configMapRef"]["name"])
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                yield ("secret", ns, ref["secretKeyRef"]["name"])
            if "configMapKeyRef" in ref:
                yield ("configmap", ns, ref["configMapKeyRef"]["name"])
    for v in spec.get("volumes", []):
        if "secret" in v:
            yield ("secret", ns, v["secret"]["secretName"])
        elif "configMap" in v:
            yield ("configmap", ns, v["configMap"]["name"])
        elif "persistentVolumeClaim" in v:
            yield ("pvc", ns, v["persistentVolumeClaim"]["claimName"])
        elif "projected" in v:
            for src in v["projected"]["sources"]:
                if "secret" in src:
                    yield ("secret", ns, src["secret"]["name"])
                if "configMap" in src:
                    yield ("configmap", ns, src["configMap"]["name"])


def _reachable(objs: list[Obj]) -> dict[Key, set[str]]:
    """Object -> nodes that may read it via the spec's edges (pods, PV claimRef, kubelet-visible CSI)."""
    reach: dict[Key, set[str]] = defaultdict(set)
    for pod in _pods(objs):
        node = pod["spec"].get("nodeName")
        if node and not _is_mirror(pod):
            for key in _pod_refs(pod):
                reach[key].add(node)
    for pv in (o for o in objs if o["kind"] == "PersistentVolume"):
        claim = pv["spec"]["claimRef"]
        nodes = reach.get(("pvc", claim["namespace"], claim["name"]), set())
        csi = pv["spec"]["csi"]
        for field in ("nodeStageSecretRef", "nodePublishSecretRef", "nodeExpandSecretRef"):
            if field in csi:
                reach[("secret", csi[field]["namespace"], csi[field]["name"])] |= nodes
    return reach


def test_small_preset_counts(small: list[Obj]) -> None:
    kinds = Counter(o["kind"] for o in small)
    assert kinds["Node"] == 20
    assert kinds["Pod"] == 600
    assert kinds["ResourceSlice"] == 20
    assert kinds["PersistentVolume"] > 0 and kinds["VolumeAttachment"] > 0
    assert set(kinds) == {"Node", "Pod", "PersistentVolume", "VolumeAttachment", "ResourceSlice"}
    tenant_ns = {p["metadata"]["namespace"] for p in _pods(small)} - {"kube-system"}
    assert len(tenant_ns) == 36
    names = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in small]
    assert len(names) == len(set(names))
    uids = [o["metadata"]["uid"] for o in small]
    assert len(uids) == len(set(uids))
    rvs = [int(o["metadata"]["resourceVersion"]) for o in small]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)


def test_pod_mix_ratios(small: list[Obj]) -> None:
    pods = _pods(small)
    unbound = [p for p in pods if "nodeName" not in p["spec"]]
    terminal = [p for p in pods if p["status"]["phase"] in ("Succeeded", "Failed")]
    mirror = [p for p in pods if _is_mirror(p)]
    assert all(p["status"]["phase"] == "Pending" for p in unbound)
    workloads = 20 * (30 - 2 - 1)
    assert abs(len(unbound) / workloads - 0.02) < 0.01
    assert abs(len(terminal) / workloads - 0.05) < 0.01
    assert {p["status"]["phase"] for p in terminal} == {"Succeeded", "Failed"}
    assert len(mirror) == 20
    nodes = {o["metadata"]["name"]: o["metadata"]["uid"] for o in small if o["kind"] == "Node"}
    for p in mirror:
        (owner,) = p["metadata"]["ownerReferences"]
        assert owner["kind"] == "Node" and owner["name"] == p["spec"]["nodeName"]
        assert owner["uid"] == nodes[owner["name"]]
        assert list(_pod_refs(p)) == []


def test_every_bound_pod_runs_on_an_existing_node(small: list[Obj]) -> None:
    nodes = {o["metadata"]["name"] for o in small if o["kind"] == "Node"}
    per_node = Counter(p["spec"]["nodeName"] for p in _pods(small) if "nodeName" in p["spec"])
    assert set(per_node) <= nodes
    assert max(per_node.values()) <= 30
    for kind in ("VolumeAttachment", "ResourceSlice"):
        assert {o["spec"]["nodeName"] for o in small if o["kind"] == kind} <= nodes


def test_hot_configmap_mounted_by_every_bound_non_mirror_pod(small: list[Obj]) -> None:
    for pod in _pods(small):
        if "nodeName" in pod["spec"] and not _is_mirror(pod):
            sources = [
                s for v in pod["spec"]["volumes"] if "projected" in v for s in v["projected"]["sources"]
            ]
            assert {"configMap", "serviceAccountToken", "downwardAPI"} <= {k for s in sources for k in s}
            assert ("configmap", pod["metadata"]["namespace"], "kube-root-ca.crt") in set(_pod_refs(pod))


def test_pvs_point_at_claims_used_by_bound_pods(small: list[Obj]) -> None:
    claims = {k: p for p in _pods(small) if "nodeName" in p["spec"] for k in _pod_refs(p) if k[0] == "pvc"}
    pvs = [o for o in small if o["kind"] == "PersistentVolume"]
    assert {
        ("pvc", pv["spec"]["claimRef"]["namespace"], pv["spec"]["claimRef"]["name"]) for pv in pvs
    } == set(claims)
    running_nodes = {
        pv["metadata"]["name"]: claims[
            ("pvc", pv["spec"]["claimRef"]["namespace"], pv["spec"]["claimRef"]["name"])
        ]["spec"]["nodeName"]
        for pv in pvs
    }
    for va in (o for o in small if o["kind"] == "VolumeAttachment"):
        assert va["spec"]["nodeName"] == running_nodes[va["spec"]["source"]["persistentVolumeName"]]
    for pv in pvs:
        assert {"nodeStageSecretRef", "nodePublishSecretRef", "controllerPublishSecretRef"} <= set(
            pv["spec"]["csi"]
        )


def test_deterministic_for_a_seed(small: list[Obj]) -> None:
    assert list(generate(SMALL, 7)) == small
    other = list(generate(SMALL, 8))
    assert [o["metadata"]["uid"] for o in other] != [o["metadata"]["uid"] for o in small]


def test_streamed_file_parses_as_a_list(small: list[Obj]) -> None:
    buf = io.BytesIO()
    assert write_list(iter(small), buf, batch=7) == len(small)
    doc = json.loads(buf.getvalue())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    assert doc["items"] == small
    empty = io.BytesIO()
    write_list([], empty)
    assert json.loads(empty.getvalue())["items"] == []


def test_cli_writes_overridden_shape(tmp_path: Any) -> None:
    out, checks = tmp_path / "c.json", tmp_path / "checks.json"
    assert (
        main(
            [
                "--preset",
                "small",
                "--nodes",
                "3",
                "--pods-per-node",
                "5",
                "--namespaces",
                "2",
                "--seed",
                "3",
                "--out",
                str(out),
                "--checks",
                str(checks),
            ]
        )
        == 0
    )
    kinds = Counter(o["kind"] for o in json.loads(out.read_text())["items"])
    assert kinds["Node"] == 3 and kinds["Pod"] == 15
    assert json.loads(checks.read_text())
    assert main(["--preset", "small", "--pods-per-node", "1"]) == 2


TINY = Shape(nodes=4, pods_per_node=6, namespaces=1, pvc_fraction=0.5)


@pytest.mark.parametrize("shape, seed", [(SMALL, 7), (SMALL, 12345), (TINY, 1)])
def test_sample_checks_match_the_generated_graph(shape: Shape, seed: int) -> None:
    reach = _reachable(list(generate(shape, seed)))
    checks = sample_checks(shape, seed)
    for c in checks:
        assert (c.node in reach.get((c.kind, c.namespace, c.name), set())) is c.expected_allowed, c
    got = Counter((c.topology, c.expected_allowed) for c in checks)
    if shape == SMALL:
        for topology in ("unique secret", "hot configmap", "pv secret 3-hop"):
            assert got[(topology, True)] and got[(topology, False)], topology
        assert got[("terminal pod secret", True)] and got[("unbound pod secret", False)]


def test_million_preset_is_large_scaled_to_a_million_pods() -> None:
    million = PRESETS["million"]
    assert million == scale_shape(1_000_000)
    assert scale_shape(150_000) == PRESETS["large"]
    assert (million.nodes, million.pods, million.namespaces) == (33_333, 999_990, 3_333)


# The million preset's node and namespace counts with one pod per node: names, addresses and the
# sample checks' answers must hold at that many nodes and namespaces (the whole preset takes minutes).
WIDE = replace(
    PRESETS["million"], pods_per_node=1, daemonsets=0, mirror_pods_per_node=0, resource_slices_per_node=0
)


def test_names_and_addresses_stay_unique_at_the_million_presets_node_count() -> None:
    objs = list(generate(WIDE, 3))
    nodes = [o for o in objs if o["kind"] == "Node"]
    assert len(nodes) == 33_333
    for field in (
        lambda n: n["metadata"]["name"],
        lambda n: n["spec"]["podCIDR"],
        lambda n: n["status"]["addresses"][0]["address"],
    ):
        assert len({field(n) for n in nodes}) == len(nodes)
    names = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs]
    assert len(names) == len(set(names))
    assert len({p["metadata"]["namespace"] for p in _pods(objs)}) == 3_333
    reach = _reachable(objs)
    checks = sample_checks(WIDE, 3)
    for c in checks:
        assert (c.node in reach.get((c.kind, c.namespace, c.name), set())) is c.expected_allowed, c
    assert {c.topology for c in checks} >= {"unique secret", "hot configmap", "pv secret 3-hop"}
    with pytest.raises(ValueError, match="nodes must be at most"):
        replace(WIDE, nodes=MAX_NODES + 1)
