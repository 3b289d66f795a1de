"""Fixtures: a fresh database per test session on whichever server wcperf resolves.

The same resolution as the CLI: a configured URL, else the local server, else the
embedded one. Each session creates its own database (migrated to head), and its own
Redis key prefix; nothing it did not create is touched, and everything is dropped
at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib

from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_postgres, resolve_redis
from wcperf.migrate import alembic_driver
from wcperf.seed.district import District
from wcperf.seed.load import seed
from wcperf.settings import Settings

RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env(command="test")


@pytest.fixture(scope="session")
def server_url(settings: Settings) -> str:
    endpoint = resolve_postgres(settings)
    assert endpoint.url, endpoint.describe()
    return endpoint.url


def make_database(server_url: str, name: str, settings: Settings, target: str = "head") -> str:
    """A fresh database of this name, migrated to `target`."""
    url = admin.with_database(server_url, name)
    admin.drop_database(url)
    admin.ensure_database(url)
    with Database(url, settings) as db:
        alembic_driver.upgrade(db.engine, target)
    return url


@pytest.fixture(scope="session")
def database_url(server_url: str, settings: Settings) -> Iterator[str]:
    """A migrated, empty database for this test session."""
    url = make_database(server_url, f"wcperf_test_{RUN_ID}", settings)
    yield url
    admin.drop_database(url)


@pytest.fixture(scope="session")
def seeded_url(server_url: str, settings: Settings) -> Iterator[str]:
    """The baseline schema (no performance indexes) holding a small district (seed 42).

    Read-only: tests must not modify it.
    """
    url = make_database(server_url, f"wcperf_seeded_{RUN_ID}", settings, "0001_baseline")
    seed(url, District(5_000, 42))
    yield url
    admin.drop_database(url)


@pytest.fixture
def scratch_url(server_url: str, settings: Settings) -> Iterator[str]:
    """A migrated database of the test's own, for tests that write."""
    url = make_database(server_url, f"wcperf_scratch_{RUN_ID}_{uuid.uuid4().hex[:6]}", settings)
    yield url
    admin.drop_database(url)


@pytest.fixture
def district_url(server_url: str, settings: Settings) -> Iterator[str]:
    """A database of the test's own at the baseline, holding a small district."""
    url = make_database(
        server_url, f"wcperf_district_{RUN_ID}_{uuid.uuid4().hex[:6]}", settings, "0001_baseline"
    )
    seed(url, District(5_000, 42))
    yield url
    admin.drop_database(url)


@pytest.fixture
def db(database_url: str, settings: Settings) -> Iterator[Database]:
    with Database(database_url, replace(settings, command="test")) as database:
        yield database


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> str:
    endpoint = resolve_redis(settings)
    if endpoint.url is None:
        pytest.skip(f"no Redis: {endpoint.note}")
    return endpoint.url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"wcperf-test:{RUN_ID}:{uuid.uuid4().hex[:6]}:"
    yield prefix
    client = redis_lib.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def every_connection_held(db: Database, waiters: int) -> Iterator[None]:
    """Hold every pooled connection and queue `waiters` more requests behind them.

    Inside the block the pool reports them waiting; leaving it releases everything.
    """
    held = [db.pool.getconn() for _ in range(db.figures().max_size)]
    threads = [
        threading.Thread(target=lambda: db.pool.putconn(db.pool.getconn())) for _ in range(waiters)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while db.figures().waiting < waiters and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield
    finally:
        for conn in held:
            db.pool.putconn(conn)
        for t in threads:
            t.join(5)


SERVER_VARS = (
    "WCPERF_DATABASE_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "WCPERF_HOME",
    "WCPERF_LOCAL_PG",
    "WCPERF_LOCAL_REDIS",
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real `wcperf` entry point in a child process.

    Server variables of the calling environment are dropped, so each test says
    exactly which servers its child uses.
    """
    base = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    full_env = {**base, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "wcperf", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def bulk_template(server_url: str, settings: Settings) -> Iterator[str]:
    """A district at head for bulk jobs, cloned per test (never connected to itself).

    School 1 gets two more active nurses (room for 300 each) and an inactive one, so
    a nurse there can be balanced away.
    """
    url = make_database(server_url, f"wcperf_bulk_{RUN_ID}", settings)
    seed(url, District(5_000, 42))
    with admin.connect(url) as conn:
        conn.execute(
            "insert into users (school_id, email, first_name, last_name, role, is_active,"
            " max_workload) values"
            " (1, 'n1@example', 'Extra', 'One', 'nurse', true, 300),"
            " (1, 'n2@example', 'Extra', 'Two', 'nurse', true, 300),"
            " (1, 'n3@example', 'Extra', 'Gone', 'nurse', false, 300)"
        )
    yield url
    admin.drop_database(url)


@pytest.fixture
def bulk_url(bulk_template: str) -> Iterator[str]:
    """A database of the test's own: a copy of the bulk district."""
    url = admin.with_database(bulk_template, f"wcperf_bulkc_{RUN_ID}_{uuid.uuid4().hex[:6]}")
    admin.clone_database(bulk_template, url)
    yield url
    admin.drop_database(url)
