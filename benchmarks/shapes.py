"""Cluster shapes and the deterministic layout behind the benchmark generator. Pure, no I/O.

Every name and placement is a function of (shape, seed, index), so a benchmark can
know which node may read which object (``sample_checks``) without building the
cluster. Only uids, timestamps and cosmetic values come from the sequential rng
in ``benchmarks.generate``.

Layout: node ``n`` runs ``daemonsets`` kube-system pods, ``mirror_pods_per_node``
static (mirror) pods and ``pods_per_node - daemonsets - mirror_pods_per_node``
workload slots. Workload pod ``w`` sits in the slot on node ``(w + offset) % nodes``
and belongs to tenant namespace ``w * namespaces // workloads``, so each namespace
covers a run of neighbouring nodes and most nodes run none of its pods.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass, fields, replace
from typing import Literal, NamedTuple

SYSTEM_NAMESPACE = "kube-system"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
PULL_SECRET = "regcred"
CSI_DRIVER = "csi.bench.example.com"
CSI_STAGE_SECRET = "csi-stage"  # per tenant namespace, shared by its PVs
CSI_CONTROLLER_SECRET = "csi-controller"  # kube-system; not kubelet-visible, never reachable
DRA_DRIVER = "gpu.bench.example.com"
MAX_NODES = 1 << 16  # node n's host IP is 172.16.(n >> 8).(n & 255)

# Kubernetes' random-suffix alphabet (no vowels, no confusable digits).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_SPACE = len(_ALPHABET) ** 5
_GOLDEN = (math.sqrt(5) - 1) / 2
_SQRT2 = math.sqrt(2) - 1

Category = Literal["running", "unbound", "succeeded", "failed"]


@dataclass(frozen=True)
class Shape:
    """How big the cluster is and how its pods reference things."""

    nodes: int
    pods_per_node: int
    namespaces: int
    unique_secrets_per_pod: int = 1
    shared_secrets_per_pod: int = 1
    unique_configmaps_per_pod: int = 1
    shared_configmaps_per_pod: int = 1
    shared_pool: int = 10  # shared secrets (and configmaps) per namespace
    replicas: int = 5  # pods per deployment; a deployment shares one service account
    daemonsets: int = 2  # kube-system pods on every node
    mirror_pods_per_node: int = 1
    pvc_fraction: float = 0.1  # of workload pods
    unbound_fraction: float = 0.02  # of workload pods
    terminal_fraction: float = 0.05  # of workload pods; half Succeeded, half Failed
    resource_slices_per_node: int = 1
    devices_per_slice: int = 4

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must not be negative")
        if self.pods_per_node < self.daemonsets + self.mirror_pods_per_node:
            raise ValueError("pods_per_node must be at least daemonsets + mirror_pods_per_node")
        if self.workload_pods and self.namespaces < 1:
            raise ValueError("workload pods need at least one namespace")
        if self.replicas < 1 or self.shared_pool < 1:
            raise ValueError("replicas and shared_pool must be at least 1")
        if max(self.pvc_fraction, self.unbound_fraction + self.terminal_fraction) > 1:
            raise ValueError("fractions must be within [0, 1] (unbound + terminal too)")
        if self.nodes > MAX_NODES:  # host IPs and pod CIDRs take a node's index in two octets
            raise ValueError(f"nodes must be at most {MAX_NODES}")

    @property
    def workloads_per_node(self) -> int:
        return self.pods_per_node - self.daemonsets - self.mirror_pods_per_node

    @property
    def workload_pods(self) -> int:
        return self.nodes * self.workloads_per_node

    @property
    def pods(self) -> int:
        return self.nodes * self.pods_per_node


PRESETS: dict[str, Shape] = {
    "small": Shape(nodes=20, pods_per_node=30, namespaces=36),
    # Upstream's scalability limits: 5,000 nodes, 150,000 pods.
    "large": Shape(nodes=5000, pods_per_node=30, namespaces=500),
    # A million pods: large's densities on 33,333 nodes (999,990 pods), i.e. scale_shape(1_000_000).
    "million": Shape(nodes=33_333, pods_per_node=30, namespaces=3_333),
}
PODS_PER_NODE = 30  # of every scaled shape, as in large


def scale_shape(pods: int) -> Shape:
    """The large preset scaled to ``pods``: same per-node and per-namespace density (150,000 *is* large)."""
    large = PRESETS["large"]
    nodes = max(1, pods // PODS_PER_NODE)
    namespaces = max(1, round(large.namespaces * nodes / large.nodes))
    return replace(large, nodes=nodes, namespaces=namespaces)


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=16).digest()


def _encode(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, r = divmod(value, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


class Layout:
    """Names and placement for one (shape, seed)."""

    def __init__(self, shape: Shape, seed: int) -> None:
        self.shape = shape
        self.seed = seed
        d = _digest("layout", seed)
        self.offset = int.from_bytes(d[:4], "big") % max(shape.nodes, 1)
        self._phase = int.from_bytes(d[4:8], "big") / 2**32
        self._pvc_phase = int.from_bytes(d[8:12], "big") / 2**32
        # a*x + b mod 27^5 is a bijection when a is not a multiple of 3: unique, random-looking suffixes.
        a = int.from_bytes(d[12:16], "big") % _SUFFIX_SPACE
        self._mul = a + (1 if a % 3 == 0 else 0)
        self._add = int.from_bytes(d[:8], "little") % _SUFFIX_SPACE

    # -- helpers ---------------------------------------------------------------------------------
    def hash_name(self, *parts: object, width: int = 5) -> str:
        """A k8s-looking random string that is a pure function of seed and parts."""
        return _encode(int.from_bytes(_digest(self.seed, *parts), "big"), width)

    def hash_uid(self, *parts: object) -> str:
        """A uuid4-shaped uid for objects that are referenced but not emitted (owners, claims)."""
        return str(uuid.UUID(bytes=_digest(self.seed, "uid", *parts), version=4))

    def suffix(self, index: int, salt: int = 0) -> str:
        """Distinct 5-character pod-name suffixes for distinct indexes below 27**5 (same salt)."""
        return _encode((index * self._mul + self._add + salt * 104729) % _SUFFIX_SPACE, 5)

    # -- nodes -----------------------------------------------------------------------------------
    @staticmethod
    def node_name(n: int) -> str:
        return f"node-{n:05d}"

    @staticmethod
    def daemonset_name(d: int) -> str:
        return f"node-agent-{d}"

    def daemonset_pod(self, d: int, n: int) -> str:
        return f"{self.daemonset_name(d)}-{self.suffix(n, salt=d)}"

    def mirror_pod(self, m: int, n: int) -> str:
        return f"static-{m}-{self.node_name(n)}"

    def resource_slice(self, n: int, s: int) -> str:
        return f"{self.node_name(n)}-{DRA_DRIVER}-{self.hash_name('slice', n, s)}"

    # -- workload pods ---------------------------------------------------------------------------
    @staticmethod
    def namespace_name(k: int) -> str:
        return f"ns-{k:04d}"

    def namespace_of(self, w: int) -> int:
        return w * self.shape.namespaces // self.shape.workload_pods

    def namespace_range(self, k: int) -> range:
        """Workload indexes in tenant namespace ``k``."""
        total, m = self.shape.workload_pods, self.shape.namespaces
        return range(-(-k * total // m), -(-(k + 1) * total // m))

    def node_of(self, w: int) -> int:
        """The slot's node; an unbound pod has a slot but no nodeName."""
        return (w + self.offset) % self.shape.nodes

    def category(self, w: int) -> Category:
        # A Weyl sequence spreads each category evenly over indexes and namespaces.
        u = (w * _GOLDEN + self._phase) % 1.0
        s = self.shape
        if u < s.unbound_fraction:
            return "unbound"
        if u < s.unbound_fraction + s.terminal_fraction:
            return "succeeded" if w % 2 == 0 else "failed"
        return "running"

    def has_pvc(self, w: int) -> bool:
        return (w * _SQRT2 + self._pvc_phase) % 1.0 < self.shape.pvc_fraction

    def local_index(self, w: int) -> int:
        return w - self.namespace_range(self.namespace_of(w)).start

    def deployment(self, w: int) -> int:
        return self.local_index(w) // self.shape.replicas

    def deployment_hash(self, k: int, j: int) -> str:
        return self.hash_name("rs", k, j, width=10)

    def pod_name(self, w: int) -> str:
        k, j = self.namespace_of(w), self.deployment(w)
        return f"app-{j}-{self.deployment_hash(k, j)}-{self.suffix(self.local_index(w), salt=k)}"

    @staticmethod
    def unique_secret(pod: str, i: int) -> str:
        return f"{pod}-secret-{i}"

    @staticmethod
    def unique_configmap(pod: str, i: int) -> str:
        return f"{pod}-config-{i}"

    def shared_index(self, w: int, i: int) -> int:
        return (self.deployment(w) + i) % self.shape.shared_pool

    @staticmethod
    def shared_secret(j: int) -> str:
        return f"shared-secret-{j}"

    @staticmethod
    def shared_configmap(j: int) -> str:
        return f"shared-config-{j}"

    @staticmethod
    def claim_name(pod: str) -> str:
        return f"data-{pod}"

    def pv_name(self, w: int) -> str:
        # Provisioners name a PV "pvc-<claim uid>".
        return "pvc-" + self.hash_uid("claim", w)

    @staticmethod
    def pv_publish_secret(pv: str) -> str:
        return f"{pv}-publish"

    def volume_attachment(self, w: int) -> str:
        # Upstream's name: "csi-" + sha256(pvName + driver + nodeName).
        text = self.pv_name(w) + CSI_DRIVER + self.node_name(self.node_of(w))
        return "csi-" + hashlib.sha256(text.encode()).hexdigest()


