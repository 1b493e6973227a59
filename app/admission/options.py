"""The upstream feature gates NodeRestriction's rules depend on. Pure, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
    """Upstream feature gates the rules depend on, at their Kubernetes 1.34 defaults."""

    service_account_node_audience_restriction: bool = True
    single_audience: AudiencePolicy = AudiencePolicy.ALLOW
    recover_volume_expansion_failure: bool = True
    allow_insecure_kubelet_csrs: bool = False


DEFAULT_OPTIONS = AdmissionOptions()
