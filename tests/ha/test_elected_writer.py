"""The elected writer writes only under the fence it holds now; deposed, it writes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from app.graph.derivation import derive
from app.graph.fence import LeaseLost
from app.graph.schema import objects
from app.ha.elected_writer import ElectedWriter, WriterOptions
from tests.builders import pod
from tests.fake_apiserver import FakeApiServer


@pytest.fixture
def writer(database_url: str, tmp_path: Path) -> Iterator[ElectedWriter]:
    with FakeApiServer() as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        options = WriterOptions(
            database_url=database_url, holder="w", kubeconfig=str(kubeconfig), lease_duration=3
        )
        elected = ElectedWriter(options)
        yield elected
        elected.loop.stop()
        elected.api.close()
        elected.engine.dispose()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def count_pods(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(objects).where(objects.c.kind == "pod")
            ).scalar_one()
        )


def test_a_deposed_writer_cannot_write_what_it_was_about_to(writer: ElectedWriter, engine: Engine) -> None:
    """Before the fence was required, a deposed writer's store got "no fence" and wrote unchecked:
    a batch derived before the deposition was committed after a newer writer had synced."""
    writer.loop.start()
    # Elected, and the term's store in place (the loop holds the fence a moment before on_elected runs).
    eventually(lambda: writer.loop.fence is not None and writer._worker is not None)
    writer.store.apply([derive(pod("before", "ns", "n1"))])
    writer.loop.stop()  # deposed and released, as when a renewal fails
    assert writer.loop.fence is None
    with pytest.raises(LeaseLost, match="not the writer"):
        writer.store.apply([derive(pod("stale", "ns", "n1"))])
    assert count_pods(engine) == 1
