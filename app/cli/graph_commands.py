"""Graph commands: ``migrate``, ``load``, ``explain``, ``reach``, ``stats``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError

from app.cli.errors import CommandError, UsageError
from app.cli.options import database_url, first_line, graph_connection, newer_schema, require_schema
from app.graph.bulk_load import BulkLoad
from app.graph.database import make_engine
from app.graph.dialects.base import MigrationLockTimeout
from app.graph.explain import find_paths, graph_stats
from app.graph.fence import LeaseLost, fixed_fence
from app.graph.migrations import head_revision, upgrade
from app.graph.node_reach import REACHABLE_KINDS, node_reach
from app.graph.reach import has_path
from app.graph.store import GraphStore
from app.graph.write_results import ApplyResult
from app.ha.lease_record import unique_holder
from app.ha.one_shot_writer import LeaseHeld, hold_lease
from app.k8s.kinds import CLUSTER_SCOPED, NODE, VertexKey, resolve_kind
from app.sync.files import FilePages, LoadError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("migrate", help="bring the database schema to the latest revision")
    p.set_defaults(func=cmd_migrate)

    p = subparsers.add_parser("load", help="apply Kubernetes objects from files as if the informers saw them")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON (List or object) or YAML; - for stdin")
    p.set_defaults(func=cmd_load)

    p = subparsers.add_parser("explain", help="show the path(s) from an object to a node")
    p.add_argument("--node", required=True)
    p.add_argument(
        "--kind", required=True, help="secret, configmap, pvc, pv, pod, resourceclaim, sa, va, ..."
    )
    p.add_argument("--namespace", "-n", default="")
    p.add_argument("--name", required=True)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser(
        "reach", help="every object a node may read now, with the pod (or object) that grants each"
    )
    p.add_argument("--node", required=True)
    p.add_argument("--kind", default=None, help="only this kind: secret, configmap, pvc, pv, sa, ...")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_reach)

    p = subparsers.add_parser("stats", help="counts of vertices, edges and objects by kind")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)


def cmd_migrate(args: argparse.Namespace) -> int:
    if logging.getLogger().level <= logging.INFO:
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # show each step taken
    url = database_url(args)
    newer = newer_schema(url)
    if newer is not None:  # an older release's migration Job, run after a newer one
        problem = newer[1]
        if problem is not None:
            raise CommandError(problem)
        print(
            f"schema at revision {newer[0]}, newer than this version's {head_revision()}, which still serves on it"
        )
        return 0
    try:
        upgrade(url)
    except DBAPIError as exc:
        raise CommandError(
            f"cannot migrate the database: {first_line(exc.orig or exc)} (check --database-url)"
        ) from None
    except (MigrationLockTimeout, OSError) as exc:  # the lock, or a SQLite directory it cannot use
        raise CommandError(f"cannot migrate the database: {exc}") from None
    print(f"schema at revision {head_revision()}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    url = database_url(args)
    require_schema(url)
    engine = make_engine(url)
    try:
        with hold_lease(engine, unique_holder("nodeauthz-load")) as fence:
            return _load_files(GraphStore(engine, fence=fixed_fence(fence)), args.files)
    except LeaseHeld as exc:
        raise CommandError(f"{exc}; load writes only into a database no writer is syncing") from None
    except LeaseLost as exc:
        raise CommandError(f"stopped: {exc} (a writer took the lease during the load)") from None
    finally:
        engine.dispose()


def _load_files(store: GraphStore, sources: list[str]) -> int:
    failed = 0
    for source in sources:
        result = ApplyResult()
        try:
            # A file streams through in bounded batches, graph rows and NodeRestriction facts all in
            # one transaction: a bad item (or any error) rolls the whole file back.
            with FilePages(source) as pages, BulkLoad(store) as bulk:
                for page in pages:
                    result.add(bulk.apply_rows(page))
        except LoadError as exc:
            print(f"nodeauthz: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        applied = ", ".join(f"{n} {k}" for k, n in sorted(pages.kinds.items())) or "nothing"
        skipped = ", ".join(f"{n} {k}" for k, n in sorted(pages.skipped.items()))
        print(
            f"{source}: applied {applied} ({result.written} written, {result.unchanged} unchanged)"
            + (f"; skipped {skipped}" if skipped else "")
        )
    return 1 if failed else 0


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        kind = resolve_kind(args.kind)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    namespace = "" if kind in CLUSTER_SCOPED else args.namespace
    if kind not in CLUSTER_SCOPED and not namespace:
        raise UsageError(f"--namespace is required for {kind}")
    if kind == NODE:
        raise UsageError("--kind node: a node reaches only itself; pick the object it reads")
    target = VertexKey(kind, namespace, args.name)
    with graph_connection(args) as conn:
        reach = has_path(conn, args.node, kind, namespace, args.name)
        paths, more = find_paths(conn, args.node, target)
    if args.json:
        doc = {
            "node": args.node,
            "object": target._asdict(),
            "reachable": reach.found,
            "truncated": reach.truncated,
            "paths": [[v._asdict() for v in path] for path in paths],
            "morePaths": more,
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif reach.found:
        print(f"node {args.node} may reach {target}:")
        for path in paths:
            print("  " + " -> ".join(str(v) for v in path))
        if more:
            print(f"  (more paths; showing the first {len(paths)})")
    else:
        print(f"no path from {target} to node {args.node}")
        if reach.truncated:
            print("  (the walk hit its depth bound; the graph is deeper than any upstream builds)")
    return 0 if reach.found else 1


def cmd_reach(args: argparse.Namespace) -> int:
    kinds = REACHABLE_KINDS
    if args.kind is not None:
        try:
            kinds = (resolve_kind(args.kind),)
        except ValueError as exc:
            raise UsageError(f"--kind: {exc}") from exc
        if kinds[0] == NODE:
            raise UsageError("--kind node: a node reaches only itself; pick the kind it reads")
    with graph_connection(args) as conn:
        grants = node_reach(conn, args.node, kinds)
    if args.json:
        doc = {
            "node": args.node,
            "objects": [{**g.obj._asdict(), "via": g.via._asdict()} for g in grants],
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif grants:
        objects = len({g.obj for g in grants})
        print(f"node {args.node} may read {objects} objects:")
        width = max(len(str(g.obj)) for g in grants)
        for g in grants:
            print(f"  {str(g.obj):<{width}}  via {g.via}" if g.via != g.obj else f"  {g.obj}")
    else:
        print(f"node {args.node} may read nothing through the graph")
    return 0 if grants else 1


def cmd_stats(args: argparse.Namespace) -> int:
    with graph_connection(args) as conn:
        stats = graph_stats(conn)
    if args.json:
        sys.stdout.write(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    for section in ("objects", "vertices", "edges"):
        counts: dict[str, int] = stats[section]  # type: ignore[assignment]
        print(f"{section}: {sum(counts.values())}")
        for k, n in counts.items():
            print(f"  {k:<40} {n}")
    sync: dict[str, dict[str, object]] = stats["sync"]  # type: ignore[assignment]
    print(f"sync: {len(sync)} resources")
    for resource, state in sync.items():
        print(
            f"  {resource:<24} rv={state['resourceVersion']} by {state['writer']} (epoch {state['epoch']}) at {state['syncedAt']}"
        )
    unstored: list[dict[str, str]] = stats["unstored"]  # type: ignore[assignment]
    print(f"set aside (the database refused them; they grant nothing): {len(unstored)}")
    for item in unstored:
        where = f"{item['namespace']}/{item['name']}" if item["namespace"] else item["name"]
        print(
            f"  {item['kind']} {where} rv={item['resourceVersion']} at {item['setAsideAt']}: {item['reason']}"
        )
    return 0
