"""A primary with the nodeauthz schema and a hot standby of it: PostgreSQL servers of the test's own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from app.graph.migrations import upgrade
from tests.pg_server import OwnServer, own_postgres

DATABASE = "nodeauthz"


@contextmanager
def migrated_primary() -> Iterator[OwnServer]:
    with own_postgres() as primary:
        migrated_database(primary, DATABASE)
        yield primary


def migrated_database(primary: OwnServer, name: str) -> str:
    """A new database on ``primary`` at the schema's head; its URL."""
    primary.sql(f'CREATE DATABASE "{name}"')
    upgrade(primary.url(name))
    return primary.url(name)


def caught_up(primary: OwnServer, standby: OwnServer, timeout: float = 30.0) -> None:
    """Until the standby has replayed everything the primary has flushed."""
    target = primary.sql("SELECT pg_current_wal_flush_lsn()::text")
    deadline = time.monotonic() + timeout
    while not standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.05)
