"""SubjectAccessReview parsing and rendering, with bodies shaped as the API server's webhook sends them."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from app.authz.node_authorizer import ALLOW, NO_OPINION, Decision, PathQuery, decide, resolve
from app.authz.subject_access_review import (
    API_V1,
    API_V1BETA1,
    MAX_REVIEW_BYTES,
    ParsedReview,
    ReviewError,
    ReviewTooLarge,
    parse_review,
    render_response,
)
from app.k8s.attributes import FieldRequirement, RequestAttributes

# As k8s.io/apiserver's webhook authorizer encodes it (v1): empty strings omitted,
# metadata and status present, uid and extra carried along.
V1_LIST_PODS: dict[str, Any] = {
    "kind": "SubjectAccessReview",
    "apiVersion": "authorization.k8s.io/v1",
    "metadata": {"creationTimestamp": None},
    "spec": {
        "resourceAttributes": {
            "namespace": "ns0",
            "verb": "list",
            "version": "v1",
            "resource": "pods",
            "fieldSelector": {
                "requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["node0"]}]
            },
            "labelSelector": {"requirements": [{"key": "app", "operator": "Exists"}]},
        },
        "user": "system:node:node0",
        "groups": ["system:nodes", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=abc"]},
        "uid": "7d5b8c1e-0000-4000-8000-000000000000",
    },
    "status": {"allowed": False},
}

V1BETA1_GET_SECRET: dict[str, Any] = {
    "kind": "SubjectAccessReview",
    "apiVersion": "authorization.k8s.io/v1beta1",
    "metadata": {"creationTimestamp": None},
    "spec": {
        "resourceAttributes": {
            "namespace": "ns0",
            "verb": "get",
            "version": "v1",
            "resource": "secrets",
            "name": "s0",
        },
        "user": "system:node:node0",
        "group": ["system:nodes", "system:authenticated"],
    },
    "status": {"allowed": False},
}

V1_HEALTHZ: dict[str, Any] = {
    "kind": "SubjectAccessReview",
    "apiVersion": "authorization.k8s.io/v1",
    "metadata": {"creationTimestamp": None},
    "spec": {
        "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
        "user": "system:node:node0",
        "groups": ["system:nodes"],
    },
    "status": {"allowed": False},
}


def body(doc: Any) -> bytes:
    return orjson.dumps(doc)


def test_parse_v1_resource_review_as_sent() -> None:
    parsed = parse_review(body(V1_LIST_PODS))
    assert parsed == ParsedReview(
        API_V1,
        RequestAttributes(
            user="system:node:node0",
            groups=("system:nodes", "system:authenticated"),
            verb="list",
            resource_request=True,
            namespace="ns0",
            api_group="",
            api_version="v1",
            resource="pods",
            subresource="",
            name="",
            path="",
            field_selector=(FieldRequirement("spec.nodeName", "In", ("node0",)),),
            label_selector=(FieldRequirement("app", "Exists", ()),),
        ),
    )
    assert decide(parsed.attributes) == ALLOW


def test_parse_v1beta1_reads_group_key() -> None:
    parsed = parse_review(body(V1BETA1_GET_SECRET))
    assert parsed.api_version == API_V1BETA1
    assert parsed.attributes.groups == ("system:nodes", "system:authenticated")
    assert parsed.attributes.field_selector is None
    assert decide(parsed.attributes) == PathQuery("node0", "secret", "ns0", "s0")


def test_each_version_reads_only_its_own_groups_key() -> None:
    v1_with_beta_key = copy.deepcopy(V1_LIST_PODS)
    v1_with_beta_key["spec"]["group"] = v1_with_beta_key["spec"].pop("groups")
    assert parse_review(body(v1_with_beta_key)).attributes.groups == ()
    beta_with_v1_key = copy.deepcopy(V1BETA1_GET_SECRET)
    beta_with_v1_key["spec"]["groups"] = beta_with_v1_key["spec"].pop("group")
    parsed = parse_review(body(beta_with_v1_key))
    assert parsed.attributes.groups == ()
    assert decide(parsed.attributes) == NO_OPINION  # not a node without system:nodes


def test_parse_non_resource_review() -> None:
    attrs = parse_review(body(V1_HEALTHZ)).attributes
    assert attrs == RequestAttributes("system:node:node0", ("system:nodes",), "get", False, path="/healthz")


def test_absent_and_null_fields_read_as_empty() -> None:
    doc = copy.deepcopy(V1BETA1_GET_SECRET)
    doc["spec"]["resourceAttributes"] = {
        "verb": "get",
        "resource": "nodes",
        "name": None,
        "subresource": None,
    }
    doc["spec"]["group"] = None
    doc["spec"]["resourceAttributes"]["fieldSelector"] = None
    doc["spec"]["resourceAttributes"]["labelSelector"] = {}
    attrs = parse_review(body(doc)).attributes
    assert (attrs.namespace, attrs.name, attrs.subresource, attrs.api_group, attrs.groups) == (
        "",
        "",
        "",
        "",
        (),
    )
    assert attrs.field_selector is None and attrs.label_selector is None


def test_selector_details() -> None:
    doc = copy.deepcopy(V1_LIST_PODS)
    ra = doc["spec"]["resourceAttributes"]
    ra["fieldSelector"] = {"requirements": []}
    ra["labelSelector"] = {"rawSelector": "app=x"}
    attrs = parse_review(body(doc)).attributes
    assert attrs.field_selector == ()
    assert attrs.label_selector is None
    # A posted rawSelector is ignored, so it cannot stand in for spec.nodeName=node0.
    ra["fieldSelector"] = {"rawSelector": "spec.nodeName=node0"}
    attrs = parse_review(body(doc)).attributes
    assert attrs.field_selector is None
    assert decide(attrs) == Decision(False, "can only list/watch pods with spec.nodeName field selector")


def test_body_size_cap() -> None:
    raw = body(V1_LIST_PODS)
    padded = raw + b" " * (MAX_REVIEW_BYTES - len(raw))
    assert len(padded) == MAX_REVIEW_BYTES
    assert parse_review(padded).attributes.verb == "list"
    with pytest.raises(ReviewTooLarge, match="limit is 65536"):
        parse_review(padded + b" ")
    assert issubclass(ReviewTooLarge, ReviewError) and issubclass(ReviewError, ValueError)


def _with(base: dict[str, Any], path: tuple[str, ...], value: Any) -> bytes:
    """``base`` with the key at ``path`` set to ``value`` (or removed, for the sentinel ``...``)."""
    doc = copy.deepcopy(base)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return body(doc)


RA = ("spec", "resourceAttributes")
FS_REQS = (*RA, "fieldSelector", "requirements")
MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty body", b"", "malformed JSON"),
    ("truncated", b'{"apiVersion":', "malformed JSON"),
    ("not utf-8", b'{"a":"\xff"}', "malformed JSON"),
    ("trailing garbage", body(V1_HEALTHZ) + b"x", "malformed JSON"),
    ("array", b"[]", "must be a JSON object"),
    ("string", b'"x"', "must be a JSON object"),
    ("null", b"null", "must be a JSON object"),
    ("missing apiVersion", _with(V1_HEALTHZ, ("apiVersion",), ...), "apiVersion must be"),
    ("wrong group", _with(V1_HEALTHZ, ("apiVersion",), "authentication.k8s.io/v1"), "apiVersion must be"),
    ("unknown version", _with(V1_HEALTHZ, ("apiVersion",), "authorization.k8s.io/v2"), "apiVersion must be"),
    (
        "apiVersion not a string",
        _with(V1_HEALTHZ, ("apiVersion",), ["authorization.k8s.io/v1"]),
        "apiVersion",
    ),
    ("wrong kind", _with(V1_HEALTHZ, ("kind",), "TokenReview"), "kind must be 'SubjectAccessReview'"),
    ("missing kind", _with(V1_HEALTHZ, ("kind",), ...), "kind must be"),
    ("missing spec", _with(V1_HEALTHZ, ("spec",), ...), "missing spec"),
    ("null spec", _with(V1_HEALTHZ, ("spec",), None), "missing spec"),
    ("spec not an object", _with(V1_HEALTHZ, ("spec",), []), "spec must be an object"),
    ("both attribute kinds", _with(V1_HEALTHZ, RA, {"verb": "get", "resource": "pods"}), "exactly one of"),
    ("neither attribute kind", _with(V1_HEALTHZ, ("spec", "nonResourceAttributes"), ...), "exactly one of"),
    ("resourceAttributes not an object", _with(V1_LIST_PODS, RA, "pods"), "spec.resourceAttributes must be"),
    (
        "nonResourceAttributes not an object",
        _with(V1_HEALTHZ, ("spec", "nonResourceAttributes"), 1),
        "must be an",
    ),
    ("missing user", _with(V1_LIST_PODS, ("spec", "user"), ...), "missing spec.user"),
    ("empty user", _with(V1_LIST_PODS, ("spec", "user"), ""), "missing spec.user"),
    ("user not a string", _with(V1_LIST_PODS, ("spec", "user"), ["system:node:node0"]), "spec.user must be"),
    (
        "groups not a list",
        _with(V1_LIST_PODS, ("spec", "groups"), "system:nodes"),
        "spec.groups must be an array of strings",
    ),
    (
        "groups hold a number",
        _with(V1_LIST_PODS, ("spec", "groups"), ["system:nodes", 1]),
        "spec.groups[1] must be a string, got number",
    ),
    (
        "v1beta1 group not a list",
        _with(V1BETA1_GET_SECRET, ("spec", "group"), {}),
        "spec.group must be an array of strings",
    ),
    ("missing verb", _with(V1_LIST_PODS, (*RA, "verb"), ...), "missing spec.resourceAttributes.verb"),
    ("empty verb", _with(V1_LIST_PODS, (*RA, "verb"), ""), "missing spec.resourceAttributes.verb"),
    ("verb not a string", _with(V1_LIST_PODS, (*RA, "verb"), 7), "spec.resourceAttributes.verb must be"),
    (
        "missing non-resource verb",
        _with(V1_HEALTHZ, ("spec", "nonResourceAttributes", "verb"), ...),
        "missing spec.nonResourceAttributes.verb",
    ),
    ("path not a string", _with(V1_HEALTHZ, ("spec", "nonResourceAttributes", "path"), 1), "path must be"),
    ("name not a string", _with(V1_LIST_PODS, (*RA, "name"), 0), "spec.resourceAttributes.name must be"),
    ("namespace not a string", _with(V1_LIST_PODS, (*RA, "namespace"), True), "namespace must be"),
    (
        "fieldSelector not an object",
        _with(V1_LIST_PODS, (*RA, "fieldSelector"), "spec.nodeName=node0"),
        "fieldSelector must be an object",
    ),
    ("requirements not a list", _with(V1_LIST_PODS, FS_REQS, {}), "requirements must be a list"),
    ("requirement not an object", _with(V1_LIST_PODS, FS_REQS, ["spec.nodeName"]), "requirements[0] must be"),
    (
        "requirement without operator",
        _with(V1_LIST_PODS, FS_REQS, [{"key": "spec.nodeName", "values": ["n"]}]),
        "needs string key and operator",
    ),
    ("requirement key not a string", _with(V1_LIST_PODS, FS_REQS, [{"key": 1, "operator": "In"}]), "key and"),
    (
        "values not a list",
        _with(V1_LIST_PODS, FS_REQS, [{"key": "k", "operator": "In", "values": "node0"}]),
        "requirements[0].values must be an array of strings",
    ),
    (
        "labelSelector values hold null",
        _with(
            V1_LIST_PODS,
            (*RA, "labelSelector"),
            {"requirements": [{"key": "k", "operator": "In", "values": [None]}]},
        ),
        "labelSelector.requirements[0].values",
    ),
]


@pytest.mark.parametrize(("raw", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_reviews_are_rejected_with_a_clear_message(raw: bytes, message: str) -> None:
    with pytest.raises(ReviewError) as err:
        parse_review(raw)
    assert message in str(err.value)


@pytest.mark.parametrize("api_version", [API_V1, API_V1BETA1])
def test_render_allow(api_version: str) -> None:
    assert render_response(api_version, ALLOW) == {
        "apiVersion": api_version,
        "kind": "SubjectAccessReview",
        "status": {"allowed": True},
    }


def test_render_no_opinion_with_and_without_reason() -> None:
    denied = resolve(PathQuery("node0", "secret", "ns0", "s0"), False)
    assert render_response(API_V1, denied)["status"] == {
        "allowed": False,
        "reason": "no relationship found between node 'node0' and this object",
    }
    assert render_response(API_V1, NO_OPINION)["status"] == {"allowed": False}
    # An allow never carries a reason even if one was set.
    assert render_response(API_V1, Decision(True, "why"))["status"] == {"allowed": True}


def test_render_never_says_denied_and_serialises() -> None:
    for decision in (ALLOW, NO_OPINION, Decision(False, "x")):
        rendered = render_response(API_V1BETA1, decision)
        assert "denied" not in rendered["status"]
        assert orjson.loads(orjson.dumps(rendered)) == rendered


def test_render_rejects_unknown_api_version() -> None:
    with pytest.raises(ValueError, match="unsupported apiVersion"):
        render_response("authorization.k8s.io/v2", ALLOW)


def test_round_trip_answers_in_the_request_version() -> None:
    parsed = parse_review(body(V1BETA1_GET_SECRET))
    result = decide(parsed.attributes)
    assert isinstance(result, PathQuery)
    answer = render_response(parsed.api_version, resolve(result, False))
    assert answer["apiVersion"] == "authorization.k8s.io/v1beta1"
    assert answer["status"]["allowed"] is False
