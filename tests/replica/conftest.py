"""The cluster the replica tests sync from: a fake API server with two nodes and one pod."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import node, pod
from tests.fake_apiserver import FakeApiServer


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, Path]]:
    with FakeApiServer() as server:
        server.create("nodes", node("n1"))
        server.create("nodes", node("n2"))
        server.create("pods", pod("web", "shop", "n1", secrets=("web-tls",)))
        yield server, server.write_kubeconfig(tmp_path / "kubeconfig")
