"""What NodeRestriction's rules depend on besides the request: upstream feature gates. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from app.k8s import feature_gates as fg
from app.k8s.feature_gates import DEFAULT_GATES, FeatureGates


@dataclass(frozen=True)
class AdmissionOptions:
    """The gates the rules read (at the newest release's defaults)."""

    service_account_node_audience_restriction: bool = True
    recover_volume_expansion_failure: bool = True
    allow_insecure_kubelet_csrs: bool = False
    pod_certificate_requests: bool = True

    @classmethod
    def from_gates(cls, gates: FeatureGates) -> AdmissionOptions:
        return cls(
            service_account_node_audience_restriction=gates.enabled(
                fg.SERVICE_ACCOUNT_NODE_AUDIENCE_RESTRICTION
            ),
            recover_volume_expansion_failure=gates.enabled(fg.RECOVER_VOLUME_EXPANSION_FAILURE),
            allow_insecure_kubelet_csrs=gates.enabled(fg.ALLOW_INSECURE_KUBELET_CSRS),
            pod_certificate_requests=gates.enabled(fg.POD_CERTIFICATE_REQUEST),
        )


DEFAULT_OPTIONS = AdmissionOptions.from_gates(DEFAULT_GATES)
