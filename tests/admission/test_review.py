"""AdmissionReview parsing and rendering: what the apiserver sends, what it must get back."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.admission.review import (
    MAX_ADMISSION_REVIEW_BYTES,
    AdmissionError,
    GroupVersionKind,
    GroupVersionResource,
    parse_admission_review,
    render_admission_response,
)
from app.admission.verdict import Verdict

# A pods/status UPDATE as kube-apiserver 1.34 sends it to a v1 validating webhook.
REVIEW: dict[str, Any] = {
    "kind": "AdmissionReview",
    "apiVersion": "admission.k8s.io/v1",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "subResource": "status",
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "requestSubResource": "status",
        "name": "web-0",
        "namespace": "shop",
        "operation": "UPDATE",
        "userInfo": {
            "username": "system:node:node-1",
            "uid": "",
            "groups": ["system:nodes", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=ab"]},
        },
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0"},
            "spec": {"nodeName": "node-1"},
        },
        "oldObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0"},
            "spec": {"nodeName": "node-1"},
        },
        "dryRun": True,
        "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubelet"},
    },
}


def encode(review: Any) -> bytes:
    return json.dumps(review).encode()


def with_request(**changes: Any) -> bytes:
    review = copy.deepcopy(REVIEW)
    for key, value in changes.items():
        if value is ...:
            del review["request"][key]
        else:
            review["request"][key] = value
    return encode(review)


def test_parses_every_field_the_rules_use() -> None:
    req = parse_admission_review(encode(REVIEW))
    assert req.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert req.kind == GroupVersionKind("", "v1", "Pod")
    assert req.resource == GroupVersionResource("", "v1", "pods")
    assert (req.sub_resource, req.name, req.namespace, req.operation) == ("status", "web-0", "shop", "UPDATE")
    assert req.username == "system:node:node-1"
    assert req.groups == ("system:nodes", "system:authenticated")
    assert req.object is not None and req.object["spec"]["nodeName"] == "node-1"
    assert req.old_object is not None and req.old_object["kind"] == "Pod"
    assert req.dry_run is True
    assert req.options is not None and req.options["kind"] == "UpdateOptions"


def test_omitted_optional_fields_become_empty() -> None:
    # Go's omitempty drops these for a CREATE of a cluster-scoped object with generateName.
    body = with_request(
        subResource=...,
        name=...,
        namespace=...,
        oldObject=...,
        dryRun=...,
        options=...,
        userInfo={"username": "alice"},
    )
    req = parse_admission_review(body)
    assert (req.sub_resource, req.name, req.namespace) == ("", "", "")
    assert req.old_object is None and req.options is None and req.dry_run is False
    assert req.groups == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "admission review is not valid JSON"),
        (b"[]", "admission review must be a JSON object, got array"),
        (
            encode({**REVIEW, "apiVersion": "admission.k8s.io/v1beta1"}),
            "expected apiVersion 'admission.k8s.io/v1'",
        ),
        (
            encode({**REVIEW, "kind": "TokenReview"}),
            "and kind 'AdmissionReview', got 'admission.k8s.io/v1' and",
        ),
        (encode({k: v for k, v in REVIEW.items() if k != "request"}), "request is required"),
        (encode({**REVIEW, "request": []}), "request must be an object, got array"),
        (with_request(uid=...), "request.uid is required"),
        (with_request(uid=""), "request.uid must not be empty"),
        (with_request(uid=7), "request.uid must be a string, got number"),
        (with_request(operation=...), "request.operation is required"),
        (with_request(operation="PATCH"), "request.operation must be one of CONNECT, CREATE, DELETE, UPDATE"),
        (with_request(userInfo=...), "request.userInfo is required"),
        (
            with_request(userInfo={"username": "a", "groups": "system:nodes"}),
            "userInfo.groups must be an array",
        ),
        (with_request(userInfo={"username": ["a"]}), "request.userInfo.username must be a string, got array"),
        (with_request(kind=...), "request.kind is required"),
        (with_request(kind={"group": "", "version": "v1"}), "request.kind.kind is required"),
        (with_request(resource={"group": "", "version": "v1"}), "request.resource.resource is required"),
        (with_request(name=5), "request.name must be a string, got number"),
        (with_request(object="pod"), "request.object must be an object, got string"),
        (with_request(oldObject=[1]), "request.oldObject must be an object, got array"),
        (with_request(dryRun="true"), "request.dryRun must be a boolean, got string"),
        (with_request(options=1), "request.options must be an object, got number"),
    ],
)
def test_malformed_reviews_are_rejected_with_a_message(body: bytes, message: str) -> None:
    with pytest.raises(AdmissionError) as err:
        parse_admission_review(body)
    assert message in str(err.value)


def test_oversized_review_is_rejected_before_parsing() -> None:
    body = b" " * (MAX_ADMISSION_REVIEW_BYTES + 1)
    with pytest.raises(AdmissionError, match=f"the limit is {MAX_ADMISSION_REVIEW_BYTES} bytes"):
        parse_admission_review(body)


def test_admission_error_is_a_value_error() -> None:
    assert issubclass(AdmissionError, ValueError)


def test_allowed_response_has_no_status_and_no_patch() -> None:
    assert render_admission_response("u-1", Verdict(True)) == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


def test_refusal_carries_code_reason_and_message() -> None:
    rendered = render_admission_response("u-2", Verdict(False, 'pods "p" is forbidden: no'))
    assert rendered["response"] == {
        "uid": "u-2",
        "allowed": False,
        "status": {"code": 403, "reason": "Forbidden", "message": 'pods "p" is forbidden: no'},
    }
    assert "patch" not in rendered["response"] and "patchType" not in rendered["response"]


def test_not_found_refusal_keeps_404() -> None:
    rendered = render_admission_response("u-3", Verdict(False, 'pod "p" not found', 404))
    assert rendered["response"]["status"] == {
        "code": 404,
        "reason": "NotFound",
        "message": 'pod "p" not found',
    }
