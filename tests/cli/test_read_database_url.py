"""``--read-database-url`` / ``--max-read-lag``: where they apply, and bad values (one line, exit 2)."""

from __future__ import annotations

import pytest

from app.web.settings import Settings
from tests.cli.test_webhook_commands import console

PG = "postgresql://nodeauthz@db/nodeauthz"


def test_the_read_url_travels_to_workers_through_the_environment() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://w@primary/nodeauthz",
        read_database_url="postgresql+psycopg://r@standby/nodeauthz",
        max_read_lag=3,
    )
    env = settings.to_env()
    assert env["NODEAUTHZ_READ_DATABASE_URL"] == "postgresql+psycopg://r@standby/nodeauthz"
    assert Settings.from_env(env) == settings
    # Like --database-url, a URL copied from psql tooling gets the psycopg 3 driver.
    from_env = Settings.from_env(
        {"NODEAUTHZ_DATABASE_URL": PG, "NODEAUTHZ_READ_DATABASE_URL": "postgresql://r@s/n"}
    )
    assert from_env.read_database_url == "postgresql+psycopg://r@s/n"
    assert Settings(database_url="sqlite:///x.db").read_database_url is None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--database-url", "sqlite:///x.db", "serve", "--read-database-url", PG],
            "--database-url is sqlite",
        ),
        (
            ["--database-url", PG, "serve", "--read-database-url", "sqlite:///x.db"],
            "--read-database-url is sqlite",
        ),
        (["--database-url", PG, "serve", "--read-database-url", PG, "--max-read-lag", "0"], "max read lag"),
        (
            ["--database-url", PG, "run", "--read-database-url", "sqlite:///r.db"],
            "--read-database-url is sqlite",
        ),
    ],
)
def test_bad_read_settings_are_one_line_and_exit_2(argv: list[str], says: str) -> None:
    out = console(*argv)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]  # after argparse's usage line, as for every usage error
    assert last.startswith("nodeauthz: error: ") and says in last
