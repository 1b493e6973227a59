"""podcertificaterequests: every branch of upstream's ``admitPodCertificateRequest``, with its text.

Upstream: ``plugin/pkg/admission/noderestriction/admission.go`` (1.34+) and its table cases ("allow
node1 create PCR for pod on node1", "deny ... for pod on node2", nonexistent pod, pod UID, node UID,
service account name and UID, mirror pod). The signer check (kubernetes#140006) follows its release
note; its text is nodeauthz's (README).
"""

from __future__ import annotations

from typing import Any

import pytest

from app.admission.lookups import AccessAnswer
from app.admission.options import AdmissionOptions
from tests.admission.test_restriction import NODE, Store, assert_allowed, assert_refused, pod, review

PREFIX = 'podcertificaterequests.certificates.k8s.io "web-0-x7k2p" is forbidden: '
SIGNER = "example.com/foo"
IN_STORE = " (no record in the nodeauthz store)"


def pcr(node: str = NODE, **changes: str) -> dict[str, Any]:
    spec = {
        "signerName": SIGNER,
        "podName": "mypod",
        "podUID": "mypod-uid",
        "serviceAccountName": "default",
        "serviceAccountUID": "sa-uid",
        "nodeName": node,
        "nodeUID": f"{node}-uid",
        "maxExpirationSeconds": 86400,
        "pkixPublicKey": "MCowBQYDK2VwAyEA",
        "proofOfPossession": "c2ln",
        **changes,
    }
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": "web-0-x7k2p", "namespace": "ns"},
        "spec": spec,
    }


def create(obj: dict[str, Any], operation: str = "CREATE", sub: str = "") -> bytes:
    return review(operation, "podcertificaterequests", sub=sub, name="web-0-x7k2p", namespace="ns", obj=obj)


def mounting(signer: str = SIGNER, *, mirror: bool = False, sa: str = "default") -> Store:
    """mypod on mynode, service account ``default`` (uid sa-uid), mounting ``signer``'s pod certificate."""
    store = Store()
    volume = {
        "name": "certs",
        "projected": {"sources": [{"podCertificate": {"signerName": signer, "keyType": "ED25519"}}]},
    }
    store.add_pod("ns", "mypod", NODE, pod("mypod", mirror=mirror, serviceAccountName=sa, volumes=[volume]))
    store.service_accounts[("ns", "default")] = "sa-uid"
    return store


def test_a_pod_certificate_for_a_pod_on_the_node_is_allowed() -> None:
    store = mounting()
    assert_allowed(create(pcr()), store)
    assert not store.questions


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1", "v1"])
def test_every_served_version_is_checked_alike(version: str) -> None:
    obj = pcr() | {"apiVersion": f"certificates.k8s.io/{version}"}
    body = create(obj).replace(b'"version": "v1beta1"', f'"version": "{version}"'.encode())
    assert f'"version": "{version}"'.encode() in body
    assert_allowed(body, mounting())
    wrong = create(pcr("othernode") | {"apiVersion": f"certificates.k8s.io/{version}"})
    assert_refused(
        wrong.replace(b'"version": "v1beta1"', f'"version": "{version}"'.encode()),
        PREFIX + 'PodCertificateRequest.Spec.NodeName="othernode", which is not the requesting node "mynode"',
        mounting(),
    )


def test_gate_off_refuses_every_request() -> None:
    off = AdmissionOptions(pod_certificate_requests=False)
    assert_refused(create(pcr()), PREFIX + "PodCertificateRequest feature gate is disabled", mounting(), off)


def test_only_create_without_subresource() -> None:
    assert_refused(create(pcr(), operation="UPDATE"), PREFIX + "unexpected operation UPDATE", mounting())
    assert_refused(create(pcr(), operation="DELETE"), PREFIX + "unexpected operation DELETE", mounting())
    assert_refused(create(pcr(), sub="status"), PREFIX + "unexpected subresource status", mounting())


def test_node_name_must_be_the_requesting_node() -> None:
    assert_refused(
        create(pcr("othernode")),
        PREFIX + 'PodCertificateRequest.Spec.NodeName="othernode", which is not the requesting node "mynode"',
        mounting(),
    )


