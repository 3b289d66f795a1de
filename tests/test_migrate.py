"""wcperf on the platform's own database: its state in schema `wcperf`, the platform's
tables never created, altered or dropped, indexes it found never dropped.

Every destructive path is checked with a `pg_dump --schema-only` of the platform's
schema and a fingerprint of every row, before and after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import RUN_ID, make_database, run_cli
from tests.platform_dump import rows, schema, snapshot
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.errors import RefusedError
from wcperf.migrate import alembic_driver
from wcperf.migrate.build_watch import IndexEvent
from wcperf.migrate.online_index import MigrationHooks
from wcperf.platform.indexes import PERFORMANCE_INDEXES
from wcperf.settings import Settings

STATE_TABLES = {
    "alembic_version",
    "bulk_jobs",
    "audit_log",
    "promotions",
    "student_moves",
    "built_indexes",
    "seeds",
}
DIFFERING = "idx_health_records_student_type_date"


def _tables(url: str, namespace: str) -> set[str]:
    with admin.connect(url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "select tablename from pg_tables where schemaname = %s", (namespace,)
            )
        }


def _built(url: str) -> set[str]:
    with admin.connect(url) as conn:
        return {r[0] for r in conn.execute("select name from wcperf.built_indexes")}


@pytest.fixture
def synced_url(server_url: str, settings: Settings) -> Iterator[str]:
    """As the platform's `sync()` leaves a database: all 14 present; a district in it."""
    url = make_database(
        server_url,
        f"wcperf_synced_{RUN_ID}_{uuid.uuid4().hex[:6]}",
        settings,
        students=2_000,
        migrate=False,
        sync_shape=True,
    )
    yield url
    admin.drop_database(url)


