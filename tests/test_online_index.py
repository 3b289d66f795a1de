"""The 14 performance indexes: built online, repaired on re-run, refused cleanly."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO, make_database, run_cli
from tests.platform_dump import schema
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.migrate.build_watch import IndexEvent
from wcperf.migrate.online_index import BuildPolicy, LockBudgetExceeded, MigrationHooks
from wcperf.settings import Settings

SPEC_INDEXES = {
    "idx_health_records_student_type_date": ("studentId", "recordType", "recordDate"),
    "idx_health_records_student_confidential": ("studentId", "isConfidential"),
    "idx_health_records_type_confidential_date": ("recordType", "isConfidential", "recordDate"),
    "idx_health_records_provider_date": ("provider", "recordDate"),
    "idx_health_records_diagnosis_code": ("diagnosisCode",),
    "idx_appointments_student_scheduled": ("studentId", "scheduledAt"),
    "idx_appointments_nurse_scheduled": ("nurseId", "scheduledAt"),
    "idx_appointments_status_scheduled": ("status", "scheduledAt"),
    "idx_appointments_student_status_scheduled": ("studentId", "status", "scheduledAt"),
    "idx_appointments_type_status_scheduled": ("type", "status", "scheduledAt"),
    "idx_appointments_recurring_group": ("recurringGroupId",),
    "idx_medications_active_name": ("isActive", "name"),
    "idx_medications_controlled_schedule": ("isControlled", "deaSchedule"),
    "idx_medications_form_active": ("dosageForm", "isActive"),
}

FAST = BuildPolicy(lock_timeout_ms=150, attempts=2, backoff_s=0.05)


def _states(url: str, settings: Settings) -> dict[str, tuple[str, str]]:
    """(state, live definition) per index."""
    with Database(url, settings) as db:
        return {k: (v.state, v.definition) for k, v in alembic_driver.indexes(db.engine).items()}


def _live_columns(url: str) -> dict[str, tuple[str, ...]]:
    """Each of the 14 as PostgreSQL has it: valid, plain btree, these columns in order."""
    with admin.connect(url) as conn:
        rows = conn.execute(
            """select c.relname, array(select a.attname from unnest(i.indkey) with ordinality
                                         k(attnum, n) join pg_attribute a on a.attrelid =
                                         i.indrelid and a.attnum = k.attnum order by k.n)
                 from pg_index i join pg_class c on c.oid = i.indexrelid
                 join pg_am m on m.oid = c.relam
                where c.relname = any(%s) and i.indisvalid and not i.indisunique
                  and i.indpred is null and m.amname = 'btree'""",
            (list(SPEC_INDEXES),),
        ).fetchall()
    return {name: tuple(cols) for name, cols in rows}


def _all_valid(url: str, settings: Settings) -> bool:
    states = _states(url, settings)
    return {k: v[0] for k, v in states.items()} == dict.fromkeys(SPEC_INDEXES, "present") and (
        _live_columns(url) == SPEC_INDEXES
    )


def _upgrade(
    url: str,
    settings: Settings,
    policy: BuildPolicy | None = None,
    events: list[IndexEvent] | None = None,
    listener: Callable[[IndexEvent], None] | None = None,
) -> None:
    with Database(url, replace(settings, command="migrate")) as db:
        hooks = MigrationHooks(
            policy=policy or BuildPolicy(),
            listener=listener or (events.append if events is not None else None),
            poll_connect=db.pool.connection,
        )
        alembic_driver.upgrade(db.engine, hooks=hooks)


def test_the_revision_declares_exactly_the_spec_indexes() -> None:
    specs = alembic_driver.performance_indexes()
    assert {s.name: s.columns for s in specs} == SPEC_INDEXES


def test_migrate_builds_all_14_valid_and_analyzes(district_url: str, settings: Settings) -> None:
    events: list[IndexEvent] = []
    _upgrade(district_url, settings, events=events)
    assert _all_valid(district_url, settings)
    assert [e.spec.name for e in events if e.kind == "done" and e.spec] == list(SPEC_INDEXES)
    assert [e.detail for e in events if e.kind == "analyzed"] == [
        "health_records",
        "appointments",
        "medications",
    ]
    with admin.connect(district_url) as conn:
        analyzed = conn.execute("""select count(*) from pg_stat_user_tables
            where relname in ('health_records', 'appointments', 'medications')
              and coalesce(last_analyze, last_autoanalyze) is not null""").fetchone()
    assert analyzed == (3,)
    # Re-running builds nothing and keeps them valid.
    again: list[IndexEvent] = []
    _upgrade(district_url, settings, events=again)
    assert not [e for e in again if e.kind in ("start", "done")]
    assert _all_valid(district_url, settings)


def _writer(url: str, stop: threading.Event, ok: list[float], failed: list[str]) -> None:
    rng = random.Random(os.getpid())
    with admin.connect(url, autocommit=True, application_name="wcperf-test-writer") as conn:
        students = [r[0] for r in conn.execute("select id from students order by id limit 500")]
        appointments = [
            r[0] for r in conn.execute("select id from appointments order by id limit 500")
        ]
        while not stop.is_set():
            try:
                student = rng.choice(students)
                conn.execute(
                    """insert into health_records (id, "studentId", "recordType", title,
                              description, "recordDate", "isConfidential", "createdAt",
                              "updatedAt")
                       values (gen_random_uuid(), %s, 'CHECKUP', 'Visit', 'Visit', now(), false,
                               now(), now())""",
                    (student,),
                )
                conn.execute(
                    """update appointments set status = 'COMPLETED', "updatedAt" = now()
                        where id = %s""",
                    (rng.choice(appointments),),
                )
                conn.execute(
                    """insert into appointments (id, "studentId", type, status, reason,
                              "scheduledAt", "createdAt", "updatedAt")
                       values (gen_random_uuid(), %s, 'ROUTINE_CHECKUP', 'SCHEDULED', 'Visit',
                               now(), now(), now())""",
                    (student,),
                )
                ok.append(time.monotonic())
            except psycopg.Error as exc:
                failed.append(type(exc).__name__)


def test_writes_never_fail_during_the_online_build(district_url: str, settings: Settings) -> None:
    stop = threading.Event()
    ok: list[float] = []
    failed: list[str] = []
    writers = [
        threading.Thread(target=_writer, args=(district_url, stop, ok, failed)) for _ in range(3)
    ]
    for w in writers:
        w.start()
    time.sleep(0.2)
    before = schema(district_url)
    stamps: list[float] = []
    _upgrade(district_url, settings, listener=lambda _event: stamps.append(time.monotonic()))
    time.sleep(0.2)
    stop.set()
    for w in writers:
        w.join(10)
    assert failed == []
    started, finished = min(stamps), max(stamps)
    during = [t for t in ok if started <= t <= finished]
    assert len(during) > 10, "writers must have run while the indexes were built"
    assert _all_valid(district_url, settings)
    with Database(district_url, settings) as db:  # back to the start: the schema as it was
        alembic_driver.downgrade(db.engine, "0001_wcperf_state")
    assert schema(district_url) == before


def test_an_invalid_leftover_is_dropped_and_rebuilt(district_url: str, settings: Settings) -> None:
    # A failed concurrent build leaves an INVALID index behind under the real name.
    with (
        admin.connect(district_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        conn.execute(
            "create unique index concurrently idx_health_records_provider_date "
            "on health_records (provider)"
        )
    assert _states(district_url, settings)["idx_health_records_provider_date"][0] == "INVALID"
    events: list[IndexEvent] = []
    _upgrade(district_url, settings, events=events)
    assert any(
        e.kind == "dropped" and e.spec and e.spec.name == "idx_health_records_provider_date"
        for e in events
    )
    assert _all_valid(district_url, settings)
    with admin.connect(district_url) as conn:
        (unique,) = conn.execute("""select indisunique from pg_index i join pg_class c
            on c.oid = i.indexrelid where c.relname = 'idx_health_records_provider_date'
            """).fetchone()
    assert unique is False


@pytest.fixture
def blocker(district_url: str) -> Iterator[psycopg.Connection]:
    """A connection that can hold a lock, named so wcperf's message can name it."""
    with admin.connect(district_url, application_name="wcperf-test-blocker") as conn:
        yield conn
        conn.rollback()


