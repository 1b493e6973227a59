"""ServiceAccountNodeAudienceRestriction: upstream's test cases, each allowed or refused with upstream's text.

Upstream: ``plugin/pkg/admission/noderestriction/admission_test.go`` ("Service accounts tests with
token audience restrictions", 1.33+) and ``admission.go`` ``validateNodeServiceAccountAudience``. The
pods are raw JSON read through ``app.k8s.admission_facts`` (what the store keeps of them); the
authorizer is the in-memory ``Store.access`` table.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.admission.lookups import AccessAnswer
from app.admission.options import AdmissionOptions
from tests.admission.test_restriction import (
    NODE,
    SA,
    Store,
    assert_allowed,
    assert_refused,
    pod,
    token_request,
)

DRIVER = "com.example.csi.mydriver"
NOT_FOUND = (
    SA
    + 'audience "{0}" not found in pod spec volume, system:node:mynode is not authorized to request tokens for this audience'
)
GATE_OFF = AdmissionOptions(service_account_node_audience_restriction=False)


def projected_token(audience: str | None) -> dict[str, Any]:
    token: dict[str, Any] = {"path": "token", "expirationSeconds": 3607}
    if audience is not None:
        token["audience"] = audience
    return {"name": "psat", "projected": {"sources": [{"serviceAccountToken": token}]}}


def csi_volume(driver: str = DRIVER) -> dict[str, Any]:
    return {"name": "foo", "csi": {"driver": driver}}


def pvc_volume(claim: str = "pvclaim") -> dict[str, Any]:
    return {"name": "foo", "persistentVolumeClaim": {"claimName": claim}}


def ephemeral_volume() -> dict[str, Any]:
    template = {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    return {"name": "myvol", "ephemeral": {"volumeClaimTemplate": template}}


def store_with(*volumes: dict[str, Any], name: str = "mypod") -> Store:
    """Upstream's fixtures: CSIDriver ``com.example.csi.mydriver`` with token audience ``foo``, PVC
    ``pvclaim`` and the ephemeral PVC ``myephemeralpod-myvol`` bound to PV ``pvname`` of that driver,
    PVC ``pvclaim-azurefile`` bound to an in-tree azureFile PV; ``file.csi.azure.com`` also lists ``foo``."""
    store = Store()
    store.add_pod("ns", name, NODE, pod(name, volumes=list(volumes)))
    store.csidrivers = {DRIVER: ("foo",), "file.csi.azure.com": ("foo",)}
    store.pvcs = {("ns", "pvclaim"): "pvname", ("ns", "myephemeralpod-myvol"): "pvname"}
    store.pvcs[("ns", "pvclaim-azurefile")] = "pvname-azurefile"
    store.pvs = {"pvname": DRIVER, "pvname-azurefile": "file.csi.azure.com"}
    return store


def ask(audience: str, store: Store, name: str = "mypod", **kw: Any) -> bytes:
    return token_request(name, f"{name}-uid", audiences=[audience], **kw)


def test_audience_in_projected_token_volume_empty_audience() -> None:
    # "allow create of token when audience in PSAT volume ..., empty audience": the volume sets no
    # audience, so only the API server's own ("" or none requested) matches it.
    store = store_with(projected_token(None))
    assert_allowed(token_request("mypod", "mypod-uid", audiences=[]), store)
    assert_allowed(token_request("mypod", "mypod-uid", audiences=[""]), store)
    assert_refused(ask("foo", store), NOT_FOUND.format("foo"), store)


def test_audience_in_projected_token_volume_single_audience() -> None:
    assert_allowed(ask("foo", store_with(projected_token("foo"))), store_with(projected_token("foo")))


def test_multiple_audiences_are_refused() -> None:
    store = store_with(projected_token("foo"))
    body = token_request("mypod", "mypod-uid", audiences=["foo", "bar"])
    assert_refused(body, SA + "node may only request 0 or 1 audiences", store)


def test_audience_not_in_pod_spec_is_refused() -> None:
    store = store_with()
    assert_refused(ask("foo", store), NOT_FOUND.format("foo"), store)
    # "" must be matched too: a pod without the default token volume gives no free pass.
    assert_refused(token_request("mypod", "mypod-uid", audiences=[]), NOT_FOUND.format(""), store)


def test_inline_csi_driver_with_the_audience() -> None:
    store = store_with(csi_volume())
    assert_allowed(ask("foo", store), store)
    assert_refused(ask("bar", store), NOT_FOUND.format("bar"), store)


def test_inline_csi_driver_not_found() -> None:
    store = store_with(csi_volume())
    store.csidrivers = {}
    assert_refused(
        ask("foo", store),
        SA + f'error validating audience "foo": csidriver.storage.k8s.io "{DRIVER}" not found',
        store,
    )


def test_pvc_to_pv_to_csi_driver() -> None:
    store = store_with(pvc_volume())
    assert_allowed(ask("foo", store), store)
    assert_refused(ask("bar", store), NOT_FOUND.format("bar"), store)


def test_pvc_not_found() -> None:
    store = store_with(pvc_volume())
    store.pvcs = {}
    assert_refused(
        ask("foo", store),
        SA + 'error validating audience "foo": persistentvolumeclaim "pvclaim" not found',
        store,
    )


def test_pv_not_found() -> None:
    store = store_with(pvc_volume())
    store.pvs = {}
    assert_refused(
        ask("foo", store), SA + 'error validating audience "foo": persistentvolume "pvname" not found', store
    )


def test_ephemeral_volume_pvc_to_pv_to_csi_driver() -> None:
    store = store_with(ephemeral_volume(), name="myephemeralpod")
    assert_allowed(ask("foo", store, "myephemeralpod"), store)
    assert_refused(ask("bar", store, "myephemeralpod"), NOT_FOUND.format("bar"), store)


@pytest.mark.parametrize("missing", ["pvcs", "pvs"])
def test_a_lookup_error_does_not_matter_when_another_volume_has_the_audience(missing: str) -> None:
    # "... pvc not found should not be checked" / "... pv not found": PVC + inline CSI volumes.
    store = store_with(pvc_volume(), {"name": "bar", "csi": {"driver": DRIVER}})
    setattr(store, missing, {})
    assert_allowed(ask("foo", store), store)


@pytest.mark.parametrize("missing", ["pvcs", "pvs", "csidrivers"])
def test_gate_off_checks_nothing(missing: str) -> None:
    store = store_with(pvc_volume(), csi_volume())
    setattr(store, missing, {})
    assert_allowed(ask("foo", store), store, GATE_OFF)
    assert_allowed(token_request("mypod", "mypod-uid", audiences=["a", "b"]), store, GATE_OFF)
    assert not store.questions


def test_in_tree_pv_translated_to_csi() -> None:
    store = store_with(pvc_volume("pvclaim-azurefile"))
    assert_allowed(ask("foo", store), store)


def test_in_tree_inline_volume_translated_to_csi() -> None:
    volume = {"name": "foo", "azureFile": {"secretName": "secret", "shareName": "default"}}
    store = store_with(volume)
    assert_allowed(ask("foo", store), store)
    assert_refused(ask("bar", store), NOT_FOUND.format("bar"), store)


def test_several_lookup_errors_are_aggregated() -> None:
    store = store_with(pvc_volume("a"), pvc_volume("b"), csi_volume("gone.example.com"))
    store.pvcs = {}
    assert_refused(
        ask("foo", store),
        SA + 'error validating audience "foo": [persistentvolumeclaim "a" not found, '
        'persistentvolumeclaim "b" not found, csidriver.storage.k8s.io "gone.example.com" not found]',
        store,
    )


def test_the_authorizer_decides_an_audience_the_pod_does_not_use() -> None:
    # ServiceAccountNodeAudienceRestriction's escape hatch: RBAC verb request-serviceaccounts-token-audience.
    store = store_with()
    store.access[("request-serviceaccounts-token-audience", "registry.example", "mysa")] = AccessAnswer(True)
    assert_allowed(ask("registry.example", store), store)
    (question,) = store.questions
    assert (question.user, question.groups) == (
        "system:node:mynode",
        ("system:nodes", "system:authenticated"),
    )
    assert (question.namespace, question.api_group, question.api_version) == ("ns", "", "v1")
    assert (question.resource, question.name) == ("registry.example", "mysa")
    assert_refused(ask("other.example", store), NOT_FOUND.format("other.example"), store)


def test_an_authorizer_failure_refuses_with_the_cause() -> None:
    store = store_with()
    error = "SubjectAccessReview: no answer within 1s"
    store.access[("request-serviceaccounts-token-audience", "registry.example", "mysa")] = AccessAnswer(
        False, error=error
    )
    assert_refused(
        ask("registry.example", store),
        SA + 'audience "registry.example" not found in pod spec volume, error authorizing system:node:mynode '
        f"to request tokens for this audience: {error}",
        store,
    )


def test_an_allow_with_an_evaluation_error_still_allows() -> None:
    store = store_with()
    store.access[("request-serviceaccounts-token-audience", "x", "mysa")] = AccessAnswer(
        True, error="partial"
    )
    assert_allowed(ask("x", store), store)


def test_the_authorizer_is_not_asked_when_the_pod_uses_the_audience() -> None:
    store = store_with(projected_token("vault"))
    assert_allowed(ask("vault", store), store)
    assert not store.questions
