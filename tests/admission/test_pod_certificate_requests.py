"""podcertificaterequests: upstream's checks the request answers, then fail closed.

Upstream: ``plugin/pkg/admission/noderestriction/admission.go`` ``admitPodCertificateRequest``
(1.34+). The pod's service account and mirror flag and the ServiceAccount's UID are not in
nodeauthz's store yet, so a request that passes the request-only checks is refused.
"""

from __future__ import annotations

from typing import Any

from app.admission.options import AdmissionOptions
from app.admission.pod_certificate_requests import UNVERIFIABLE
from tests.admission.test_restriction import assert_allowed, assert_refused, review

PREFIX = 'podcertificaterequests.certificates.k8s.io "web-0-x7k2p" is forbidden: '


def pcr(node: str = "mynode") -> dict[str, Any]:
    return {
        "apiVersion": "certificates.k8s.io/v1beta1",
        "kind": "PodCertificateRequest",
        "metadata": {"name": "web-0-x7k2p", "namespace": "ns"},
        "spec": {
            "signerName": "example.com/foo",
            "podName": "mypod",
            "podUID": "mypod-uid",
            "serviceAccountName": "default",
            "serviceAccountUID": "sa-uid",
            "nodeName": node,
            "nodeUID": f"{node}-uid",
            "maxExpirationSeconds": 86400,
        },
    }


def create(obj: dict[str, Any], operation: str = "CREATE", sub: str = "") -> bytes:
    return review(operation, "podcertificaterequests", sub=sub, name="web-0-x7k2p", namespace="ns", obj=obj)


def test_gate_off_refuses_every_request() -> None:
    off = AdmissionOptions(pod_certificate_requests=False)
    assert_refused(create(pcr()), PREFIX + "PodCertificateRequest feature gate is disabled", options=off)


def test_only_create_without_subresource() -> None:
    assert_refused(create(pcr(), operation="UPDATE"), PREFIX + "unexpected operation UPDATE")
    assert_refused(create(pcr(), operation="DELETE"), PREFIX + "unexpected operation DELETE")
    assert_refused(create(pcr(), sub="status"), PREFIX + "unexpected subresource status")


def test_node_name_must_be_the_requesting_node() -> None:
    assert_refused(
        create(pcr("othernode")),
        PREFIX + 'PodCertificateRequest.Spec.NodeName="othernode", which is not the requesting node "mynode"',
    )


def test_a_request_for_the_own_node_is_refused_until_the_store_can_verify_it() -> None:
    assert_refused(create(pcr()), PREFIX + UNVERIFIABLE)


def test_non_nodes_are_not_restricted() -> None:
    body = review(
        "CREATE", "podcertificaterequests", name="p", namespace="ns", obj=pcr(), user="bob", groups=[]
    )
    assert_allowed(body)