def test_a_lock_that_never_frees_fails_cleanly_and_rerun_repairs(
    district_url: str, settings: Settings, blocker: psycopg.Connection
) -> None:
    blocker.execute("lock table appointments in share mode")
    with pytest.raises(LockBudgetExceeded) as info:
        _upgrade(district_url, settings, FAST)
    message = str(info.value)
    assert "idx_appointments_student_scheduled" in message
    assert "wcperf-test-blocker" in message and "idle in transaction" in message
    assert info.value.exit_code == 3
    blocker.rollback()
    states = _states(district_url, settings)
    assert states["idx_health_records_diagnosis_code"][0] == "present"  # built before the lock
    _upgrade(district_url, settings, FAST)
    assert _all_valid(district_url, settings)


def test_a_lock_that_frees_within_the_budget_is_waited_out(
    district_url: str, settings: Settings, blocker: psycopg.Connection
) -> None:
    blocker.execute("lock table health_records in share mode")  # the first table built
    events: list[IndexEvent] = []

    def listen(event: IndexEvent) -> None:
        events.append(event)
        if event.kind == "retry" and sum(e.kind == "retry" for e in events) == 2:
            blocker.rollback()  # the lock frees after two attempts, within the budget of 8

    _upgrade(
        district_url,
        settings,
        BuildPolicy(lock_timeout_ms=200, attempts=8, backoff_s=0.1),
        listener=listen,
    )
    retries = [e for e in events if e.kind == "retry"]
    assert len(retries) == 2 and all("wcperf-test-blocker" in e.detail for e in retries)
    assert _all_valid(district_url, settings)