def test_the_state_lives_in_schema_wcperf_and_the_platform_gains_nothing(
    district_url: str,
) -> None:
    platform = _tables(district_url, "public")
    before = schema(district_url)
    result = run_cli("--database-url", district_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert _tables(district_url, "wcperf") == STATE_TABLES
    assert _tables(district_url, "public") == platform  # no table of wcperf's among them
    after = schema(district_url)
    added = set(after.splitlines()) - set(before.splitlines())
    # What changed in the platform's schema is the 14 indexes, and only them.
    created = {line.split()[2] for line in added if line.startswith("CREATE INDEX")}
    assert created == {spec.name for spec in PERFORMANCE_INDEXES}
    assert not [line for line in added if "TABLE" in line or "COLUMN" in line]
    assert _built(district_url) == created


def test_on_a_sync_built_database_migrate_runs_no_ddl_and_downgrade_drops_nothing(
    synced_url: str, settings: Settings
) -> None:
    before = snapshot(synced_url)
    events: list[IndexEvent] = []
    with Database(synced_url, settings) as db:
        alembic_driver.upgrade(db.engine, hooks=MigrationHooks(listener=events.append))
        states = alembic_driver.indexes(db.engine)
    assert {s.state for s in states.values()} == {"present"}
    assert {s.origin for s in states.values()} == {"found"}
    assert not [e for e in events if e.kind in ("start", "done", "dropped", "analyze")]
    assert _built(synced_url) == set()
    assert snapshot(synced_url) == before
    status = run_cli("--database-url", synced_url, "migrate", "status", "--json")
    assert status.returncode == 0 and '"origin": "found"' in status.stdout
    down = run_cli("--database-url", synced_url, "migrate", "downgrade", "base", "--yes")
    assert down.returncode == 0, down.stderr
    assert snapshot(synced_url) == before  # every index it found is still there


def test_an_equivalent_index_under_another_name_is_found_not_duplicated(
    district_url: str, settings: Settings
) -> None:
    with admin.connect(district_url, autocommit=True) as conn:
        conn.execute(
            "create index health_records_student_type_date_twin on health_records"
            ' ("studentId", "recordType", "recordDate")'
        )
    with Database(district_url, settings) as db:
        alembic_driver.upgrade(db.engine)
        state = alembic_driver.indexes(db.engine)[DIFFERING]
    assert state.state == "present" and state.found_as == "health_records_student_type_date_twin"
    assert DIFFERING not in _built(district_url)
    assert len(_built(district_url)) == 13


def _plant_differing(url: str) -> str:
    with admin.connect(url, autocommit=True) as conn:
        conn.execute(f'create index {DIFFERING} on health_records ("studentId", "recordDate")')
        row = conn.execute("select pg_get_indexdef(%s::regclass)", (DIFFERING,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_differing_index_is_left_alone_then_swapped_online_on_request_and_restored(
    district_url: str, settings: Settings
) -> None:
    theirs = _plant_differing(district_url)
    before = snapshot(district_url)
    left = run_cli("--database-url", district_url, "migrate")
    assert left.returncode == 1, left.stderr
    assert "differ" in left.stdout and '("studentId", "recordDate")' in left.stdout
    assert '"recordType"' in left.stdout  # the expected definition beside it
    assert "--replace-differing" in left.stderr
    with admin.connect(district_url) as conn:
        live = conn.execute("select pg_get_indexdef(%s::regclass)", (DIFFERING,)).fetchone()
    assert live == (theirs,)
    assert DIFFERING not in _built(district_url)

    swap = run_cli("--database-url", district_url, "migrate", "--replace-differing")
    assert swap.returncode == 0, swap.stderr
    with Database(district_url, settings) as db:
        state = alembic_driver.indexes(db.engine)[DIFFERING]
    assert state.state == "present" and state.built
    with admin.connect(district_url) as conn:
        leftovers = conn.execute(
            "select count(*) from pg_class where relname like '%wcperf_new'"
        ).fetchone()
        kept = conn.execute(
            "select replaced_definition from wcperf.built_indexes where name = %s", (DIFFERING,)
        ).fetchone()
    assert leftovers == (0,) and kept == (theirs,)

    down = run_cli("--database-url", district_url, "migrate", "downgrade", "0001_wcperf_state")
    assert down.returncode == 0, down.stderr
    assert snapshot(district_url) == before  # the platform's own definition is back


def _downgrade(url: str, target: str, *options: str) -> None:
    result = run_cli("--database-url", url, "migrate", "downgrade", *options, "--", target)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "steps",
    [
        [("base", "--yes")],
        [("0001_wcperf_state",)],
        [("-1",)],
        [("0002_performance_indexes-1",)],
        [("-1",), ("-1", "--yes")],  # step by step, down to base
    ],
    ids=["base", "revision", "-1", "REV-1", "step-by-step"],
)
def test_every_way_to_spell_a_downgrade_leaves_the_platform_as_it_was(
    district_url: str, steps: list[tuple[str, ...]]
) -> None:
    before = snapshot(district_url)
    up = run_cli("--database-url", district_url, "migrate")
    assert up.returncode == 0, up.stderr
    assert schema(district_url) != before[0]  # the 14 are there now
    for target, *options in steps:
        _downgrade(district_url, target, *options)
    assert snapshot(district_url) == before


@pytest.mark.parametrize("spelling", ["base", "-2", "0001_wcperf_state-1"])
def test_dropping_wcperfs_own_state_needs_yes_whatever_the_spelling(
    district_url: str, spelling: str
) -> None:
    assert run_cli("--database-url", district_url, "migrate").returncode == 0
    before = snapshot(district_url)
    refused = run_cli("--database-url", district_url, "migrate", "downgrade", "--", spelling)
    assert refused.returncode == 2, refused.stderr
    assert "--yes" in refused.stderr and "platform's tables are never touched" in refused.stderr
    assert snapshot(district_url) == before  # not even the indexes went
    assert _tables(district_url, "wcperf") == STATE_TABLES


def test_a_relative_downgrade_past_the_base_is_refused(district_url: str) -> None:
    assert run_cli("--database-url", district_url, "migrate").returncode == 0
    before = snapshot(district_url)
    result = run_cli("--database-url", district_url, "migrate", "downgrade", "--yes", "--", "-3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert snapshot(district_url) == before


def test_the_library_refuses_too(district_url: str, settings: Settings) -> None:
    with Database(district_url, settings) as db:
        alembic_driver.upgrade(db.engine)
        with pytest.raises(RefusedError):
            alembic_driver.downgrade(db.engine, "base")
        assert alembic_driver.status(db.engine).up_to_date


def test_sql_of_a_downgrade_names_only_what_wcperf_built(district_url: str) -> None:
    _plant_differing(district_url)
    assert run_cli("--database-url", district_url, "migrate").returncode == 1  # left alone
    result = run_cli("--database-url", district_url, "migrate", "downgrade", "base", "--sql")
    assert result.returncode == 0, result.stderr
    drops = [line for line in result.stdout.splitlines() if line.startswith("DROP INDEX")]
    assert len(drops) == 13 and not [line for line in drops if DIFFERING in line]
    assert "needs --yes" in result.stdout
    assert len(rows(district_url)) == 8


def test_the_models_of_wcperfs_state_and_its_migration_agree(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from wcperf.db.schema import STATE

    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _: kind != "schema" or name == "wcperf",
                "version_table_schema": "wcperf",
            },
        )
        assert compare_metadata(context, STATE) == []
