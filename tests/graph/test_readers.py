"""The PostgreSQL request-path reader survives its connections being killed (failover, restarts)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine, text

from app.graph.derivation import derive
from app.graph.dialects.postgresql import PostgresReader, asyncpg_dsn
from app.graph.store import GraphStore
from tests.builders import pod


def test_killed_connections_are_replaced(database_url: str, store: GraphStore) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite readers open a file; there is no server connection to lose")
    store.apply([derive(pod("web", "shop", "n1", secrets=("tls",)))])
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")

    async def scenario() -> list[object]:
        reader = await PostgresReader.open(asyncpg_dsn(database_url), pool_size=2)
        outcomes: list[object] = [(await reader.reach("n1", "secret", "shop", "tls")).found]
        with admin.connect() as conn:  # what a failover does to every open connection
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        try:
            await reader.reach("n1", "secret", "shop", "tls")
            outcomes.append("no error")
        except Exception as exc:  # noqa: BLE001 - the webhook turns this into allowed:false
            outcomes.append(type(exc).__name__)
        outcomes.append((await reader.reach("n1", "secret", "shop", "tls")).found)  # a fresh connection
        outcomes.append((await reader.reach("n2", "secret", "shop", "tls")).found)
        await reader.close()
        return outcomes

    try:
        first, failed, after, other = asyncio.run(scenario())
    finally:
        admin.dispose()
    assert first is True
    assert failed != "no error"  # the broken connection fails that one request (fail closed) ...
    assert after is True and other is False  # ... and is not handed out again
