"""Upstream feature gates the Node authorizer and NodeRestriction consult, as kube-apiserver takes them.

Pure, no I/O. ``--feature-gates Name=true,Other=false`` is parsed as
component-base's ``mapStringBool`` does (comma-separated ``key=value``, keys and
values trimmed, Go's ``strconv.ParseBool`` values) and checked as its
``featureGate.SetFromMap`` does: an unknown name and a change to a gate locked
to its default are errors, with upstream's texts.

``GATES`` holds each gate's newest-release default (Kubernetes 1.37), read from
``pkg/features/kube_features.go``. Gates not named on the command line take
these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

NEWEST_RELEASE = "1.37"

AUTHORIZE_NODE_WITH_SELECTORS = "AuthorizeNodeWithSelectors"
POD_CERTIFICATE_REQUEST = "PodCertificateRequest"
KUBELET_SA_TOKEN_FOR_CREDENTIAL_PROVIDERS = "KubeletServiceAccountTokenForCredentialProviders"
CLUSTER_TRUST_BUNDLE_PROJECTION = "ClusterTrustBundleProjection"
SERVICE_ACCOUNT_NODE_AUDIENCE_RESTRICTION = "ServiceAccountNodeAudienceRestriction"
RECOVER_VOLUME_EXPANSION_FAILURE = "RecoverVolumeExpansionFailure"
ALLOW_INSECURE_KUBELET_CSRS = "AllowInsecureKubeletCertificateSigningRequests"


@dataclass(frozen=True)
class GateSpec:
    name: str
    default: bool
    stage: str  # Alpha, Beta, GA or Deprecated, as of NEWEST_RELEASE
    locked: bool  # LockToDefault: may only be set to its default
    used_by: str  # what in nodeauthz reads it


GATES: tuple[GateSpec, ...] = (
    GateSpec(ALLOW_INSECURE_KUBELET_CSRS, False, "Deprecated", False, "NodeRestriction: kubelet CSRs"),
    # GA and locked since 1.34; upstream drops the gate in 1.37 (always on). Accepted here set to true.
    GateSpec(AUTHORIZE_NODE_WITH_SELECTORS, True, "GA", True, "authorizer: pods, nodes, resourceslices"),
    GateSpec(CLUSTER_TRUST_BUNDLE_PROJECTION, False, "Beta", False, "authorizer: clustertrustbundles"),
    GateSpec(
        KUBELET_SA_TOKEN_FOR_CREDENTIAL_PROVIDERS, True, "Beta", False, "authorizer: get serviceaccounts"
    ),
    # GA in 1.37 (kubernetes#139579); whether it is locked could not be read, so it stays switchable.
    GateSpec(
        POD_CERTIFICATE_REQUEST, True, "GA", False, "authorizer and NodeRestriction: podcertificaterequests"
    ),
    # GA and locked since 1.34.
    GateSpec(RECOVER_VOLUME_EXPANSION_FAILURE, True, "GA", True, "NodeRestriction: PVC status"),
    GateSpec(
        SERVICE_ACCOUNT_NODE_AUDIENCE_RESTRICTION, True, "Beta", False, "NodeRestriction: token audiences"
    ),
)
_SPECS = {spec.name: spec for spec in GATES}

# Go's strconv.ParseBool.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class FeatureGateError(ValueError):
    """A ``--feature-gates`` value kube-apiserver would refuse; ``str()`` is upstream's text."""


@dataclass(frozen=True)
class FeatureGates:
    """Gates set explicitly (sorted by name); every other gate has its ``GATES`` default.

    Build from user input with ``parse_feature_gates``, which enforces locks.
    ``with_gate`` does not: it exists for code paths of older releases.
    """

    overrides: tuple[tuple[str, bool], ...] = ()

    def enabled(self, name: str) -> bool:
        for gate, value in self.overrides:
            if gate == name:
                return value
        return _SPECS[name].default

    def with_gate(self, name: str, value: bool) -> FeatureGates:
        if name not in _SPECS:
            raise FeatureGateError(f"unrecognized feature gate: {name}")
        merged = dict(self.overrides) | {name: value}
        return FeatureGates(tuple(sorted(merged.items())))

    def __str__(self) -> str:
        """The ``--feature-gates`` text that ``parse_feature_gates`` turns back into these gates."""
        return ",".join(f"{name}={str(value).lower()}" for name, value in self.overrides)


DEFAULT_GATES = FeatureGates()


def _parse_go_bool(key: str, value: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise FeatureGateError(
        f'invalid value of {key}={value}, err: strconv.ParseBool: parsing "{value}": invalid syntax'
    )


def parse_feature_gates(text: str, base: FeatureGates = DEFAULT_GATES) -> FeatureGates:
    """``Name=bool,...`` on top of ``base``; raises ``FeatureGateError`` with upstream's text.

    Later settings of the same gate win, as in a Go map.
    """
    gates = base
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise FeatureGateError(f"missing bool value for {key}")
        enabled = _parse_go_bool(key, value.strip())
        spec = _SPECS.get(key)
        if spec is None:
            raise FeatureGateError(f"unrecognized feature gate: {key}")
        if spec.locked and enabled != spec.default:
            raise FeatureGateError(
                f"cannot set feature gate {key} to {str(enabled).lower()}, "
                f"feature is locked to {str(spec.default).lower()}"
            )
        gates = gates.with_gate(key, enabled)
    return gates


def describe_gates() -> str:
    """One line per gate for ``--help``: name, default, stage, lock and what reads it."""
    return "\n".join(
        f"  {s.name}={str(s.default).lower()} ({s.stage}{', locked' if s.locked else ''}): {s.used_by}"
        for s in GATES
    )
