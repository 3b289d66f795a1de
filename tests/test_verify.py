"""`migrate verify`: the platform's hot queries, as the load runs them, use their indexes."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from sqlalchemy.orm import Session

from tests.conftest import run_cli
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.load.operations import OPERATIONS, WRITES, Sample
from wcperf.migrate import alembic_driver
from wcperf.migrate.verify import NO_INDEXES, compiled, explain, sample_parameters, verify
from wcperf.observe.fingerprint import fingerprint
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.seed import names
from wcperf.settings import Settings
from wcperf.workload.queries import HOT_QUERIES, HotQuery

BIG_TABLES = ("health_records", "appointments")


def _table(q: HotQuery, sample: dict) -> str:
    return fingerprint(compiled(q, sample)[0]).table or ""


def test_every_performance_index_serves_a_declared_query() -> None:
    assert {q.index for q in HOT_QUERIES} - {None} == {
        s.name for s in alembic_driver.performance_indexes()
    }


def test_verify_explains_exactly_what_the_load_runs(seeded_url: str, settings: Settings) -> None:
    """The declarations behind the load's reads are the statements verify proves."""
    with Database(seeded_url, settings) as db:
        monitor = QueryMonitor()
        monitor.attach(db.engine)
        with Session(db.engine) as s:
            sample = Sample.read(s)
            rng = random.Random(7)
            for name, op in OPERATIONS.items():
                if name in WRITES or name in ("sleep_200ms", "point_read"):
                    continue
                for _ in range(40):  # every branch of the operations (by nurse, by name ...)
                    op(s, None, rng, sample)
                    s.rollback()
        ran = {st.fingerprint for st in monitor.queries()}
        monitor.detach()
        with admin.connect(seeded_url, autocommit=True) as conn:
            params = sample_parameters(conn)
    declared = {q.name: fingerprint(compiled(q, params)[0]).id for q in HOT_QUERIES}
    loaded = {name for name, fp in declared.items() if fp in ran}
    assert loaded >= {
        "student list",
        "student health timeline",
        "graduating students",
        "emergency-contact statistics",
        "nurse daily calendar",
        "daily appointment schedule",
        "medication search by name",
        "medications by form",
        "student detail",
    }


def test_before_the_migration_the_queries_meant_for_the_14_lack_them(seeded_url: str) -> None:
    """What --compare calls 'before' is what the database really did before."""
    with admin.connect(seeded_url, autocommit=True) as conn:
        params = sample_parameters(conn)
        verdicts = {v.query: v for v in verify(conn)}
        for q in HOT_QUERIES:
            if q.index is None:
                continue
            sql, bound = compiled(q, params)
            assert q.index not in explain(conn, sql, bound).indexes, q.name
            if _table(q, params) in BIG_TABLES and not q.also:
                assert not verdicts[q.name].ok, q.name
            assert explain(conn, sql, bound, NO_INDEXES).indexes == ()


def test_after_the_migration_each_query_uses_its_index(
    district_url: str, settings: Settings
) -> None:
    with Database(district_url, replace(settings, command="migrate")) as db:
        alembic_driver.upgrade(db.engine)
    with admin.connect(district_url, autocommit=True) as conn:
        params = sample_parameters(conn)
        verdicts = verify(conn, compare=True, repeat=1)
    assert [v.query for v in verdicts] == [q.name for q in HOT_QUERIES]
    for v, q in zip(verdicts, HOT_QUERIES, strict=True):
        assert v.ok, v.as_dict()
        assert v.before is not None and v.before.indexes == ()
        assert v.before.ms > 0 and v.after.ms > 0
        if q.index is None:
            continue
        assert v.usable
        if _table(q, params) in BIG_TABLES:
            assert v.chosen and set(v.after.indexes) & {q.index, *q.also}, v.as_dict()
            assert v.before.buffers > v.after.buffers  # the index reads fewer pages


def test_the_ilike_search_is_said_to_need_another_index(seeded_url: str) -> None:
    with admin.connect(seeded_url) as conn:
        found = {v.query: v for v in verify(conn, repeat=1)}
    search = found["medication search by name"]
    assert search.index is None and search.ok
    assert "ILIKE" in search.advice and "gin_trgm_ops" in search.advice


def test_cli_verify_compare_json_and_exit_codes(
    district_url: str, seeded_url: str, settings: Settings
) -> None:
    before = run_cli("--database-url", seeded_url, "migrate", "verify")
    assert before.returncode == 1
    with Database(district_url, replace(settings, command="migrate")) as db:
        alembic_driver.upgrade(db.engine)
    result = run_cli(
        "--database-url", district_url, "migrate", "verify", "--compare", "--repeat", "1", "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and len(data["queries"]) == len(HOT_QUERIES)
    assert all({"ms", "before_ms", "faster_pct", "plan"} <= q.keys() for q in data["queries"])
    # Sampled parameters (diagnosis codes, providers, medication names) stay out of it.
    providers = [f"{w} {k}" for w in names.PROVIDER_WORDS for k in names.PROVIDER_KINDS]
    medications = [m[0] for m in names.MEDICATIONS]
    leaked = [v for v in (*names.DIAGNOSIS_CODES, *providers, *medications) if v in result.stdout]
    assert leaked == []


@pytest.mark.parametrize("flag", ["--compare", ""])
def test_cli_verify_table(district_url: str, settings: Settings, flag: str) -> None:
    with Database(district_url, settings) as db:
        alembic_driver.upgrade(db.engine)
    args = ["-q", "--database-url", district_url, "migrate", "verify", "--repeat", "1"]
    result = run_cli(*args, *([flag] if flag else []), env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "idx_health_records_student_type_date" in result.stdout
    assert "none of the 14" in result.stdout and "gin_trgm_ops" in result.stdout
    assert ("% faster" in result.stdout) == bool(flag)