def _migrate_argv(url: str) -> list[str]:
    return [sys.executable, "-m", "wcperf", "-q", "--database-url", url, "migrate",
            "--lock-timeout", "60000"]  # fmt: skip


def _migrate_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("WCPERF_DATABASE_URL",)}


def _kill_migrate_mid_build(url: str, blocker: psycopg.Connection) -> int:
    """`kill -9` a `wcperf migrate` while its first build waits; return the backend's pid.

    An open snapshot makes each concurrent build wait before it can be marked
    valid, which holds the build still long enough to kill its client there. The
    backend goes on (held by `blocker`) until the caller ends it or lets it finish.
    """
    blocker.execute("set transaction isolation level repeatable read")
    blocker.execute("select count(*) from schools")
    child = subprocess.Popen(_migrate_argv(url), cwd=REPO, env=_migrate_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        pid = None
        with admin.connect(url, autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            while pid is None and time.monotonic() < deadline:
                row = watcher.execute("""select p.pid from pg_stat_progress_create_index p
                    join pg_stat_activity a on a.pid = p.pid
                    where a.application_name = 'wcperf:migrate'
                      and a.datname = current_database()""").fetchone()
                pid = row[0] if row else None
                time.sleep(0.05)
        assert pid is not None, "the build never started"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        return int(pid)
    finally:
        if child.poll() is None:
            child.kill()


def test_killed_mid_build_then_rerun_ends_all_valid(
    district_url: str, settings: Settings, blocker: psycopg.Connection
) -> None:
    pid = _kill_migrate_mid_build(district_url, blocker)
    with admin.connect(district_url, autocommit=True) as conn:
        conn.execute("select pg_terminate_backend(%s)", (pid,))
    blocker.rollback()
    states = _states(district_url, settings)
    assert "INVALID" in {s for s, _ in states.values()}
    result = run_cli("--database-url", district_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert _all_valid(district_url, settings)


def test_a_rerun_waits_for_the_build_a_killed_run_left_running(
    district_url: str, settings: Settings, blocker: psycopg.Connection
) -> None:
    """kill -9 of migrate leaves its backend building; the next run must wait for it,
    not drop or build beside it (that deadlocked 2 runs in 11)."""
    pid = _kill_migrate_mid_build(district_url, blocker)  # the backend builds on
    rerun = subprocess.Popen(_migrate_argv(district_url), cwd=REPO, env=_migrate_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    lines: list[str] = []
    waiting = threading.Event()

    def read() -> None:
        assert rerun.stderr is not None
        for line in rerun.stderr:
            lines.append(line)
            if "waiting for it to end" in line:
                waiting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # However long the re-run takes to start, it must get to waiting and stay there.
        assert waiting.wait(120), "".join(lines)
        time.sleep(1)
        assert rerun.poll() is None  # waiting, not failed
        blocker.rollback()  # the orphan build can finish now, and then the re-run goes on
        rerun.wait(240)
        reader.join(10)
    finally:
        if rerun.poll() is None:
            rerun.kill()
    stderr = "".join(lines)
    assert rerun.returncode == 0, stderr
    assert f"is running in backend {pid}" in stderr and "waiting for it to end" in stderr
    assert _all_valid(district_url, settings)


def test_a_role_that_does_not_own_the_tables_is_told_so(
    district_url: str, settings: Settings
) -> None:
    role = f"wcperf_test_{uuid.uuid4().hex[:8]}"
    with admin.connect(district_url, autocommit=True) as conn:
        conn.execute(f"create role {role} login")
        conn.execute(f"grant select, update on all tables in schema public to {role}")
    try:
        url = district_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
        result = run_cli("--database-url", url, "migrate")
        assert result.returncode == 2
        assert "must own the platform's tables" in result.stderr
        assert "Traceback" not in result.stderr
        assert (
            _states(district_url, settings)["idx_health_records_student_type_date"][0] == "missing"
        )
    finally:
        with admin.connect(district_url, autocommit=True) as conn:
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")


def test_unknown_revision_and_a_database_without_the_platform(
    server_url: str, district_url: str
) -> None:
    run_cli("--database-url", district_url, "migrate")
    bad = run_cli("--database-url", district_url, "migrate", "downgrade", "no_such_rev")
    assert bad.returncode == 2 and "no_such_rev" in bad.stderr
    assert "Traceback" not in bad.stderr
    empty = admin.with_database(server_url, f"wcperf_test_empty_{uuid.uuid4().hex[:6]}")
    admin.ensure_database(empty)
    try:
        for command in (("migrate",), ("migrate", "verify"), ("migrate", "status")):
            result = run_cli("--database-url", empty, *command)
            assert result.returncode == 2, command
            assert "wcperf seed" in result.stderr and "Traceback" not in result.stderr
            assert len(result.stderr.strip().splitlines()[-1]) > 20
        with admin.connect(empty) as conn:  # refused before anything was written
            assert conn.execute(
                "select count(*) from pg_namespace where nspname = 'wcperf'"
            ).fetchone() == (0,)
    finally:
        admin.drop_database(empty)


def test_sql_prints_and_runs_nothing_and_squawk_finds_no_violation(
    server_url: str, district_url: str, settings: Settings, tmp_path: Path
) -> None:
    fresh = make_database(
        server_url, f"wcperf_test_fresh_{uuid.uuid4().hex[:6]}", settings, migrate=False
    )
    try:
        outputs = {
            "fresh": run_cli("-q", "--database-url", fresh, "migrate", "--sql"),
            "baseline": run_cli("-q", "--database-url", district_url, "migrate", "--sql"),
        }
        for name, result in outputs.items():
            assert result.returncode == 0, result.stderr
            path = tmp_path / f"{name}.sql"
            path.write_text(result.stdout)
            lint = subprocess.run(
                [
                    str(Path(sys.executable).parent / "squawk"),
                    "-c",
                    str(REPO / ".squawk.toml"),
                    "--reporter",
                    "gcc",
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert lint.returncode == 0, lint.stdout + lint.stderr
        sql = outputs["baseline"].stdout
        assert sql.count("CREATE INDEX CONCURRENTLY IF NOT EXISTS") == 14
        assert "SET lock_timeout" in sql and 'ANALYZE "health_records"' in sql
        assert "CREATE TABLE IF NOT EXISTS wcperf.bulk_jobs" in outputs["fresh"].stdout
        for text in (sql, outputs["fresh"].stdout):  # never a platform table
            assert not re.search(
                r"(CREATE|ALTER|DROP) TABLE (IF \w+ \w+ )?(public\.)?[a-z_]+ ", text
            )
            assert "ALTER TABLE" not in text and "DROP TABLE" not in text
        with admin.connect(fresh) as conn:
            assert conn.execute("select to_regclass('wcperf.bulk_jobs')").fetchone() == (None,)
    finally:
        admin.drop_database(fresh)
    assert _states(district_url, settings)["idx_health_records_diagnosis_code"][0] == "missing"


def test_downgrade_drops_them_concurrently_and_upgrade_restores(
    district_url: str, settings: Settings
) -> None:
    _upgrade(district_url, settings)
    down = run_cli("--database-url", district_url, "migrate", "downgrade", "0001_wcperf_state")
    assert down.returncode == 0, down.stderr
    assert {s for s, _ in _states(district_url, settings).values()} == {"missing"}
    status = run_cli("--database-url", district_url, "migrate", "status", "--json")
    assert status.returncode == 1
    assert run_cli("--database-url", district_url, "migrate").returncode == 0
    assert _all_valid(district_url, settings)
    assert run_cli("--database-url", district_url, "migrate", "status").returncode == 0


def test_auto_parallelism_yields_to_live_sessions(district_url: str, settings: Settings) -> None:
    quiet: list[IndexEvent] = []
    _upgrade(district_url, settings, events=quiet)
    starts = [e.detail for e in quiet if e.kind == "start"]
    assert starts and all("parallel: database quiet" in d for d in starts)

    with Database(district_url, settings) as db:
        alembic_driver.downgrade(db.engine, "0001_wcperf_state")
    busy: list[IndexEvent] = []
    with admin.connect(district_url, application_name="nurse-app") as nurse:
        nurse.execute("select 1")  # a nurse's session, in a transaction right now
        _upgrade(district_url, settings, events=busy)
    starts = [e.detail for e in busy if e.kind == "start"]
    assert len(starts) == 14 and all("one core: 1 other sessions working" in d for d in starts)
    assert _all_valid(district_url, settings)


def test_analyze_waits_out_a_lock_like_the_builds(
    district_url: str, settings: Settings, blocker: psycopg.Connection
) -> None:
    """ANALYZE needs the same lock as a build; it retries and names the blocker too."""
    events: list[IndexEvent] = []
    policy = BuildPolicy(lock_timeout_ms=150, attempts=8, backoff_s=0.1)

    def hold_medications_once_built(event: IndexEvent) -> None:
        events.append(event)
        if event.kind == "analyze" and event.table == "health_records":
            blocker.execute("lock table medications in share update exclusive mode")
            threading.Timer(0.8, blocker.rollback).start()

    _upgrade(district_url, settings, policy, listener=hold_medications_once_built)
    retries = [e for e in events if e.kind == "retry" and e.table == "medications"]
    assert retries and all(e.spec is None and "wcperf-test-blocker" in e.detail for e in retries)
    assert [e.table for e in events if e.kind == "analyzed"] == [
        "health_records",
        "appointments",
        "medications",
    ]
    assert _all_valid(district_url, settings)
