"""Model-based test of the whole write pipeline against an in-memory model of the Node authorizer.

A hypothesis state machine drives random operations through the real parts:
``FakeApiServer`` (list/watch over HTTP) -> ``KubeApi`` -> ``SyncWorker`` (informer threads)
-> ``GraphStore`` -> the webhook's own reader (``open_reader``) -> ``decide``/``resolve``.

Operations: pods (bound to n0/n1 or unbound; mirror pods; secrets, configmaps, PVCs, ephemeral
volumes, service accounts and resource claims from small name pools) are created, replaced,
deleted and updated the ways Kubernetes lets a pod change (binding, labels, an ephemeral
container, a generated resource claim, a terminal phase); PVs (claimRef, secret references) are
created, updated and deleted. Around them: watches cut, a re-list forced by a 410, writer
restarts (resume from the stored position, or re-list if compacted meanwhile) and handovers to
another lease holder (``LeaseManager``): after a release, after the writer died, or after it went
silent while still running, a deposed writer that must then be refused (``LeaseLost``).

After every step the graph must catch up (every watched resource's ``sync_state`` row at the
server's resourceVersion, written by the current writer), and then every (node, object) decision
in the universe must equal the model's. The model is the spec's section 4 in relational form,
computed from the test's own record of the cluster (no app code): a node may reach a pod bound to
it; a secret, configmap, PVC, service account or resource claim referenced by a non-mirror pod
bound to it; a PV whose claimRef is such a PVC; and a kubelet-visible secret of such a PV.

A failure prints the steps and an ``@reproduce_failure(...)`` line (``print_blob``): put it on
``class PipelineMachine`` to replay exactly that sequence.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, delete, select

from app.authz.node_authorizer import PathQuery, decide, resolve
from app.graph.fence import Fence, LeaseLost
from app.graph.reach import Reader
from app.graph.readers import open_reader
from app.graph.schema import metadata, sync_state
from app.ha.lease import LeaseManager
from app.k8s.attributes import RequestAttributes
from app.k8s.kinds import CONFIGMAP, POD, PV, PVC, RESOURCECLAIM, SECRET, SERVICEACCOUNT, VertexKey
from app.sync.api_client import KubeApi
from app.sync.informer import InformerConfig
from app.sync.worker import SyncWorker
from tests.fake_apiserver import FakeApiServer
from tests.threads import running
from tests.writers import TEST_LEASE_SECONDS, fenced

# page_size 2: every re-list takes several pages.
CONFIG = InformerConfig(page_size=2, watch_timeout=(5, 5), backoff_initial=0.05, backoff_max=0.2, poll=0.05)
RESOURCES = ("pods", "persistentvolumes")
CATCH_UP_TIMEOUT_S = 15.0

BOUND_NODES = ("n0", "n1")
NODES = (*BOUND_NODES, "n2")  # n2 never has a pod: it must reach nothing
NAMESPACES = ("a", "b")
POD_NAMES = ("p0", "p1", "p2")
SECRETS = ("s0", "s1", "s2")
CONFIGMAPS = ("c0", "c1")
CLAIMS = ("v0", "v1")
EPHEMERAL_VOLUME = "eph"  # a pod's ephemeral volume implies the claim <pod>-eph
TEMPLATE_CLAIM = "t"  # a pod's templated resource claim, once generated: <pod>-t
SERVICE_ACCOUNTS = ("sa0", "sa1")
RESOURCE_CLAIMS = ("r0", "r1")
PV_NAMES = ("pv0", "pv1")
HOLDERS = ("replica-0", "replica-1", "replica-2")
HANDOVERS = ("release", "dead", "silent")

SECRET_VIA = ("volume", "envFrom", "env", "imagePullSecrets", "projected", "initContainer")
CONFIGMAP_VIA = ("volume", "envFrom", "env", "projected")
# Where a PV names its secret. Only the kubelet-visible ones grant access; rbd's secretRef
# without a namespace takes the claimRef's namespace.
PV_SECRET_FIELDS = ("nodePublishSecretRef", "nodeStageSecretRef", "controllerPublishSecretRef", "rbd")
KUBELET_VISIBLE = frozenset({"nodePublishSecretRef", "nodeStageSecretRef", "rbd"})

# Every (kind, namespace, name) a node is asked about.
UNIVERSE: tuple[VertexKey, ...] = (
    *(VertexKey(SECRET, ns, s) for ns, s in itertools.product(NAMESPACES, SECRETS)),
    *(VertexKey(CONFIGMAP, ns, c) for ns, c in itertools.product(NAMESPACES, CONFIGMAPS)),
    *(VertexKey(PVC, ns, c) for ns, c in itertools.product(NAMESPACES, CLAIMS)),
    *(VertexKey(PVC, ns, f"{p}-{EPHEMERAL_VOLUME}") for ns, p in itertools.product(NAMESPACES, POD_NAMES)),
    *(VertexKey(SERVICEACCOUNT, ns, sa) for ns, sa in itertools.product(NAMESPACES, SERVICE_ACCOUNTS)),
    *(VertexKey(RESOURCECLAIM, ns, r) for ns, r in itertools.product(NAMESPACES, RESOURCE_CLAIMS)),
    *(
        VertexKey(RESOURCECLAIM, ns, f"{p}-{TEMPLATE_CLAIM}")
        for ns, p in itertools.product(NAMESPACES, POD_NAMES)
    ),
    *(VertexKey(POD, ns, p) for ns, p in itertools.product(NAMESPACES, POD_NAMES)),
    *(VertexKey(PV, "", v) for v in PV_NAMES),
)

# How a node asks for each kind: (API group, resource, verb, subresource).
REQUESTS: dict[str, tuple[str, str, str, str]] = {
    SECRET: ("", "secrets", "get", ""),
    CONFIGMAP: ("", "configmaps", "get", ""),
    PVC: ("", "persistentvolumeclaims", "get", ""),
    PV: ("", "persistentvolumes", "get", ""),
    RESOURCECLAIM: ("resource.k8s.io", "resourceclaims", "get", ""),
    SERVICEACCOUNT: ("", "serviceaccounts", "create", "token"),
    POD: ("", "pods", "get", ""),
}


# -- the cluster as the test knows it, and the model ---------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    node: str  # "" = unbound
    mirror: bool = False
    secrets: tuple[tuple[str, str], ...] = ()  # (secret, where the spec names it)
    configmaps: tuple[tuple[str, str], ...] = ()
    claims: tuple[str, ...] = ()
    ephemeral_volume: bool = False
    service_account: str = ""
    resource_claims: tuple[str, ...] = ()
    template_claim: bool = False
    claim_generated: bool = False  # status.resourceClaimStatuses names the template claim's claim
    debug_secrets: tuple[str, ...] = ()  # ephemeral containers' envFrom secrets
    labels: int = 0
    succeeded: bool = False
    uid: str = ""

    def references(self) -> set[tuple[str, str]]:
        """(kind, name) of what the pod references, all in its namespace."""
        refs = {(SECRET, s) for s, _ in self.secrets} | {(SECRET, s) for s in self.debug_secrets}
        refs |= {(CONFIGMAP, c) for c, _ in self.configmaps}
        refs |= {(PVC, c) for c in self.claims}
        if self.ephemeral_volume:
            refs.add((PVC, f"{self.name}-{EPHEMERAL_VOLUME}"))
        if self.service_account:
            refs.add((SERVICEACCOUNT, self.service_account))
        refs |= {(RESOURCECLAIM, r) for r in self.resource_claims}
        if self.template_claim and self.claim_generated:
            refs.add((RESOURCECLAIM, f"{self.name}-{TEMPLATE_CLAIM}"))
        return refs

    def raw(self) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "c", "image": "busybox", "envFrom": [], "env": []}
        spec: dict[str, Any] = {"containers": [container], "volumes": []}
        volumes: list[dict[str, Any]] = spec["volumes"]
        for i, (secret, via) in enumerate(self.secrets):
            if via == "volume":
                volumes.append({"name": f"sec{i}", "secret": {"secretName": secret}})
            elif via == "projected":
                volumes.append({"name": f"sec{i}", "projected": {"sources": [{"secret": {"name": secret}}]}})
            elif via == "envFrom":
                container["envFrom"].append({"secretRef": {"name": secret}})
            elif via == "env":
                ref = {"secretKeyRef": {"name": secret, "key": "k"}}
                container["env"].append({"name": f"S{i}", "valueFrom": ref})
            elif via == "imagePullSecrets":
                spec.setdefault("imagePullSecrets", []).append({"name": secret})
            else:
                init = {"name": f"init{i}", "image": "busybox", "envFrom": [{"secretRef": {"name": secret}}]}
                spec.setdefault("initContainers", []).append(init)
        for i, (configmap, via) in enumerate(self.configmaps):
            if via == "volume":
                volumes.append({"name": f"cm{i}", "configMap": {"name": configmap}})
            elif via == "projected":
                volumes.append(
                    {"name": f"cm{i}", "projected": {"sources": [{"configMap": {"name": configmap}}]}}
                )
            elif via == "envFrom":
                container["envFrom"].append({"configMapRef": {"name": configmap}})
            else:
                ref = {"configMapKeyRef": {"name": configmap, "key": "k"}}
                container["env"].append({"name": f"C{i}", "valueFrom": ref})
        for i, claim in enumerate(self.claims):
            volumes.append({"name": f"pvc{i}", "persistentVolumeClaim": {"claimName": claim}})
        if self.ephemeral_volume:
            volumes.append({"name": EPHEMERAL_VOLUME, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}})
        if self.node:
            spec["nodeName"] = self.node
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        claims: list[dict[str, Any]] = [
            {"name": f"rc{i}", "resourceClaimName": r} for i, r in enumerate(self.resource_claims)
        ]
        if self.template_claim:
            claims.append({"name": TEMPLATE_CLAIM, "resourceClaimTemplateName": "template"})
        if claims:
            spec["resourceClaims"] = claims
        if self.debug_secrets:
            spec["ephemeralContainers"] = [
                {"name": f"debug{i}", "image": "busybox", "envFrom": [{"secretRef": {"name": s}}]}
                for i, s in enumerate(self.debug_secrets)
            ]
        status: dict[str, Any] = {"phase": "Succeeded" if self.succeeded else "Running"}
        if self.template_claim and self.claim_generated:
            generated = f"{self.name}-{TEMPLATE_CLAIM}"
            status["resourceClaimStatuses"] = [{"name": TEMPLATE_CLAIM, "resourceClaimName": generated}]
        meta: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "labels": {"generation": str(self.labels)},
        }
        if self.mirror:
            meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
        return {"metadata": meta, "spec": spec, "status": status}


@dataclass(frozen=True)
class Volume:
    name: str
    claim: tuple[str, str] | None  # claimRef (namespace, name)
    secret: tuple[str, str] | None  # (namespace, name); rbd ignores the namespace
    secret_field: str = "nodePublishSecretRef"

    def visible_secret(self) -> tuple[str, str] | None:
        """The secret the PV lets its node read (namespace, name), if any."""
        if self.secret is None or self.secret_field not in KUBELET_VISIBLE:
            return None
        if self.secret_field == "rbd":
            return (self.claim[0], self.secret[1]) if self.claim else None
        return self.secret

    def raw(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}}
        if self.claim:
            spec["claimRef"] = {
                "kind": "PersistentVolumeClaim",
                "namespace": self.claim[0],
                "name": self.claim[1],
            }
        if self.secret_field == "rbd":
            spec["rbd"] = {"monitors": ["m"], "image": self.name}
            if self.secret:
                spec["rbd"]["secretRef"] = {"name": self.secret[1]}
        else:
            spec["csi"] = {"driver": "csi.example.com", "volumeHandle": self.name}
            if self.secret:
                spec["csi"][self.secret_field] = {"namespace": self.secret[0], "name": self.secret[1]}
        return {"metadata": {"name": self.name, "uid": f"uid-{self.name}"}, "spec": spec}


@dataclass
class Cluster:
    """What the API server holds, and what the Node authorizer should make of it."""

    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)

    def allows(self, node: str, target: VertexKey) -> bool:
        for pod in self.pods.values():
            if pod.node != node:
                continue
            if target == (POD, pod.namespace, pod.name):
                return True
            if pod.mirror:
                continue  # a mirror pod grants nothing beyond itself
            refs = pod.references()
            if target.namespace == pod.namespace and (target.kind, target.name) in refs:
                return True
            for volume in self.volumes.values():
                if (
                    volume.claim is None
                    or volume.claim[0] != pod.namespace
                    or (PVC, volume.claim[1]) not in refs
                ):
                    continue
                if target == (PV, "", volume.name):
                    return True
                if target.kind == SECRET and volume.visible_secret() == (target.namespace, target.name):
                    return True
        return False

    def summary(self) -> str:
        lines = [f"  pod {p}" for p in sorted(self.pods.values(), key=lambda p: (p.namespace, p.name))]
        lines += [f"  pv {v}" for v in sorted(self.volumes.values(), key=lambda v: v.name)]
        return "\n".join(lines) or "  (empty)"


# -- operations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PutPod:
    pod: Pod  # created, or replaced (deleted and created again with a new uid) if it exists


@dataclass(frozen=True)
class DeletePod:
    namespace: str
    name: str


@dataclass(frozen=True)
class UpdatePod:
    namespace: str
    name: str
    change: str  # one of POD_CHANGES
    value: str = ""


@dataclass(frozen=True)
class PutVolume:
    volume: Volume  # created, or updated in place


@dataclass(frozen=True)
class DeleteVolume:
    name: str


Op = PutPod | DeletePod | UpdatePod | PutVolume | DeleteVolume

# The ways a live pod changes in Kubernetes (its volumes and references are immutable).
POD_CHANGES = ("bind", "labels", "debug", "claim-status", "succeeded")


def _refs(names: tuple[str, ...], vias: tuple[str, ...]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    pairs = st.tuples(st.sampled_from(names), st.sampled_from(vias))
    return st.lists(pairs, max_size=2).map(tuple)


def _names(names: tuple[str, ...], max_size: int = 2) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(names), max_size=max_size).map(tuple)


pods = st.builds(
    Pod,
    namespace=st.sampled_from(NAMESPACES),
    name=st.sampled_from(POD_NAMES),
    node=st.sampled_from((*BOUND_NODES, "")),
    mirror=st.sampled_from((False, False, False, True)),
    secrets=_refs(SECRETS, SECRET_VIA),
    configmaps=_refs(CONFIGMAPS, CONFIGMAP_VIA),
    claims=_names(CLAIMS),
    ephemeral_volume=st.booleans(),
    service_account=st.sampled_from(("", *SERVICE_ACCOUNTS)),
    resource_claims=_names(RESOURCE_CLAIMS, 1),
    template_claim=st.booleans(),
)
volumes = st.builds(
    Volume,
    name=st.sampled_from(PV_NAMES),
    claim=st.none()
    | st.tuples(st.sampled_from(NAMESPACES), st.sampled_from((*CLAIMS, f"p0-{EPHEMERAL_VOLUME}"))),
    secret=st.none() | st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(SECRETS)),
    secret_field=st.sampled_from(PV_SECRET_FIELDS),
)
ops: st.SearchStrategy[Op] = st.one_of(
    st.builds(PutPod, pods),
    st.builds(PutPod, pods),
    st.builds(DeletePod, st.sampled_from(NAMESPACES), st.sampled_from(POD_NAMES)),
    st.builds(
        UpdatePod,
        st.sampled_from(NAMESPACES),
        st.sampled_from(POD_NAMES),
        st.sampled_from(POD_CHANGES),
        st.sampled_from((*BOUND_NODES, *SECRETS)),
    ),
    st.builds(PutVolume, volumes),
    st.builds(DeleteVolume, st.sampled_from(PV_NAMES)),
)
op_batches = st.lists(ops, max_size=4)


# -- the pipeline --------------------------------------------------------------------------------


@dataclass
class Env:
    """What every example shares: the database and the webhook's reader on its own event loop."""

    database_url: str
    engine: Engine
    loop: asyncio.AbstractEventLoop
    reader: Reader
    tmp_path: Path
    examples: int = 0


