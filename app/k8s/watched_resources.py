"""The API resources nodeauthz watches: their groups, the versions it can read, and the kind each owns."""

from __future__ import annotations

from app.k8s.kinds import (
    CSIDRIVER,
    NODE,
    POD,
    PODCERTIFICATEREQUEST,
    PV,
    PVC,
    RESOURCESLICE,
    SERVICEACCOUNT,
    VOLUMEATTACHMENT,
)

# resource name -> (API group, versions in order of preference, owner kind)
CANDIDATES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "pods": ("", ("v1",), POD),
    "nodes": ("", ("v1",), NODE),
    "persistentvolumes": ("", ("v1",), PV),
    "volumeattachments": ("storage.k8s.io", ("v1",), VOLUMEATTACHMENT),
    "resourceslices": ("resource.k8s.io", ("v1", "v1beta2", "v1beta1"), RESOURCESLICE),
    # certificates.k8s.io/v1 from 1.37 (GA), v1beta1 1.35-1.36, v1alpha1 1.34: the newest served wins.
    "podcertificaterequests": ("certificates.k8s.io", ("v1", "v1beta1", "v1alpha1"), PODCERTIFICATEREQUEST),
    # NodeRestriction's lookups only (no edges): the audience check and PodCertificateRequests.
    "serviceaccounts": ("", ("v1",), SERVICEACCOUNT),
    "persistentvolumeclaims": ("", ("v1",), PVC),
    "csidrivers": ("storage.k8s.io", ("v1",), CSIDRIVER),
}
RESOURCE_NAMES: tuple[str, ...] = tuple(CANDIDATES)
