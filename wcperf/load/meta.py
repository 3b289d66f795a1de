"""What a load run was: when, which scenario, how many users and processes, which
wcperf and server, and how big the data was. Two results compare fairly only when
these agree; `loadtest compare` warns when they do not."""

from __future__ import annotations

import hashlib
import platform
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from psycopg import sql

from wcperf import __version__
from wcperf.db import admin
from wcperf.load.scenario import Scenario
from wcperf.platform import PLATFORM_TABLES

DATASET_DRIFT = 0.05  # row counts this far apart make two runs' datasets differ


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def describe(scenario: Scenario, database_url: str, *, processes: int, seed: int) -> dict[str, Any]:
    """The run's metadata, taken as it starts; `finish` adds its end."""
    file_digest = None
    if scenario.path is not None and scenario.path.is_file():
        file_digest = hashlib.sha256(scenario.path.read_bytes()).hexdigest()[:16]
    server, dataset = _server(database_url)
    return {
        "started_at": _iso(time.time()),
        "scenario": scenario.name,
        "scenario_digest": scenario.digest,  # what the users do: tasks and think time
        "scenario_file_sha256": file_digest,
        "users": scenario.users,
        "spawn_rate": scenario.spawn_rate,
        "duration_s": scenario.duration_s,
        "warmup_s": scenario.warmup_s,
        "processes": processes,
        "seed": seed,
        "wcperf_version": __version__,
        "python_version": platform.python_version(),
        # from its metadata, not `import locust`: that would monkey-patch this process
        "locust_version": _version("locust"),
        "server_version": server,
        "dataset": dataset,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def finish(meta: dict[str, Any]) -> dict[str, Any]:
    return meta | {"finished_at": _iso(time.time())}


_SIZES = """
select c.relname, c.reltuples::bigint, c.relpages
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = current_schema() and c.relkind = 'r' and c.relname = any(%s)
"""
EXACT_BELOW_PAGES = 2_000  # about 16 MB: a never-analysed table this small is counted


def _server(database_url: str) -> tuple[str | None, dict[str, int]]:
    """The server's version and the platform tables' row counts: the planner's own
    figure (exact after ANALYZE of a small table, an estimate on a large one), so a
    run on a production database reads no table whole before it starts. A table
    never analysed is counted only when it is small."""
    try:
        with admin.connect(database_url) as conn:
            version = str(conn.execute("show server_version").fetchone()[0])  # type: ignore[index]
            conn.execute("set statement_timeout = '5s'")
            counts: dict[str, int] = {}
            for table, estimate, pages in conn.execute(_SIZES, (list(PLATFORM_TABLES),)):
                if estimate >= 0:
                    counts[table] = int(estimate)
                elif pages < EXACT_BELOW_PAGES:
                    query = sql.SQL("select count(*) from {}").format(sql.Identifier(table))
                    counts[table] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
            return version, dict(sorted(counts.items()))
    except Exception:  # metadata must never fail the run it describes
        return None, {}


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Why two runs may not compare fairly, one sentence each; empty when they do."""
    said: list[str] = []
    if not before or not after:
        return ["one result has no run metadata (an older wcperf): scenario and data unchecked"]
    if before.get("scenario") != after.get("scenario"):
        said.append(f"different scenarios: {before.get('scenario')} and {after.get('scenario')}")
    elif before.get("scenario_digest") != after.get("scenario_digest"):
        said.append(f"scenario {after.get('scenario')} changed its tasks or think time")
    for key in ("users", "processes", "duration_s"):
        if before.get(key) != after.get(key):
            said.append(f"{key} differ: {before.get(key)} and {after.get(key)}")
    if before.get("server_version") != after.get("server_version"):
        said.append(
            f"PostgreSQL versions differ: {before.get('server_version')} and "
            f"{after.get('server_version')}"
        )
    a, b = before.get("dataset") or {}, after.get("dataset") or {}
    for table in sorted(set(a) | set(b)):
        x, y = a.get(table), b.get(table)
        if x is None or y is None or abs(x - y) > DATASET_DRIFT * max(x, y, 1):
            said.append(f"datasets differ: {table} had {x} rows, then {y}")
    return said
