"""Request attributes as the authorizer sees them, and node identity. Pure, no I/O.

Mirrors upstream's ``authorizer.Attributes`` (only what the Node authorizer reads)
and ``pkg/auth/nodeidentifier`` (spec section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One selector requirement as a SubjectAccessReview carries it.

    ``operator`` is the SAR spelling (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``);
    the API server sends a field selector ``key=value`` as ``In`` with one value.
    """

    key: str
    operator: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What was asked, by whom. ``resource_request`` False means a non-resource URL (``path``).

    ``field_selector``/``label_selector`` are None when the request carried none
    (the API server sends them only for list/watch/deletecollection, and only
    when its ``AuthorizeWithSelectors`` gate is on).
    """

    user: str
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    field_selector: tuple[FieldRequirement, ...] | None = None
    label_selector: tuple[FieldRequirement, ...] | None = None


def node_identity(user: str, groups: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """``(node_name, is_node)`` exactly as upstream's ``NodeIdentity``.

    A node is a user named ``system:node:<name>`` in the ``system:nodes`` group.
    The name may be empty (``system:node:``) or contain anything, ``:`` included;
    the caller must treat an empty name as an unidentifiable node.
    """
    if not user.startswith(NODE_USER_PREFIX):
        return "", False
    if NODES_GROUP not in groups:
        return "", False
    return user[len(NODE_USER_PREFIX) :], True
