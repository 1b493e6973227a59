"""A node may not change its own ``metadata.ownerReferences`` (CVE-2025-5187).

Upstream: ``plugin/pkg/admission/noderestriction/admission.go`` ``admitNode``, kubernetes#133470
(1.34.0; backported to 1.33.4, 1.32.8, 1.31.12): ``apiequality.Semantic.DeepEqual`` of the new and
old owner references, after the taint check and before the label check, on nodes and nodes/status.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.admission.test_restriction import (
    FORBIDDEN_LABELS,
    assert_allowed,
    assert_refused,
    node_obj,
    node_update,
    review,
)

REFUSED = 'nodes "mynode" is forbidden: node "mynode" is not allowed to modify ownerReferences'
OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "cm-uid"}


def with_owners(owners: list[dict[str, Any]] | None, **spec: Any) -> dict[str, Any]:
    n = node_obj(**spec)
    if owners is not None:
        n["metadata"]["ownerReferences"] = owners
    return n


@pytest.mark.parametrize("sub", ["", "status"])
@pytest.mark.parametrize(
    ("new", "old"),
    [
        ([OWNER], None),  # added: the garbage collector would delete the Node
        (None, [OWNER]),  # removed
        ([{**OWNER, "uid": "other-uid"}], [OWNER]),  # changed
        ([OWNER, {**OWNER, "name": "second"}], [OWNER]),  # one more
        ([{**OWNER, "controller": True}], [OWNER]),
        ([{**OWNER, "blockOwnerDeletion": False}], [OWNER]),  # *bool: false is not unset
    ],
    ids=["add", "remove", "change-uid", "append", "set-controller", "set-block-false"],
)
def test_changing_owner_references_is_refused(new: Any, old: Any, sub: str) -> None:
    assert_refused(node_update(with_owners(new), with_owners(old), sub=sub), REFUSED)


def test_unchanged_owner_references_are_allowed() -> None:
    assert_allowed(node_update(with_owners([OWNER]), with_owners([OWNER])))
    assert_allowed(node_update(with_owners(None), with_owners(None), sub="status"))


def test_empty_and_absent_owner_lists_are_equal() -> None:
    assert_allowed(node_update(with_owners([]), with_owners(None)))
    # Go's zero value: an absent string field equals "".
    assert_allowed(
        node_update(
            with_owners([{**OWNER, "uid": ""}]), with_owners([{k: v for k, v in OWNER.items() if k != "uid"}])
        )
    )


def test_taints_are_checked_first_and_labels_after() -> None:
    taint = [{"key": "k", "value": "A", "effect": "NoSchedule"}]
    assert_refused(
        node_update(with_owners([OWNER], taints=taint), with_owners(None)),
        'nodes "mynode" is forbidden: node "mynode" is not allowed to modify taints',
    )
    relabelled = with_owners([OWNER])
    relabelled["metadata"]["labels"] = FORBIDDEN_LABELS
    assert_refused(node_update(relabelled, with_owners(None)), REFUSED)


def test_node_create_with_owner_references_is_not_this_rule() -> None:
    assert_allowed(review("CREATE", "nodes", name="mynode", obj=with_owners([OWNER])))


def test_malformed_owner_reference_is_refused() -> None:
    bad = with_owners([{**OWNER, "controller": "yes"}])
    assert_refused(
        node_update(bad, with_owners([OWNER])),
        'nodes "mynode" is forbidden: malformed object: metadata.ownerReferences[0].controller: expected boolean',
    )
