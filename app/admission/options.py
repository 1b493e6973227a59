"""What NodeRestriction's rules depend on besides the request: upstream feature gates, one policy. Pure, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.k8s import feature_gates as fg
from app.k8s.feature_gates import DEFAULT_GATES, FeatureGates


class AudiencePolicy(enum.Enum):
    """What to do with a TokenRequest for one non-empty audience (zero audiences or "" always pass).

    Upstream allows it when the pod's volumes use the audience, else asks the
    authorizer; nodeauthz can check neither. ``ALLOW`` admits it (upstream's
    behaviour with the gate off; the in-tree plugin, when enabled, still checks).
    ``DEFAULT_ONLY`` refuses it, which also refuses legitimate custom audiences
    (service meshes, cloud workload identity, CSI token requests).
    """

    ALLOW = "allow"
    DEFAULT_ONLY = "default-only"


@dataclass(frozen=True)
class AdmissionOptions:
    """The gates the rules read (at the newest release's defaults) and the audience policy."""

    service_account_node_audience_restriction: bool = True
    single_audience: AudiencePolicy = AudiencePolicy.ALLOW
    recover_volume_expansion_failure: bool = True
    allow_insecure_kubelet_csrs: bool = False
    pod_certificate_requests: bool = True

    @classmethod
    def from_gates(cls, gates: FeatureGates, **others: AudiencePolicy) -> AdmissionOptions:
        return cls(
            service_account_node_audience_restriction=gates.enabled(
                fg.SERVICE_ACCOUNT_NODE_AUDIENCE_RESTRICTION
            ),
            recover_volume_expansion_failure=gates.enabled(fg.RECOVER_VOLUME_EXPANSION_FAILURE),
            allow_insecure_kubelet_csrs=gates.enabled(fg.ALLOW_INSECURE_KUBELET_CSRS),
            pod_certificate_requests=gates.enabled(fg.POD_CERTIFICATE_REQUEST),
            **others,
        )


DEFAULT_OPTIONS = AdmissionOptions.from_gates(DEFAULT_GATES)
