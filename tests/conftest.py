"""Fixtures: fresh databases in the platform's own schema on whichever server wcperf resolves.

The same resolution as the CLI: a configured URL, else the local server, else the
embedded one. Each database is created by the test session itself, holding the
platform's tables as its ORM creates them (from wcperf's copy of that DDL), and
its own Redis key prefix; nothing it did not create is touched, and everything is
dropped at the end.
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

import numpy as np
import pytest
import redis as redis_lib

from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_postgres, resolve_redis
from wcperf.migrate import alembic_driver
from wcperf.platform.ddl import platform_ddl
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


DISTRICT = District(5_000, 42)  # what the seeded fixtures hold: find rows by `uuid_of`


def live_students(n: int, district: District = DISTRICT) -> list[uuid.UUID]:
    """The first `n` students (by ordinal) that are active and not soft-deleted."""
    ords = np.arange(20 * n, dtype=np.int64)
    keep = ords[~district.deleted(ords) & ~district.inactive(ords)][:n]
    return [district.uuid_of("students", int(i)) for i in keep]


def make_database(
    server_url: str,
    name: str,
    settings: Settings,
    *,
    students: int | None = None,
    migrate: bool = True,
    sync_shape: bool = False,
) -> str:
    """A fresh database of this name holding the platform's schema (seeded with a district
    of `students`, else empty), and wcperf migrated to head when `migrate`.

    `sync_shape`: the schema as the platform's `sync()` leaves it, the 14 indexes present.
    """
    url = admin.with_database(server_url, name)
    admin.drop_database(url)
    admin.ensure_database(url)
    if students:
        seed(url, students, 42, performance_indexes=sync_shape)
    else:
        ddl = platform_ddl(performance_indexes=sync_shape)
        with admin.connect(url, autocommit=True) as conn, conn.transaction():
            for stmt in (*ddl.pre_data, *ddl.post_data):
                conn.execute(stmt)  # type: ignore[call-overload]
    if migrate:
        with Database(url, settings) as db:
            alembic_driver.upgrade(db.engine)
    return url


@pytest.fixture(scope="session")
def database_url(server_url: str, settings: Settings) -> Iterator[str]:
    """The platform's empty tables, wcperf migrated to head, for this test session."""
    url = make_database(server_url, f"wcperf_test_{RUN_ID}", settings)
    yield url
    admin.drop_database(url)


@pytest.fixture(scope="session")
def seeded_url(server_url: str, settings: Settings) -> Iterator[str]:
    """The platform's schema without the 14 indexes, holding a small district (seed 42).

    Read-only: tests must not modify it.
    """
    url = make_database(
        server_url, f"wcperf_seeded_{RUN_ID}", settings, students=5_000, migrate=False
    )
    yield url
    admin.drop_database(url)


@pytest.fixture
def scratch_url(server_url: str, settings: Settings) -> Iterator[str]:
    """The platform's empty tables and wcperf at head, of the test's own, for tests that write."""
    url = make_database(server_url, f"wcperf_scratch_{RUN_ID}_{uuid.uuid4().hex[:6]}", settings)
    yield url
    admin.drop_database(url)


@pytest.fixture
def district_url(server_url: str, settings: Settings) -> Iterator[str]:
    """A database of the test's own: a small district, the 14 indexes not yet built."""
    url = make_database(
        server_url,
        f"wcperf_district_{RUN_ID}_{uuid.uuid4().hex[:6]}",
        settings,
        students=5_000,
        migrate=False,
    )
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
    # libpq's own: a child must connect only where its test says
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSERVICE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICEFILE",
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


EXTRA_NURSES = [uuid.UUID(int=0xE0000000_0000_4000_8000_000000000001 + i) for i in range(3)]


@pytest.fixture(scope="session")
def bulk_template(server_url: str, settings: Settings) -> Iterator[str]:
    """A district at head for bulk jobs, cloned per test (never connected to itself).

    The first school gets two more active nurses and an inactive one
    (`EXTRA_NURSES`), so a nurse there can be balanced away.
    """
    url = make_database(server_url, f"wcperf_bulk_{RUN_ID}", settings, students=5_000)
    school = DISTRICT.uuid_of("schools", 0)
    district = DISTRICT.uuid_of("districts", 0)
    with admin.connect(url) as conn:
        for n, (nurse, active) in enumerate(zip(EXTRA_NURSES, (True, True, False), strict=True)):
            conn.execute(
                'insert into users (id, email, password, "firstName", "lastName", role,'
                ' "isActive", "schoolId", "districtId", "createdAt", "updatedAt")'
                " values (%s, %s, '!', 'Extra', %s, 'NURSE', %s, %s, %s, now(), now())",
                (nurse, f"extra{n}@example", f"Nurse{n}", active, school, district),
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
