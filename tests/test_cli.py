"""The `wcperf` command as a user runs it: exit codes, one-line errors, masking."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.conftest import run_cli
from wcperf.cli.app import load_command
from wcperf.cli.commands import COMMANDS
from wcperf.db import admin

CANARY = "s3cret-canary-9f2"


def _one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("using ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert CANARY not in result.stderr + result.stdout
    assert lines[0].startswith("wcperf: error: ")
    return lines[0]


def test_help_lists_the_command_groups() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for group in ("migrate", "bulk", "loadtest", "monitor", "seed", "db"):
        assert f" {group} " in result.stdout


def test_help_imports_no_group_and_each_group_says_what_the_list_says() -> None:
    """`wcperf --help` answers from the table; each group, once loaded, says the same."""
    probe = (
        "import sys\n"
        "from wcperf.cli import app\n"
        "try:\n    app.run(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('wcperf.cli.', 'psycopg',"
        " 'sqlalchemy'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = result.stdout.strip().splitlines()[-1]
    assert loaded == repr(["wcperf.cli.app", "wcperf.cli.commands", "wcperf.cli.context"]), loaded
    for name, entry in COMMANDS.items():
        command = load_command(name)
        assert (command.short_help or command.help) == entry.help, name
        assert command.name == name
    assert "--yes" in [o for p in load_command("demo").params for o in p.opts]


@pytest.mark.parametrize(
    "url,expect",
    [
        (f"postgresql://postgres:{CANARY}@127.0.0.1:1/wcperf", "Connection refused"),
        (f"postgresql://postgres:{CANARY}@127.0.0.1:notaport/wcperf", "malformed URL"),
        (
            f"postgresql://postgres:{CANARY}@no-such-host.invalid:5432/wcperf",
            "failed to resolve host",
        ),
        (f"mysql://root:{CANARY}@127.0.0.1/wcperf", "malformed URL"),
    ],
)
def test_unreachable_or_malformed_database(url: str, expect: str) -> None:
    line = _one_line_error(run_cli("--database-url", url, "migrate", "status"))
    assert expect in line
    if "@127.0.0.1:1/" in url:
        assert "postgres:***@127.0.0.1:1" in line


def test_missing_database(server_url: str) -> None:
    # Trust auth ignores the password; it is there to prove it is never shown.
    url = admin.with_database(server_url, "wcperf_no_such_database").replace(
        "postgresql://postgres@", f"postgresql://postgres:{CANARY}@", 1
    )
    line = _one_line_error(run_cli("--database-url", url, "seed", "--scale", "small"))
    assert 'database "wcperf_no_such_database" does not exist' in line


def test_seed_then_refuse_then_dry_run(scratch_url: str) -> None:
    first = run_cli("--database-url", scratch_url, "seed", "--students", "500", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["rows"]["students"] == 500 and data["mode"] == "new"
    assert "postgresql configured" in first.stderr  # says which server it used

    again = run_cli("--database-url", scratch_url, "seed", "--students", "500")
    assert "--append or --replace" in _one_line_error(again)

    dry = run_cli(
        "--database-url",
        scratch_url,
        "seed",
        "--students",
        "900",
        "--replace",
        "--dry-run",
        "--json",
    )
    assert dry.returncode == 0 and json.loads(dry.stdout)["estimated_rows"]["students"] == 900
    with admin.connect(scratch_url) as conn:
        assert conn.execute("select count(*) from students").fetchone() == (500,)

    both = run_cli("--database-url", scratch_url, "seed", "--append", "--replace")
    assert "exclude each other" in _one_line_error(both)


def test_an_empty_database_is_seeded_then_migrated(server_url: str) -> None:
    url = admin.with_database(server_url, "wcperf_test_unmigrated")
    admin.drop_database(url)
    admin.ensure_database(url)
    try:
        refused = run_cli("--database-url", url, "migrate")
        assert "wcperf seed" in _one_line_error(refused)
        seed = run_cli("--database-url", url, "seed", "--students", "300")
        assert seed.returncode == 0, seed.stderr
        behind = run_cli("--database-url", url, "migrate", "status", "--json")
        assert behind.returncode == 1
        assert json.loads(behind.stdout)["pending"] == ["0002_performance_indexes"]
        assert run_cli("--database-url", url, "migrate").returncode == 0
        now = run_cli("--database-url", url, "migrate", "status", "--json")
        assert now.returncode == 0 and json.loads(now.stdout)["up_to_date"] is True
    finally:
        admin.drop_database(url)


def test_db_status_names_sources_and_masks(database_url: str) -> None:
    redis_url = f"redis://:{CANARY}@127.0.0.1:1/0"
    result = run_cli(
        "--database-url", database_url, "--redis-url", redis_url, "db", "status", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["postgresql"]["source"] == "configured" and report["postgresql"]["ok"]
    assert report["redis"]["ok"] is False
    assert CANARY not in result.stdout + result.stderr
    assert ":***@127.0.0.1:1" in report["redis"]["url"]


def test_database_errors_name_what_is_at_fault_pass_the_hint_and_no_values(
    scratch_url: str,
) -> None:
    import psycopg

    from wcperf.errors import database_message

    canary = "Zebulon-Canary-5521"
    with admin.connect(scratch_url) as conn:
        with pytest.raises(psycopg.Error) as wrong_column:
            conn.execute('select "student_id" from health_records')
        conn.rollback()
        conn.execute(
            'insert into districts (id, name, code, "createdAt", "updatedAt")'
            " values (gen_random_uuid(), 'd', %s, now(), now())",
            (canary,),
        )
        with pytest.raises(psycopg.Error) as duplicate:
            conn.execute(
                'insert into districts (id, name, code, "createdAt", "updatedAt")'
                " values (gen_random_uuid(), 'd', %s, now(), now())",
                (canary,),
            )
        conn.rollback()
    hinted = database_message(wrong_column.value)
    assert hinted is not None and "Perhaps you meant to reference the column" in hinted
    assert '"health_records.studentId"' in hinted
    named = database_message(duplicate.value)
    assert named is not None and "constraint districts_code_key, table districts" in named
    assert canary not in named  # DETAIL ("Key (code)=(...)") is never passed on


def test_demo_refuses_a_database_holding_data_it_did_not_seed(server_url: str) -> None:
    """`make demo` with DATABASE_URL at someone's database: refused, nothing written."""
    url = admin.with_database(server_url, f"wcperf_foreign_{uuid.uuid4().hex[:8]}")
    admin.ensure_database(url)
    try:
        with admin.connect(url, autocommit=True) as conn:
            conn.execute("create table visits (who text)")
            conn.execute("insert into visits values ('Quillon-Canary')")
        before = _tables(url)
        result = run_cli("demo", env={"DATABASE_URL": url}, timeout=120)
        line = _one_line_error(result)
        assert "holds 1 table wcperf did not seed" in line and "--yes" in line
        assert "Quillon-Canary" not in result.stdout + result.stderr
        assert _tables(url) == before  # no platform table, no wcperf schema, nothing
    finally:
        admin.drop_database(url)


