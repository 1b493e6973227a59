"""``nodeauthz denials``: the denial report an operator reads before removing the ``system:nodes`` RBAC binding."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.cli.errors import UsageError
from app.cli.options import graph_connection
from app.graph.denials import DenialRow, query_denials, referenced_objects
from app.telemetry.logs import escape_controls

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "denials",
        help="which nodes were refused what, how often and why (the webhook's no-opinions), most frequent first",
    )
    p.add_argument("--since", default=None, help="only refusals last seen within this long, e.g. 90m, 1h, 7d")
    p.add_argument("--node", default=None, help="only this node")
    p.add_argument("--resource", default=None, help="only this resource, e.g. secrets")
    p.add_argument(
        "--explain", action="store_true",
        help="add whether anything in the graph uses each object at all (no: no pod of any node references it)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows (default 1000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_denials)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``7d``, ``2w`` or combinations such as ``1h30m``."""
    compact = text.strip().lower()
    if not compact or _DURATION.sub("", compact):
        raise UsageError(f"--since: {text!r} is not a duration such as 30m, 1h or 7d")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(compact)))


def cmd_denials(args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - parse_duration(args.since) if args.since is not None else None
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with graph_connection(args) as conn:
        rows = query_denials(conn, since=since, node=args.node, resource=args.resource, limit=args.limit)
        if args.explain:
            rows = referenced_objects(conn, rows)
    if args.json:
        doc = [_as_json(row, args.explain) for row in rows]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_table(rows, explain=args.explain)
    return 0


def _as_json(row: DenialRow, explain: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "node": row.key.node,
        "verb": row.key.verb,
        "resource": row.key.resource,
        "subresource": row.key.subresource,
        "namespace": row.key.namespace,
        "name": row.key.name,
        "reason": row.key.reason,
        "count": row.count,
        "firstSeen": row.first_seen.isoformat(),
        "lastSeen": row.last_seen.isoformat(),
    }
    if explain:
        doc["referenced"] = row.referenced
    return doc


def print_table(rows: list[DenialRow], *, explain: bool) -> None:
    if not rows:
        print("no refusals recorded")
        return
    header = ["COUNT", "NODE", "VERB", "RESOURCE", "OBJECT", "FIRST SEEN", "LAST SEEN"]
    if explain:
        header.append("USED")
    header.append("REASON")
    table = [header]
    for row in rows:
        k = row.key
        resource = f"{k.resource}/{k.subresource}" if k.subresource else k.resource
        obj = f"{k.namespace}/{k.name}" if k.namespace else k.name
        line = [
            str(row.count),
            k.node,
            k.verb,
            resource or "-",
            obj or "-",
            _time(row.first_seen),
            _time(row.last_seen),
        ]
        if explain:
            line.append({True: "yes", False: "no", None: "-"}[row.referenced])
        line.append(k.reason)
        table.append([escape_controls(cell) for cell in line])
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")
