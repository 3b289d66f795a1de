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
from wcperf.settings import Settings

RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


@contextmanager
def bench_database(name: str, target: str = "head") -> Iterator[str]:
    """A fresh database on the resolved server, migrated to `target`, dropped afterwards."""
    settings = Settings.from_env(command="bench")
    endpoint = resolve_postgres(settings)
    assert endpoint.url
    print(f"server: {endpoint.describe()}")
    url = admin.with_database(endpoint.url, name)
    admin.drop_database(url)
    admin.ensure_database(url)
    try:
        with Database(url, settings) as db:
            alembic_driver.upgrade(db.engine, target)
        yield url
    finally:
        admin.drop_database(url)


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}, indent=2))
    return path