def _tables(url: str) -> list[tuple[str, str]]:
    with admin.connect(url) as conn:
        return conn.execute(
            "select schemaname, tablename from pg_tables"
            " where schemaname not in ('pg_catalog', 'information_schema') order by 1, 2"
        ).fetchall()


def test_config_show_names_each_origin_and_masks_secrets() -> None:
    run = run_cli(
        "--database-url", f"postgresql://nurse:{CANARY}@db.example/wc", "--env", "production",
        "config", "show", "--json",
        env={"WCPERF_THROTTLE": "lock_waits=2:30", "WCPERF_CACHE_SECRET": f"{CANARY}-cache"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["database_url"] == {
        "value": "postgresql://nurse:***@db.example/wc",
        "from": "--database-url",
    }
    assert shown["pool.max_size"] == {"value": 20, "from": "--env"}
    assert shown["bulk.throttle.lock_waits"] == {"value": "2:30", "from": "$WCPERF_THROTTLE"}
    assert shown["monitor.targets.p95_ms"] == {"value": 500.0, "from": "default"}
    assert CANARY not in run.stdout + run.stderr
    table = run_cli("config", "show")
    assert table.returncode == 0 and "bulk.throttle.lock_waits" in table.stdout


def test_into_a_pipe_tables_keep_each_record_on_one_line() -> None:
    """No $COLUMNS and not a terminal: no cell folds mid-word at 80 columns."""
    from wcperf.load.scenario import available, load

    env = {"COLUMNS": ""}  # run_cli sets 200; a pipe with none is what a log gets
    listed = run_cli("loadtest", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    for path in available():
        s = load(path)
        tasks = ", ".join(f"{t.op} {t.weight}" for t in s.tasks)
        (row,) = [line for line in listed.stdout.splitlines() if line.startswith(s.name + " ")]
        assert row.rstrip().endswith(tasks), row  # the whole list, on the scenario's line
    narrow = run_cli("loadtest", "list", env={"COLUMNS": "80"})  # asked for: obeyed
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80


def test_status_lines_come_at_each_change_and_at_intervals() -> None:
    from wcperf.jobs.runner import Progress
    from wcperf.jobs.states import RunState
    from wcperf.jobs.status import StatusLines, eta

    clock = [0.0]
    lines = StatusLines(10.0, clock=lambda: clock[0])

    def at(t: float, done: int, state: RunState = RunState.RUNNING, why: str = "") -> str | None:
        clock[0] = t
        return lines(
            Progress(7, "grade-transition", done, 4000, state, why, 500, done // 500, 100.0)
        )

    first = at(0, 0)
    assert first is not None and "0/4,000 rows (0.0 %)" in first and "ETA 40s" in first
    assert at(5, 500) is None  # same state, within the interval
    paused = at(6, 500, RunState.PAUSED, "pool 96 % in use")
    assert paused is not None and paused.endswith("state paused; batch 500; batches 1; "
                                                  "reason: pool 96 % in use")  # fmt: skip
    assert at(7, 500, RunState.PAUSED, "pool 96 % in use") is None
    assert at(16.5, 500, RunState.PAUSED, "pool 96 % in use") is not None  # the interval
    assert at(17, 1000) is not None  # running again: at once
    p = Progress(1, "k", 10, 100_000, RunState.RUNNING, "", 1, 1, 10.0)
    assert eta(p) == "2h46m39s"
    assert eta(Progress(1, "k", 10, 100, RunState.RUNNING, "", 1, 1, 0.0)) == "unknown"