class Check(NamedTuple):
    """One authorization question with its expected answer."""

    node: str
    kind: str  # vertex kind: "secret" or "configmap"
    namespace: str
    name: str
    expected_allowed: bool
    topology: str


def _other_node(lay: Layout, n: int) -> str | None:
    return lay.node_name((n + 1) % lay.shape.nodes) if lay.shape.nodes > 1 else None


def _pair(lay: Layout, w: int, kind: str, ns: str, name: str, topology: str) -> list[Check]:
    n = lay.node_of(w)
    out = [Check(lay.node_name(n), kind, ns, name, True, topology)]
    other = _other_node(lay, n)
    if other is not None:
        out.append(Check(other, kind, ns, name, False, topology))
    return out


def sample_checks(shape: Shape, seed: int, per_topology: int = 3) -> list[Check]:
    """Checks with known answers, from the naming scheme alone (no objects are built).

    Topologies: 'unique secret', 'hot configmap' (kube-root-ca.crt), 'pv secret 3-hop'
    (secret -> pv -> pvc -> pod -> node), each allowed on a node running a user and
    not allowed on one running none; plus 'terminal pod secret' (allowed: upstream
    keeps terminal pods), 'unbound pod secret' and 'pv controller secret' (never allowed).
    """
    lay = Layout(shape, seed)
    out: list[Check] = []
    if shape.nodes == 0:
        return out
    if shape.daemonsets:
        for n in sorted({0, shape.nodes - 1}):
            out.append(
                Check(
                    lay.node_name(n), "configmap", SYSTEM_NAMESPACE, ROOT_CA_CONFIGMAP, True, "hot configmap"
                )
            )
    if not shape.workload_pods:
        return out
    m = shape.namespaces
    picks = sorted({k * (m - 1) // max(per_topology - 1, 1) for k in range(per_topology)})
    for k in picks:
        ns, rng = lay.namespace_name(k), lay.namespace_range(k)
        users = {lay.node_of(w) for w in rng if lay.category(w) != "unbound"}
        running = [w for w in rng if lay.category(w) == "running"]
        if running:
            w = running[0]
            out.append(
                Check(
                    lay.node_name(lay.node_of(w)), "configmap", ns, ROOT_CA_CONFIGMAP, True, "hot configmap"
                )
            )
            if shape.unique_secrets_per_pod:
                out += _pair(lay, w, "secret", ns, lay.unique_secret(lay.pod_name(w), 0), "unique secret")
        start = lay.node_of(rng.stop) if rng else 0
        free = next(
            (x % shape.nodes for x in range(start, start + shape.nodes) if x % shape.nodes not in users), None
        )
        if free is not None:
            out.append(Check(lay.node_name(free), "configmap", ns, ROOT_CA_CONFIGMAP, False, "hot configmap"))
    out += _scan_checks(lay, per_topology)
    return out


def _scan_checks(lay: Layout, per_topology: int) -> list[Check]:
    """Checks that need pods of a rarer kind: the first few found in index order."""
    out: list[Check] = []
    found = {"pv": 0, "terminal": 0, "unbound": 0}
    for w in range(lay.shape.workload_pods):
        if all(v >= per_topology for v in found.values()):
            break
        cat, ns, pod = lay.category(w), lay.namespace_name(lay.namespace_of(w)), lay.pod_name(w)
        if cat == "running" and lay.has_pvc(w) and found["pv"] < per_topology:
            found["pv"] += 1
            out += _pair(lay, w, "secret", ns, lay.pv_publish_secret(lay.pv_name(w)), "pv secret 3-hop")
            out.append(
                Check(
                    lay.node_name(lay.node_of(w)),
                    "secret",
                    SYSTEM_NAMESPACE,
                    CSI_CONTROLLER_SECRET,
                    False,
                    "pv controller secret",
                )
            )
        if lay.shape.unique_secrets_per_pod == 0:
            continue
        if cat in ("succeeded", "failed") and found["terminal"] < per_topology:
            found["terminal"] += 1
            out.append(
                Check(
                    lay.node_name(lay.node_of(w)),
                    "secret",
                    ns,
                    lay.unique_secret(pod, 0),
                    True,
                    "terminal pod secret",
                )
            )
        if cat == "unbound" and found["unbound"] < per_topology:
            found["unbound"] += 1
            out.append(
                Check(
                    lay.node_name(lay.node_of(w)),
                    "secret",
                    ns,
                    lay.unique_secret(pod, 0),
                    False,
                    "unbound pod secret",
                )
            )
    return out
