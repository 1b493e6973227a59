"""Crash-to-takeover: SIGKILL the writer replica, time until the survivor has synced a new pod.

WARNING: every given database is emptied (SQLite: the file is replaced).

    python -m benchmarks.takeover --database-url sqlite:////tmp/t.db \\
        --database-url postgresql://postgres@127.0.0.1:5432/takeover --rounds 5

Two ``nodeauthz run`` replicas with the default 15 s lease on the ``small``
cluster. Each round kills the writer's whole session (webhook and writer child,
as a crashed pod), creates a pod bound to a node at once, and polls the
survivor's ``/authorize`` every 10 ms until that node may read the pod's
secret: the time a change waits for a new writer. Also reported: when the
lease row showed the survivor's epoch.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, select

from app.graph.database import make_engine, resolve_url
from app.graph.schema import writer_lease
from benchmarks.apiserver_proc import ApiServerProcess
from benchmarks.raw_insert import fresh_database
from benchmarks.shapes import PRESETS
from benchmarks.sync_procs import Replica, allowed, review

RESOURCES = "pods,nodes,persistentvolumes,volumeattachments"


def lease(engine: Engine) -> tuple[str, int] | None:
    with engine.connect() as conn:
        row = conn.execute(select(writer_lease.c.holder, writer_lease.c.epoch)).first()
    return None if row is None else (row.holder, row.epoch)


def one_round(url: str, api: ApiServerProcess, work: Path, n: int) -> tuple[float, float]:
    fresh_database(url)
    engine = make_engine(url)
    replicas = [Replica(url, api.kubeconfig, RESOURCES, f"r{n}-{x}", work / f"r{n}-{x}.log") for x in "ab"]
    try:
        for r in replicas:
            r.wait_ready(120)
        held = lease(engine)
        assert held is not None
        writer = next(r for r in replicas if r.holder == held[0])
        survivor = next(r for r in replicas if r is not writer)
        node, secret = "takeover-node", f"takeover-secret-{n}"
        # The replicas started together, so their loops tick in step: kill at a random phase.
        time.sleep(random.uniform(1.0, 2.0))
        os.killpg(writer.pid, signal.SIGKILL)
        killed = time.monotonic()
        api.create(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"takeover-{n}", "namespace": "takeover", "uid": f"takeover-uid-{n}"},
                "spec": {"nodeName": node, "volumes": [{"name": "s", "secret": {"secretName": secret}}]},
            },
        )
        leased_at: float | None = None
        body = review(node, "takeover", secret)
        while not allowed(survivor.client, body):
            if leased_at is None and lease(engine) == (survivor.holder, held[1] + 1):
                leased_at = time.monotonic() - killed
            if time.monotonic() - killed > 60:
                raise RuntimeError(f"no takeover within 60 s:\n{survivor.tail()}")
            time.sleep(0.01)
        synced = time.monotonic() - killed
        return (leased_at if leased_at is not None else synced), synced
    finally:
        for r in replicas:
            r.stop(10)
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    random.seed(9)
    with tempfile.TemporaryDirectory(prefix="takeover-") as tmp:
        work = Path(tmp)
        with ApiServerProcess(PRESETS["small"], 1, kubeconfig=work / "kubeconfig") as api:
            print(f"{os.cpu_count()} cores; lease 15 s; small cluster {api.counts}")
            for url in map(resolve_url, args.database_url):
                rounds = [one_round(url, api, work, n) for n in range(args.rounds)]
                leased, synced = [r[0] for r in rounds], [r[1] for r in rounds]
                print(
                    f"{url.split(':')[0]}: kill -> survivor holds the lease: median {statistics.median(leased):.2f} s, "
                    f"max {max(leased):.2f} s; kill -> new pod served: median {statistics.median(synced):.2f} s, "
                    f"max {max(synced):.2f} s ({args.rounds} rounds)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
