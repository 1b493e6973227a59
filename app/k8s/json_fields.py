"""Typed reads of Kubernetes objects and review bodies as raw JSON. Pure, no I/O.

One accessor set for everything that reads JSON: derivation of edges, the
SubjectAccessReview and AdmissionReview parsers and NodeRestriction's object
checks. JSON ``null`` counts as absent everywhere, as it does for Go's decoder
(a null pointer field is nil, a null string is ""). A field present with the
wrong JSON type raises ``FieldError``, which knows the field's path, what was
expected and what was found, so each caller can phrase it for its audience.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_ARTICLES = {"object": "an object", "array of strings": "an array of strings", "boolean": "a boolean"}


class FieldError(ValueError):
    """A field has the wrong JSON type (or is missing); ``str()`` is ``<path>: expected <what>``."""

    def __init__(self, path: str, expected: str, got: str = "") -> None:
        super().__init__(f"{path}: expected {expected}")
        self.path = path
        self.expected = expected
        self.got = got

    def sentence(self) -> str:
        """The same fact for a protocol error: ``request.uid must be a string, got number``."""
        text = f"{self.path} must be {_ARTICLES.get(self.expected, 'a ' + self.expected)}"
        return f"{text}, got {self.got}" if self.got else text


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as error messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def get_map(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    """``obj[key]`` as an object, None when absent or null."""
    value = obj.get(key)
    # type() first: JSON gives dicts, and the ABC isinstance check is the slow path.
    if value is None or type(value) is dict or isinstance(value, Mapping):
        return value
    raise FieldError(join(path, key), "object", json_type(value))


def get_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    """``obj[key]`` as a string, "" when absent or null."""
    value = obj.get(key)
    if value is None:
        return ""
    if type(value) is str or isinstance(value, str):
        return value
    raise FieldError(join(path, key), "string", json_type(value))


def get_str_list(obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    """``obj[key]`` as a list of strings, () when absent or null."""
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FieldError(join(path, key), "array of strings", json_type(value))
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise FieldError(f"{join(path, key)}[{i}]", "string", json_type(item))
    return tuple(value)


def get_optional_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    """``obj[key]`` as Go's ``*bool``: None when absent or null, so ``false`` and unset differ."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise FieldError(join(path, key), "boolean", json_type(value))


def get_bool(obj: Mapping[str, Any], key: str, path: str) -> bool:
    """``obj[key]`` as a boolean, False when absent or null."""
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FieldError(join(path, key), "boolean", json_type(value))
    return value


def iter_objects(
    obj: Mapping[str, Any], key: str, path: str, *, nulls_as_empty: bool = False
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield ``(item path, item)`` for a list of objects.

    A null item decodes to Go's zero value: skipped by default (it holds no
    reference), or yielded as ``{}`` with ``nulls_as_empty`` where the zero
    value itself means something (an unknown volume type, a list's length).
    """
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        raise FieldError(join(path, key), "list", json_type(value))
    base = join(path, key)
    for i, item in enumerate(value):
        if item is None:
            if nulls_as_empty:
                yield f"{base}[{i}]", {}
            continue
        if type(item) is not dict and not isinstance(item, Mapping):
            raise FieldError(f"{base}[{i}]", "object", json_type(item))
        yield f"{base}[{i}]", item
