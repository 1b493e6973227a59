"""pods/status: the extended resource claim status may not change.

Upstream: ``plugin/pkg/admission/noderestriction/admission.go`` ``admitPodStatus`` and
``extendedResourceClaimStatusEqual`` (1.34, DRAExtendedResource): after the labels and the
resource claim statuses, a nil status differs from a set one, then the claim name and the request
mappings (``slices.Equal``: same order, same container, resource and request names) must match.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.admission.test_restriction import assert_allowed, assert_refused, pod, status_update

REFUSED = 'pods "mypod" is forbidden: node "mynode" cannot update extended resource claim status'
MAPPING = {"containerName": "c", "resourceName": "example.com/gpu", "requestName": "container-0-request-0"}
EXTENDED = {"resourceClaimName": "mypod-extended-resources-x7k2p", "requestMappings": [MAPPING]}


def with_extended(extended: Any) -> dict[str, Any]:
    p = pod("mypod")
    if extended is not None:
        p["status"]["extendedResourceClaimStatus"] = copy.deepcopy(extended)
    return p


@pytest.mark.parametrize(
    ("new", "old"),
    [
        (EXTENDED, None),
        (None, EXTENDED),
        ({}, None),  # a set status, even empty, differs from none
        ({**EXTENDED, "resourceClaimName": "other"}, EXTENDED),
        ({**EXTENDED, "requestMappings": [{**MAPPING, "requestName": "r2"}]}, EXTENDED),
        ({**EXTENDED, "requestMappings": [MAPPING, MAPPING]}, EXTENDED),
        (
            {**EXTENDED, "requestMappings": [MAPPING, {**MAPPING, "containerName": "d"}]},
            {**EXTENDED, "requestMappings": [{**MAPPING, "containerName": "d"}, MAPPING]},
        ),
    ],
    ids=["add", "remove", "add-empty", "claim-name", "request-name", "extra-mapping", "reordered"],
)
def test_changing_the_extended_claim_status_is_refused(new: Any, old: Any) -> None:
    assert_refused(status_update(with_extended(old), with_extended(new)), REFUSED)


def test_unchanged_extended_claim_status_is_allowed() -> None:
    old = with_extended(EXTENDED)
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Succeeded"
    assert_allowed(status_update(old, new))


def test_absent_and_empty_mapping_lists_are_equal() -> None:
    assert_allowed(
        status_update(
            with_extended({"resourceClaimName": "c"}),
            with_extended({"resourceClaimName": "c", "requestMappings": []}),
        )
    )


def test_resource_claim_statuses_are_checked_first() -> None:
    old = with_extended(None)
    new = with_extended(EXTENDED)
    new["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "c"}]
    assert_refused(
        status_update(old, new),
        'pods "mypod" is forbidden: node "mynode" cannot update resource claim statues',
    )
