"""The API resources nodeauthz watches: their groups, the versions it can read, and the kind each owns."""

from __future__ import annotations

from app.k8s.kinds import NODE, POD, PODCERTIFICATEREQUEST, PV, RESOURCESLICE, VOLUMEATTACHMENT

# resource name -> (API group, versions in order of preference, owner kind)
CANDIDATES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "pods": ("", ("v1",), POD),
    "nodes": ("", ("v1",), NODE),
    "persistentvolumes": ("", ("v1",), PV),
    "volumeattachments": ("storage.k8s.io", ("v1",), VOLUMEATTACHMENT),
    "resourceslices": ("resource.k8s.io", ("v1", "v1beta2", "v1beta1"), RESOURCESLICE),
    "podcertificaterequests": ("certificates.k8s.io", ("v1beta1", "v1alpha1"), PODCERTIFICATEREQUEST),
}
RESOURCE_NAMES: tuple[str, ...] = tuple(CANDIDATES)