@dataclass
class RunningWorker:
    worker: SyncWorker
    fence: Fence
    errors: list[BaseException]
    stack: ExitStack


def _clear_database(engine: Engine) -> None:
    """Every table empty: graph, sync positions, set-aside objects and the writer lease."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


class PipelineMachine(RuleBasedStateMachine):
    env: ClassVar[Env | None] = None  # set by the test for the length of its run

    def __init__(self) -> None:
        super().__init__()
        assert self.env is not None, "run by test_pipeline_matches_the_model"
        env = self.ctx = self.env
        env.examples += 1
        _clear_database(env.engine)
        self.cluster = Cluster()
        self.uids = itertools.count()
        self.worker: RunningWorker | None = None
        self.zombies: list[RunningWorker] = []  # deposed writers still running
        self.leases: dict[str, LeaseManager] = {}  # each replica's lease manager (its liveness lock)
        self.now = 0.0  # the replicas' monotonic clock, which times takeovers of a silent writer
        self.stack = ExitStack()
        self.stack.callback(self._close_leases)
        self.server = self.stack.enter_context(FakeApiServer())
        try:
            kubeconfig = self.server.write_kubeconfig(env.tmp_path / f"kubeconfig-{env.examples}")
            self.api = KubeApi.from_config(str(kubeconfig))
            self.stack.callback(self.api.close)
            fence = self._lease(HOLDERS[0]).try_acquire()
            assert fence is not None, "the first writer could not take the lease"
            self.fence = fence
        except BaseException:
            self.stack.close()  # teardown() only runs once __init__ has returned
            raise
        self.store = fenced(env.engine, self.fence)

    @initialize(batch=st.lists(ops, min_size=2, max_size=8))
    def first_writer(self, batch: list[Op]) -> None:
        """The cluster before the first writer starts: it lists (in pages of 2) and watches."""
        for op in batch:
            self._apply(op)
        self._start_worker()

    # -- writers --

    def _lease(self, holder: str) -> LeaseManager:
        if holder not in self.leases:
            self.leases[holder] = LeaseManager(
                self.ctx.engine, holder=holder, duration=TEST_LEASE_SECONDS, monotonic=lambda: self.now
            )
        return self.leases[holder]

    def _close_leases(self) -> None:
        leases, self.leases = self.leases, {}
        for lease in leases.values():
            lease.close()

    def _start_worker(self) -> None:
        assert self.worker is None
        worker = SyncWorker(self.store, self.api, resources=RESOURCES, config=CONFIG)
        stack = ExitStack()
        errors = stack.enter_context(running(worker))
        self.worker = RunningWorker(worker, self.fence, errors, stack)

    def _detach_worker(self) -> RunningWorker:
        assert self.worker is not None
        worker, self.worker = self.worker, None
        return worker

    def _stop_worker(self) -> None:
        worker = self._detach_worker()
        worker.stack.close()
        assert not worker.errors, f"the writer failed: {worker.errors!r}"

    def _stop_zombies(self) -> None:
        zombies, self.zombies = self.zombies, []
        for zombie in zombies:
            zombie.stack.close()
            # A deposed writer either never wrote again or was refused: nothing else.
            assert all(isinstance(e, LeaseLost) for e in zombie.errors), zombie.errors
            self._lease(zombie.fence.holder).step_down(zombie.fence)  # as its leader loop would

    def teardown(self) -> None:
        try:
            if self.worker is not None:
                self._detach_worker().stack.close()
            for zombie in self.zombies:
                zombie.stack.close()
        finally:
            self.stack.close()

    # -- the cluster --

    def _apply(self, op: Op) -> None:
        server, cluster = self.server, self.cluster
        if isinstance(op, PutPod):
            key = (op.pod.namespace, op.pod.name)
            if key in cluster.pods:
                server.delete("pods", op.pod.name, op.pod.namespace)
            pod = replace(op.pod, uid=f"uid-{next(self.uids)}")
            server.create("pods", pod.raw())
            cluster.pods[key] = pod
        elif isinstance(op, DeletePod):
            if (op.namespace, op.name) in cluster.pods:
                server.delete("pods", op.name, op.namespace)
                del cluster.pods[(op.namespace, op.name)]
        elif isinstance(op, UpdatePod):
            old = cluster.pods.get((op.namespace, op.name))
            if old is None:
                return
            new = self._changed(old, op.change, op.value)
            server.update("pods", new.raw())
            cluster.pods[(op.namespace, op.name)] = new
        elif isinstance(op, PutVolume):
            verb = server.update if op.volume.name in cluster.volumes else server.create
            verb("persistentvolumes", op.volume.raw())
            cluster.volumes[op.volume.name] = op.volume
        else:
            if op.name in cluster.volumes:
                server.delete("persistentvolumes", op.name)
                del cluster.volumes[op.name]

    @staticmethod
    def _changed(pod: Pod, change: str, value: str) -> Pod:
        if change == "bind" and not pod.node:
            return replace(pod, node=value if value in BOUND_NODES else BOUND_NODES[0])
        if change == "debug":
            return replace(pod, debug_secrets=(*pod.debug_secrets, value if value in SECRETS else SECRETS[0]))
        if change == "claim-status":
            return replace(pod, claim_generated=True)
        if change == "succeeded":
            return replace(pod, succeeded=True)
        return replace(pod, labels=pod.labels + 1)  # "labels", or a change that does not apply

    def _bump(self) -> None:
        """Move the server's resourceVersion past every watched resource (a node: not watched here)."""
        self.server.update("nodes", {"metadata": {"name": "bump", "uid": "uid-bump"}})

    # -- rules --

    @rule(op=st.builds(PutPod, pods))
    def put_pod(self, op: PutPod) -> None:
        self._apply(op)

    @precondition(lambda self: self.cluster.pods)
    @rule(data=st.data())
    def delete_pod(self, data: st.DataObject) -> None:
        namespace, name = data.draw(st.sampled_from(sorted(self.cluster.pods)), label="pod")
        self._apply(DeletePod(namespace, name))

    @precondition(lambda self: self.cluster.pods)
    @rule(
        data=st.data(), change=st.sampled_from(POD_CHANGES), value=st.sampled_from((*BOUND_NODES, *SECRETS))
    )
    def update_pod(self, data: st.DataObject, change: str, value: str) -> None:
        namespace, name = data.draw(st.sampled_from(sorted(self.cluster.pods)), label="pod")
        self._apply(UpdatePod(namespace, name, change, value))

    @rule(op=st.builds(PutVolume, volumes))
    def put_volume(self, op: PutVolume) -> None:
        self._apply(op)

    @precondition(lambda self: self.cluster.volumes)
    @rule(data=st.data())
    def delete_volume(self, data: st.DataObject) -> None:
        self._apply(DeleteVolume(data.draw(st.sampled_from(sorted(self.cluster.volumes)), label="pv")))

    @rule(batch=op_batches)
    def burst(self, batch: list[Op]) -> None:
        """Several changes at once: the writer may see them in one batch or several."""
        for op in batch:
            self._apply(op)

    @rule(batch=op_batches)
    def cut_watches(self, batch: list[Op]) -> None:
        """Watches break mid-stream while changes happen: they resume from their positions."""
        self.server.cut_watches()
        for op in batch:
            self._apply(op)

    @rule(batch=op_batches)
    def relist_after_410(self, batch: list[Op]) -> None:
        """Changes, then history compacted past every position and watches cut: 410, re-list."""
        for op in batch:
            self._apply(op)
        self._bump()
        self.server.compact()
        self.server.cut_watches()

    @rule(batch=op_batches, compact=st.booleans())
    def restart_writer(self, batch: list[Op], compact: bool) -> None:
        """The writer stops; changes happen; a new SyncWorker on the same store resumes (or re-lists)."""
        self._stop_worker()
        for op in batch:
            self._apply(op)
        if compact:
            self._bump()
            self.server.compact()
        self._start_worker()

    @rule(holder=st.sampled_from(HOLDERS), how=st.sampled_from(HANDOVERS), batch=op_batches)
    def handover(self, holder: str, how: str, batch: list[Op]) -> None:
        """Another replica becomes the writer, and the deposed writer's store must refuse every write.

        ``release``: the writer stopped and gave the lease up (a clean stop), changes happen, the
        next replica takes over. ``dead``: its process died (worker gone, liveness lock dropped)
        without a release. ``silent``: it stops renewing but keeps running (a paused process
        that resumes): the next replica takes over after a whole lease duration without a
        renewal, then changes happen, which the deposed writer sees too and must fail to write.
        """
        if holder == self.fence.holder:
            holder = HOLDERS[(HOLDERS.index(holder) + 1) % len(HOLDERS)]
        old_store, old_fence = self.store, self.fence
        if how == "silent":
            self.zombies.append(self._detach_worker())
        else:
            self._stop_worker()
            for op in batch:
                self._apply(op)
            if how == "release":
                self._lease(old_fence.holder).release(old_fence)
            else:
                self.leases.pop(old_fence.holder).close()
        candidate = self._lease(holder)
        fence = candidate.try_acquire()
        if how == "silent":
            assert fence is None, "took the lease of a live writer that had just renewed it"
            self.now += TEST_LEASE_SECONDS
            fence = candidate.try_acquire()
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while fence is None and time.monotonic() < deadline:
            # Candidates poll: PostgreSQL drops a dead session's advisory lock once it sees it end.
            time.sleep(0.01)
            fence = candidate.try_acquire()
        assert fence is not None and fence.epoch == old_fence.epoch + 1, (how, fence, old_fence)
        self.fence, self.store = fence, fenced(self.ctx.engine, fence)
        self._start_worker()
        if how == "silent":
            for op in batch:
                self._apply(op)
        with pytest.raises(LeaseLost):
            old_store.delete(sorted(old_store.owned_keys(POD)))

    # -- after every step --

    @invariant()
    def decisions_match_the_model(self) -> None:
        self._wait_until_caught_up()
        got = self.ctx.loop.run_until_complete(self._decisions())
        wrong = [
            f"  {node} -> {target}: webhook {'allows' if got[node, target] else 'denies'}, model "
            f"{'allows' if self.cluster.allows(node, target) else 'denies'}"
            for node, target in itertools.product(NODES, UNIVERSE)
            if got[node, target] != self.cluster.allows(node, target)
        ]
        assert not wrong, (
            "decisions differ from the model:\n"
            + "\n".join(wrong)
            + "\ncluster:\n"
            + (self.cluster.summary())
        )
        self._stop_zombies()

    def _wait_until_caught_up(self) -> None:
        """Every watched resource's position at the server's resourceVersion, marked by this writer."""
        want = (self.server.resource_version, self.fence.holder, self.fence.epoch)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        next_bookmark = 0.0
        while True:
            with self.ctx.engine.connect() as conn:
                rows = {
                    r.resource: (r.resource_version, r.writer, r.epoch)
                    for r in conn.execute(select(sync_state))
                }
            if all(rows.get(resource) == want for resource in RESOURCES):
                return
            assert self.worker is not None
            assert not self.worker.errors, f"the writer failed: {self.worker.errors!r}"
            assert time.monotonic() < deadline, f"the graph never caught up with {want}: sync_state {rows}"
            if time.monotonic() >= next_bookmark:  # idle watches learn the current resourceVersion
                self.server.bookmark()
                next_bookmark = time.monotonic() + 0.05
            time.sleep(0.005)

    async def _decisions(self) -> dict[tuple[str, VertexKey], bool]:
        got: dict[tuple[str, VertexKey], bool] = {}
        for node, target in itertools.product(NODES, UNIVERSE):
            group, resource, verb, subresource = REQUESTS[target.kind]
            attrs = RequestAttributes(
                user=f"system:node:{node}",
                groups=("system:nodes", "system:authenticated"),
                verb=verb,
                resource_request=True,
                namespace=target.namespace,
                api_group=group,
                api_version="v1",
                resource=resource,
                subresource=subresource,
                name=target.name,
            )
            query = decide(attrs)
            assert query == PathQuery(node, *target), (attrs, query)
            reach = await self.ctx.reader.reach(node, *target)
            got[node, target] = resolve(query, reach.verdict()).allowed
        return got


SETTINGS = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_pipeline_matches_the_model(database_url: str, engine: Engine, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    # The webhook's reader, with a deadline for a loaded CI machine rather than for an API server.
    reader = loop.run_until_complete(open_reader(database_url, pool_size=1, timeout=10.0))
    env = PipelineMachine.env = Env(database_url, engine, loop, reader, tmp_path)
    try:
        run_state_machine_as_test(PipelineMachine, settings=SETTINGS)
    finally:
        PipelineMachine.env = None
        loop.run_until_complete(reader.close())
        loop.close()
    assert env.examples > 0
