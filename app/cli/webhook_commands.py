"""``nodeauthz serve``, ``check`` and ``demo``: the authorization webhook from the command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shlex
from importlib import resources
from typing import Any

from app.cli.errors import CommandError, UsageError
from app.cli.options import add_authorizer_flags, add_gates_flags, add_serving_flags, settings_from_args
from app.graph.database import make_engine
from app.graph.fence import fixed_fence
from app.graph.migrations import upgrade
from app.graph.reach import Reader
from app.graph.readers import open_reader
from app.graph.store import GraphStore
from app.ha.lease_record import unique_holder
from app.ha.one_shot_writer import LeaseHeld, hold_lease
from app.ha.readiness import CORE_RESOURCES, required_resources
from app.k8s.attributes import NODE_USER_PREFIX, NODES_GROUP, FieldRequirement, RequestAttributes
from app.sync.files import apply_loaded, load_file
from app.web.authorize import FAILURE_PREFIX, decide_with_graph
from app.web.server import run_server
from app.web.settings import Settings, parse_list

SELECTOR_VERBS = ("list", "watch", "deletecollection")
SAMPLE_CLUSTER = "sample-cluster.json"
DEMO_DATABASE_URL = "sqlite:///nodeauthz-demo.db"
_FIELD_OPS = (("!=", "NotIn"), ("==", "In"), ("=", "In"))


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="serve the authorization webhook (POST /authorize)")
    add_serving_flags(serve)
    add_authorizer_flags(serve)
    serve.add_argument(
        "--require-synced", metavar="RESOURCES", default=None,
        help="/readyz stays 503 until a live writer (`nodeauthz run` or `sync` on this database) has "
        f"completed an initial list of each (default {','.join(CORE_RESOURCES)} and the resources the gates' "
        "admission look-ups read; `none`: database and "
        "schema only; env NODEAUTHZ_REQUIRE_SYNCED)",
    )  # fmt: skip
    serve.set_defaults(func=_serve)

    check = subparsers.add_parser(
        "check", help="decide one request offline, as the webhook would (exit 0 yes, 1 no)"
    )
    check.add_argument("--user", required=True, help="e.g. system:node:node-1")
    check.add_argument(
        "--group", action="append", default=[],
        help="repeatable; default for system:node:* users: system:nodes, system:authenticated",
    )  # fmt: skip
    check.add_argument("--verb", required=True)
    check.add_argument("--resource", help="e.g. secrets (a resource request)")
    check.add_argument("--api-group", default="", help='e.g. storage.k8s.io (default "", the core group)')
    check.add_argument("--subresource", default="")
    check.add_argument("--namespace", default="")
    check.add_argument("--name", default="")
    check.add_argument(
        "--field-selector", action="append", default=[],
        help="e.g. spec.nodeName=node-1 (=, == or !=; comma-separated or repeated)",
    )  # fmt: skip
    check.add_argument("--path", help="a non-resource URL, e.g. /healthz (instead of --resource)")
    add_gates_flags(check)
    check.set_defaults(func=_check)

    demo = subparsers.add_parser(
        "demo",
        help="load a small sample cluster into nodeauthz-demo.db (or --database-url; never "
        "NODEAUTHZ_DATABASE_URL's database) and serve it",
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8443)
    demo.set_defaults(func=_demo)


def _serve(args: argparse.Namespace) -> int:
    requires = serve_requires_synced(args)
    settings = settings_from_args(args, require_synced=requires)  # None: from the environment
    if requires is None and not os.environ.get(Settings.env_name("require_synced")):
        # The default follows the gates: NodeRestriction's look-ups need their resources listed too.
        settings = dataclasses.replace(
            settings, require_synced=required_resources((), settings.feature_gates)
        )
    run_server(settings)
    return 0


def serve_requires_synced(args: argparse.Namespace) -> tuple[str, ...] | None:
    """What ``serve``'s /readyz waits for: a webhook that has never seen the cluster takes no traffic.

    The flag, else None: ``NODEAUTHZ_REQUIRE_SYNCED`` (``Settings.from_env`` reads it), else the core
    resources and those the enabled gates' look-ups read (``required_resources``), whose marks only a
    writer's completed list (or later watch) writes.
    """
    return None if args.require_synced is None else parse_list(args.require_synced)


# -- check ------------------------------------------------------------------------------------


def parse_field_selector(text: str) -> list[FieldRequirement]:
    """``k=v``, ``k==v``, ``k!=v`` (comma-separated) as the API server sends them: In / NotIn, one value."""
    reqs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        # "!=" before "==" before "=": each later operator is a substring of an earlier one.
        match = next(((part.partition(op), sar_op) for op, sar_op in _FIELD_OPS if op in part), None)
        if match is None or not match[0][0].strip():
            raise UsageError(f"--field-selector: {part!r} is not key=value, key==value or key!=value")
        (key, _, value), sar_op = match
        reqs.append(FieldRequirement(key.strip(), sar_op, (value.strip(),)))
    return reqs


def attributes_from_args(args: argparse.Namespace) -> RequestAttributes:
    groups = tuple(args.group)
    if not groups and args.user.startswith(NODE_USER_PREFIX):
        groups = (NODES_GROUP, "system:authenticated")
    if args.path is not None:
        resource_flags = (args.resource, args.api_group, args.subresource, args.namespace, args.name)
        if any(resource_flags) or args.field_selector:
            raise UsageError("--path (a non-resource request) cannot be combined with resource flags")
        return RequestAttributes(
            user=args.user, groups=groups, verb=args.verb, resource_request=False, path=args.path
        )
    if not args.resource:
        raise UsageError("one of --resource or --path is required")
    fields = [req for text in args.field_selector for req in parse_field_selector(text)]
    if fields and args.verb not in SELECTOR_VERBS:
        raise UsageError(f"--field-selector is only sent for verbs {', '.join(SELECTOR_VERBS)}")
    name = args.name
    if not name and args.verb in ("list", "watch"):
        # The API server names the object for an exact metadata.name field selector.
        name = next((r.values[0] for r in fields if r.key == "metadata.name" and r.operator == "In"), "")
    return RequestAttributes(
        user=args.user,
        groups=groups,
        verb=args.verb,
        resource_request=True,
        namespace=args.namespace,
        api_group=args.api_group,
        resource=args.resource,
        subresource=args.subresource,
        name=name,
        field_selector=tuple(fields) if fields else None,
    )


async def _check_async(attrs: RequestAttributes, settings: Settings) -> tuple[bool, str]:
    opened: list[Reader] = []

    async def get_reader() -> Reader:
        opened.append(await open_reader(settings.database_url, pool_size=1))
        return opened[-1]

    try:
        decision = await decide_with_graph(
            attrs, get_reader, gates=settings.feature_gates, timeout=settings.check_timeout
        )
    finally:
        for reader in opened:
            await reader.close()
    return decision.allowed, decision.reason


def _check(args: argparse.Namespace) -> int:
    attrs = attributes_from_args(args)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("nodeauthz.webhook").setLevel(logging.CRITICAL)  # a failure is reported below, once
    allowed, reason = asyncio.run(_check_async(attrs, settings_from_args(args)))
    if reason.startswith(FAILURE_PREFIX):  # not an answer: never let it look like a refusal
        raise CommandError(f"{reason} (is the database reachable and migrated? see `nodeauthz stats`)")
    if allowed:
        print("yes")
        return 0
    print(f"no - {reason}" if reason else "no")
    return 1


# -- demo -------------------------------------------------------------------------------------


def load_sample_cluster(url: str) -> int:
    """Migrate the database and apply the bundled sample cluster; returns the objects loaded."""

    upgrade(url)
    with resources.as_file(resources.files("app") / "samples" / SAMPLE_CLUSTER) as path:
        loaded = load_file(str(path))
    engine = make_engine(url)
    try:
        with hold_lease(engine, unique_holder("nodeauthz-demo")) as fence:
            apply_loaded(GraphStore(engine, fence=fixed_fence(fence)), loaded)
    except LeaseHeld as exc:
        raise CommandError(
            f"{exc}; demo loads its sample only into a database no writer is syncing"
        ) from None
    finally:
        engine.dispose()
    return len(loaded.objects)


def sample_review(node: str, namespace: str, name: str, resource: str = "secrets") -> dict[str, Any]:
    """A SubjectAccessReview shaped as the API server posts it (v1)."""
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "get",
                "version": "v1",
                "resource": resource,
                "name": name,
            },
            "user": f"system:node:{node}",
            "groups": ["system:nodes", "system:authenticated"],
        },
        "status": {"allowed": False},
    }


def curl_command(url: str, review: dict[str, Any]) -> str:
    body = json.dumps(review, separators=(",", ":"))
    return f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def _demo(args: argparse.Namespace) -> int:
    # Its own file unless --database-url says otherwise, whatever NODEAUTHZ_DATABASE_URL says: the
    # sample's fake nodes must never land in a real cluster's database.
    args.database_url = args.database_url or DEMO_DATABASE_URL
    settings = settings_from_args(args)
    count = load_sample_cluster(settings.database_url)
    url = f"http://{settings.host}:{settings.port}/authorize"
    print(f"Loaded {count} objects of the sample cluster (3 nodes). Once the server is up, try:\n")
    print("# node-a runs shop/web-7d4b9-x2k8f, which mounts secret shop/web-tls: allowed")
    print(curl_command(url, sample_review("node-a", "shop", "web-tls")) + "\n")
    print("# node-c runs no pod using it: refused (no opinion, with upstream's reason)")
    print(curl_command(url, sample_review("node-c", "shop", "web-tls")) + "\n", flush=True)
    run_server(settings)
    return 0
