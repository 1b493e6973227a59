"""``nodeauthz reach``: a node's blast radius at scale, beside one check on the same connection.

    python -m benchmarks.node_reach --database-url URL [--preset large] [--pods-per-node 110] [--load]

``--load`` applies the preset through the graph store first; ``--pods-per-node`` keeps the preset's
pod count and reshapes it into fewer, fuller nodes (110 is the kubelet's default pod limit: the worst
node a real cluster has). Timed per sampled node: ``node_reach`` for every kind (what ``nodeauthz
reach --node N`` runs: one statement per kind), beside the baseline, one graph check (``REACH_SQL``
for one of the node's secrets) on the same connection. Also the whole command once, process start
included, as an operator sees it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from app.graph.database import make_read_engine
from app.graph.node_reach import node_reach
from app.graph.reach import has_path
from app.k8s.kinds import SECRET
from benchmarks.check_cost import load_shape
from benchmarks.shapes import PRESETS, Shape


def shape_for(preset: str, pods_per_node: int | None) -> Shape:
    shape = PRESETS[preset]
    if pods_per_node is None:
        return shape
    total = shape.nodes * shape.pods_per_node
    return replace(shape, nodes=max(1, round(total / pods_per_node)), pods_per_node=pods_per_node)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.node_reach", description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small")
    p.add_argument("--pods-per-node", type=int, default=None)
    p.add_argument("--load", action="store_true", help="apply the cluster first (into an empty database)")
    p.add_argument("--nodes", type=int, default=20, help="nodes sampled (default 20)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    shape = shape_for(args.preset, args.pods_per_node)
    print(
        f"cluster: {shape.nodes} nodes x {shape.pods_per_node} pods = {shape.nodes * shape.pods_per_node} pods"
    )
    if args.load:
        print(f"load: {load_shape(args.database_url, shape, args.seed):.1f} s")
    engine = make_read_engine(args.database_url)
    rng = random.Random(args.seed)
    with engine.connect() as conn:
        names = [r[0] for r in conn.exec_driver_sql("SELECT name FROM vertices WHERE kind = 'node'")]
        sample = rng.sample(names, min(args.nodes, len(names)))
        node_reach(conn, sample[0])  # warm the cache, as a second run would be
        reach_ms, check_us, objects = [], [], []
        for node in sample:
            started = time.perf_counter()
            grants = node_reach(conn, node)
            reach_ms.append((time.perf_counter() - started) * 1000)
            objects.append(len({g.obj for g in grants}))
            secret = next(g.obj for g in grants if g.obj.kind == SECRET)
            started = time.perf_counter()
            assert has_path(conn, node, *secret).found
            check_us.append((time.perf_counter() - started) * 1e6)
    engine.dispose()
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "app", "--database-url", args.database_url, "reach", "--node", sample[0]]
    subprocess.run(cmd, check=True, capture_output=True)
    command_s = time.perf_counter() - started
    print(f"nodes sampled: {len(sample)}; objects readable per node: median {statistics.median(objects):.0f}")
    print(
        f"node_reach, all kinds:  median {statistics.median(reach_ms):8.1f} ms   max {max(reach_ms):8.1f} ms"
    )
    print(
        f"baseline, one check:    median {statistics.median(check_us):8.1f} us   max {max(check_us):8.1f} us"
    )
    print(f"`nodeauthz reach --node {sample[0]}` end to end (process start included): {command_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