def test_node_uid_must_be_the_running_node() -> None:
    assert_refused(
        create(pcr(nodeUID="old-uid")),
        'PodCertificateRequest for pod "ns/mypod" names node UID "old-uid", inconsistent with the running '
        'node ("mynode-uid")',
        mounting(),
        code=500,
    )


def test_node_not_stored() -> None:
    store = mounting()
    store.nodes = {}
    assert_refused(
        create(pcr()),
        'while retrieving node "mynode" named in the PodCertificateRequest: node "mynode" not found'
        + IN_STORE,
        store,
        code=404,
    )


def test_pod_must_exist() -> None:
    assert_refused(
        create(pcr(podName="nonexistent-pod")),
        'while retrieving pod "ns/nonexistent-pod" named in the PodCertificateRequest: pod "nonexistent-pod" '
        "not found" + IN_STORE,
        mounting(),
        code=404,
    )


def test_pod_uid_must_match() -> None:
    assert_refused(
        create(pcr(podUID="other-uid")),
        'PodCertificateRequest for pod "ns/mypod" contains pod UID ("other-uid") which differs from running '
        'pod "mypod-uid"',
        mounting(),
        code=500,
    )


def test_pod_must_run_on_the_node() -> None:
    assert_refused(
        create(pcr(podName="otherpod", podUID="otherpod-uid")),
        PREFIX + 'pod "ns/otherpod" is not running on node "mynode" named in the PodCertificateRequest',
        mounting(),
    )


def test_mirror_pods_get_no_certificates() -> None:
    assert_refused(create(pcr()), PREFIX + 'pod "ns/mypod" is a mirror pod', mounting(mirror=True))


def test_service_account_name_must_be_the_pods() -> None:
    assert_refused(
        create(pcr(serviceAccountName="other")),
        PREFIX
        + 'PodCertificateRequest for pod "ns/mypod" contains serviceAccountName ("other") that differs '
        'from running pod ("default")',
        mounting(),
    )


def test_service_account_must_be_stored() -> None:
    store = mounting()
    store.service_accounts = {}
    assert_refused(
        create(pcr()),
        'while retrieving service account "ns/default" named in the PodCertificateRequest: serviceaccount '
        '"default" not found' + IN_STORE,
        store,
        code=404,
    )


def test_service_account_uid_must_match() -> None:
    assert_refused(
        create(pcr(serviceAccountUID="old-sa-uid")),
        'PodCertificateRequest for pod "ns/mypod" names service account UID "old-sa-uid", which differs from '
        'the running service account ("sa-uid")',
        mounting(),
        code=500,
    )


def test_a_signer_the_pod_does_not_mount_needs_the_authorizer() -> None:
    store = mounting("example.com/other")
    message = (
        PREFIX
        + 'signer "example.com/foo" not found in pod spec volume, system:node:mynode is not authorized '
        "to request pod certificates for this signer"
    )
    assert_refused(create(pcr()), message, store)
    (question,) = store.questions
    assert (question.verb, question.resource, question.name, question.namespace) == (
        "request-podcertificate-signer",
        SIGNER,
        "default",
        "ns",
    )
    store.access[("request-podcertificate-signer", SIGNER, "default")] = AccessAnswer(True)
    assert_allowed(create(pcr()), store)


def test_an_authorizer_failure_refuses_with_the_cause() -> None:
    store = mounting("example.com/other")
    store.access[("request-podcertificate-signer", SIGNER, "default")] = AccessAnswer(False, error="HTTP 503")
    assert_refused(
        create(pcr()),
        PREFIX
        + 'signer "example.com/foo" not found in pod spec volume, error authorizing system:node:mynode '
        "to request pod certificates for this signer: HTTP 503",
        store,
    )


def test_non_nodes_are_not_restricted() -> None:
    body = review(
        "CREATE", "podcertificaterequests", name="p", namespace="ns", obj=pcr(), user="bob", groups=[]
    )
    assert_allowed(body, Store())
