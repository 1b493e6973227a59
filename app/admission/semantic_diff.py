"""Equality and a readable diff of Kubernetes objects as JSON. Pure, no I/O.

Stands in for ``apiequality.Semantic.DeepEqual`` and ``cmp.Diff``. Like the
former, an empty list or map equals an absent one (``null`` too); both objects
come from the apiserver's encoder, so everything else compares as plain JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DIFF_CHARS = 4000  # a refusal message, not a log: keep it bounded

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalize(value: Any) -> Any:
    """``value`` with null, empty lists and empty maps removed (recursively); None if nothing is left."""
    if isinstance(value, dict):
        out = {k: n for k, v in value.items() if (n := normalize(v)) is not None}
        return out or None
    if isinstance(value, list):
        items = [normalize(v) for v in value]
        return items or None
    return value


def semantic_equal(a: Any, b: Any) -> bool:
    return bool(normalize(a) == normalize(b))


def _child(path: str, key: str) -> str:
    if _IDENT.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _render(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            _walk(a.get(key), b.get(key), _child(path, key), out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _walk(a[i] if i < len(a) else None, b[i] if i < len(b) else None, f"{path}[{i}]", out)
        return
    if a is not None:
        out.append(f"-{path}: {_render(a)}")
    if b is not None:
        out.append(f"+{path}: {_render(b)}")


def structural_diff(old: Any, new: Any) -> str:
    """One ``-path: old`` / ``+path: new`` line per changed leaf, after ``normalize``; "" when equal."""
    lines: list[str] = []
    _walk(normalize(old), normalize(new), "", lines)
    text = "\n".join(lines)
    if len(text) > MAX_DIFF_CHARS:
        text = text[:MAX_DIFF_CHARS] + f"\n... ({len(text) - MAX_DIFF_CHARS} more characters)"
    return text
