"""`migrate verify`: the hot queries use their indexes, and --compare times both plans."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.conftest import run_cli
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.migrate.verify import (
    HOT_QUERIES,
    NO_INDEXES,
    HotQuery,
    explain,
    sample_parameters,
    verify,
)
from wcperf.seed import names
from wcperf.settings import Settings

BIG_TABLES = ("health_records", "appointments")


def _big(query: HotQuery) -> bool:
    return query.table in BIG_TABLES


def test_every_spec_index_has_a_hot_query() -> None:
    assert {q.index for q in HOT_QUERIES} == {s.name for s in alembic_driver.performance_indexes()}


def test_without_the_migration_no_hot_query_has_an_index(seeded_url: str) -> None:
    """What --compare calls 'before' is what the database really did before."""
    with admin.connect(seeded_url, autocommit=True) as conn:
        params = sample_parameters(conn)
        for q in HOT_QUERIES:
            natural = explain(conn, q.sql, params)
            assert natural.indexes == (), q.name
            if _big(q):
                assert natural.node == "Seq Scan", q.name
                assert explain(conn, q.sql, params, NO_INDEXES).node == "Seq Scan"
        assert not any(
            v.ok for v in verify(conn) if _big(next(h for h in HOT_QUERIES if h.name == v.query))
        )


def test_after_the_migration_each_hot_query_uses_its_index(
    district_url: str, settings: Settings
) -> None:
    with Database(district_url, replace(settings, command="migrate")) as db:
        alembic_driver.upgrade(db.engine)
    with admin.connect(district_url) as conn:
        verdicts = verify(conn, compare=True, repeat=1)
    assert len(verdicts) == 14
    for v, q in zip(verdicts, HOT_QUERIES, strict=True):
        assert v.ok, v.as_dict()
        assert v.usable
        if _big(q):
            assert v.chosen and q.index in v.after.indexes, v.as_dict()
        assert v.before is not None and v.before.indexes == ()
        assert v.before.ms > 0 and v.after.ms > 0
        if _big(q):
            assert v.before.node == "Seq Scan"
            assert v.before.buffers > v.after.buffers  # the index reads fewer pages


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
    assert data["ok"] is True and len(data["queries"]) == 14
    assert all({"ms", "before_ms", "faster_pct", "plan"} <= q.keys() for q in data["queries"])
    # Sampled parameters (diagnosis codes, providers) stay out of the output.
    providers = [f"{w} {k}" for w in names.PROVIDER_WORDS for k in names.PROVIDER_KINDS]
    leaked = [v for v in (*names.DIAGNOSIS_CODES, *providers) if v in result.stdout]
    assert leaked == []


@pytest.mark.parametrize("flag", ["--compare", ""])
def test_cli_verify_table(district_url: str, settings: Settings, flag: str) -> None:
    with Database(district_url, settings) as db:
        alembic_driver.upgrade(db.engine)
    args = ["-q", "--database-url", district_url, "migrate", "verify", "--repeat", "1"]
    result = run_cli(*args, *([flag] if flag else []))
    assert result.returncode == 0, result.stderr
    assert "idx_health_records_student_type_date" in result.stdout
    assert ("% faster" in result.stdout) == bool(flag)
