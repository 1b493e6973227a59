"""A writer in a process of its own, for tests that kill or pause it: ``python -m tests.ha.lease_holder``.

Arguments: database URL, holder, lease duration. It campaigns with a real
LeaderLoop, prints ``elected <epoch>`` once it holds the lease, then for each
``write <name>`` line on stdin writes one pod with the fence of that term and
prints ``wrote <name>`` or, if the fence is stale, ``refused <name>``.
"""

from __future__ import annotations

import sys
import threading

from app.graph.database import make_engine
from app.graph.derivation import derive
from app.graph.fence import Fence, LeaseLost, fixed_fence
from app.graph.store import GraphStore
from app.ha.leader_loop import LeaderLoop
from app.ha.lease import LeaseManager


def pod(name: str) -> dict[str, object]:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": "node-1"}}


def main(url: str, holder: str, duration: float) -> None:
    engine = make_engine(url)
    terms: list[Fence] = []
    elected = threading.Event()

    def on_elected(fence: Fence) -> None:
        terms.append(fence)
        elected.set()

    loop = LeaderLoop(
        LeaseManager(engine, holder=holder, duration=duration), on_elected=on_elected, on_deposed=lambda: None
    )
    loop.start()
    elected.wait()
    fence = terms[0]  # this term's fence, kept even after a deposition: stale writes must be refused
    store = GraphStore(engine, fence=fixed_fence(fence))
    print(f"elected {fence.epoch}", flush=True)
    for line in sys.stdin:
        name = line.split()[1]
        try:
            store.apply([derive(pod(name))])
            print(f"wrote {name}", flush=True)
        except LeaseLost:
            print(f"refused {name}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
