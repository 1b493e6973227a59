"""No access log: one line per request cost more than the check itself (the audit lines say what matters)."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.cli.webhook_commands import load_sample_cluster, sample_review
from tests.web.test_stalls import serving


def test_serve_writes_no_access_log_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/graph.db"
    load_sample_cluster(url)
    log = tmp_path / "serve.log"
    with serving(url, log) as base:
        for node in ("node-a", "node-c"):  # one allowed, one refused (an audit line)
            httpx.post(f"{base}/authorize", json=sample_review(node, "shop", "web-tls"), timeout=10)
    text = log.read_text()
    assert "NODE DENY" in text  # the audit line is written...
    assert "uvicorn.access" not in text and '"POST /authorize' not in text  # ...the access line is not
