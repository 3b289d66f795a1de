"""Shared bench plumbing: a database of its own, and where results go."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_postgres
from wcperf.migrate import alembic_driver
from wcperf.seed.load import seed
from wcperf.settings import Settings

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


@contextmanager
def bench_database(
    name: str, students: int | None = None, *, migrate: bool = False
) -> Iterator[str]:
    """A fresh database on the resolved server, dropped afterwards: empty, or the platform's
    schema (its model indexes, not the 14) holding a seeded district of `students`, and
    with `migrate` the 14 built too."""
    settings = Settings.from_env(command="bench")
    endpoint = resolve_postgres(settings)
    assert endpoint.url
    print(f"server: {endpoint.describe()}")
    url = admin.with_database(endpoint.url, name)
    admin.drop_database(url)
    admin.ensure_database(url)
    try:
        if students:
            started = time.perf_counter()
            seed(url, students, 42)
            print(
                f"district of {students:,} students seeded in {time.perf_counter() - started:.0f} s"
            )
        if migrate:
            with Database(url, settings) as db:
                alembic_driver.upgrade(db.engine)
        yield url
    finally:
        admin.drop_database(url)


def student_keys(url: str, table: str = "bench_keys") -> int:
    """A numbered copy of the live students' keys, for floors (pgbench) that pick one at
    random by number: there is no arithmetic on UUIDs."""
    with admin.connect(url, autocommit=True) as conn:
        conn.execute(
            f"create unlogged table {table} as select row_number() over (order by id) as n, id"
            ' from students where "deletedAt" is null'
        )
        conn.execute(f"alter table {table} add primary key (n)")
        row = conn.execute(f"select count(*) from {table}").fetchone()
    assert row is not None
    return int(row[0])


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}, indent=2))
    return path
