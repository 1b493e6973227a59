"""Which Node labels a kubelet may set on its own Node. Pure, no I/O.

Upstream: ``getModifiedLabels``/``getForbiddenLabels`` in NodeRestriction and
``IsKubeletLabel`` (k8s.io/kubelet ``pkg/apis/well_known_labels.go``, v0.34.0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

NODE_RESTRICTION_NAMESPACE = "node-restriction.kubernetes.io"

KUBELET_LABELS: frozenset[str] = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)

KUBELET_LABEL_NAMESPACES: tuple[str, ...] = ("kubelet.kubernetes.io", "node.kubernetes.io")


def label_namespace(key: str) -> str:
    """The prefix before the first ``/``, or "" for an unprefixed key."""
    prefix, sep, _ = key.partition("/")
    return prefix if sep else ""


def _in_domain(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    if key in KUBELET_LABELS:
        return True
    namespace = label_namespace(key)
    return any(_in_domain(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES)


def is_kubernetes_label(key: str) -> bool:
    namespace = label_namespace(key)
    return _in_domain(namespace, "kubernetes.io") or _in_domain(namespace, "k8s.io")


def is_forbidden_label(key: str) -> bool:
    """Node-restriction labels, and kubernetes.io / k8s.io labels outside the kubelet allow-list."""
    if _in_domain(label_namespace(key), NODE_RESTRICTION_NAMESPACE):
        return True
    return is_kubernetes_label(key) and not is_kubelet_label(key)


def modified_labels(new: Mapping[str, str] | None, old: Mapping[str, str] | None) -> set[str]:
    """Keys added, removed or whose value changed between the two label maps."""
    a, b = new or {}, old or {}
    return {k for k in a.keys() | b.keys() if k not in a or k not in b or a[k] != b[k]}


def forbidden_labels(keys: Iterable[str]) -> list[str]:
    """The forbidden keys among ``keys``, sorted as upstream's ``sets.String.List()``."""
    return sorted({k for k in keys if is_forbidden_label(k)})
