"""The graph's write paths against the raw bulk insert of the same rows, in list pages, CPU and wall.

    python -m benchmarks.write_path --database-url URL [--preset large] [--nodes 1000] [--page 500]

WARNING: the given database is emptied (SQLite: the file is replaced) and left empty.

The sync benchmark's cluster (the preset's pods, one PV per pod) is built in memory and
derived once (timed: what the sync does before any write). Then, each into a fresh database,
in list pages of ``--page`` objects, one transaction per page as the sync writes them:
``GraphStore.apply`` (the per-object path, the previous release's list pages), the bulk path
(``app.graph.bulk_load.bulk_apply``, encoding included) and, last, ``raw_insert`` of the rows
the bulk path wrote (the floor). CPU is this process's (the database's own work is in it for
SQLite, in the server for PostgreSQL, so compare wall there); both beside the raw insert.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from app.graph.bulk_load import bulk_apply, kind_is_empty
from app.graph.database import make_engine, resolve_url
from app.graph.derivation import DerivedObject, derive
from app.graph.fence import fixed_fence
from app.graph.store import GraphStore
from app.ha.lease_record import unique_holder
from app.ha.one_shot_writer import hold_lease
from benchmarks.apiserver_proc import cluster
from benchmarks.raw_insert import fresh_database, raw_insert, read_rows
from benchmarks.shapes import PRESETS

KINDS = {"pods": "pod", "persistentvolumes": "pv"}


def timed(work: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def write(url: str, lists: dict[str, list[DerivedObject]], page: int, bulk: bool) -> tuple[float, float]:
    fresh_database(url)
    engine = make_engine(url)
    try:
        with hold_lease(engine, unique_holder("write-path")) as fence:
            store = GraphStore(engine, fence=fixed_fence(fence))

            def run() -> None:
                for kind, items in lists.items():
                    new = kind_is_empty(store, kind)
                    for start in range(0, len(items), page):
                        if bulk:
                            bulk_apply(store, items[start : start + page], assume_new=new)
                        else:
                            store.apply(items[start : start + page])

            return timed(run)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.write_path", description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True, help="emptied")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="large")
    ap.add_argument("--nodes", type=int, default=None, help="override the preset's node count")
    ap.add_argument("--page", type=int, default=500)
    args = ap.parse_args(argv)
    url = resolve_url(args.database_url)
    shape = PRESETS[args.preset] if args.nodes is None else replace(PRESETS[args.preset], nodes=args.nodes)
    raw: dict[str, list[dict[str, object]]] = {r: [] for r in KINDS}
    for resource, obj in cluster(shape, 0):
        raw[resource].append(obj)
    lists: dict[str, list[DerivedObject]] = {}

    def derive_all() -> None:
        for resource, items in raw.items():
            lists[KINDS[resource]] = [derive(o, KINDS[resource]) for o in items]

    derived = timed(derive_all)
    raw.clear()
    per_object = write(url, lists, args.page, bulk=False)
    bulk = write(url, lists, args.page, bulk=True)
    rows = read_rows(url)
    fresh_database(url)
    floor = timed(lambda: raw_insert(url, rows))
    fresh_database(url)
    counts = {t: rows.count(t) for t in rows.tables}
    print(
        f"write paths: {sum(map(len, lists.values()))} objects ({counts}), pages of {args.page}, "
        f"{url.split(':')[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':<34}{'wall s':>8}{'x raw':>7}{'CPU s':>8}{'x raw':>7}")
    for label, (wall, cpu) in (
        ("derive (before any write)", derived),
        ("GraphStore.apply per page", per_object),
        ("bulk path per page (+ encoding)", bulk),
        ("raw bulk insert (the floor)", floor),
    ):
        print(f"{label:<34}{wall:>8.2f}{wall / floor[0]:>7.2f}{cpu:>8.2f}{cpu / max(floor[1], 1e-9):>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
