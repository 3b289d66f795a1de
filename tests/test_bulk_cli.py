"""`wcperf bulk` as a user runs it: dry runs, refusals, PHI, kill -9 and resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, RUN_ID, SERVER_VARS, run_cli
from wcperf.db import admin

NAME_CANARY = "Zebulon Quixotic-Canary"
REASON_CANARY = "diagnosis Q99.9 canary reason"
PASSWORD_CANARY = "pw-canary-8e1f"


def state(url: str) -> dict[str, Any]:
    """Everything a bulk job may change, as comparable data."""
    with admin.connect(url) as conn:
        return {
            "students": conn.execute(
                "select id, school_id, nurse_id, grade, status, graduation_date,"
                " last_promoted_year, transfer_metadata from students order by id"
            ).fetchall(),
            "transfers": conn.execute(
                "select student_id, from_school_id, to_school_id, from_nurse_id, job_id, reason"
                " from student_transfers order by student_id"
            ).fetchall(),
            "jobs": conn.execute(
                "select id, kind, status, rows_total, rows_done, checkpoint -> 'counts'"
                " from bulk_jobs order by id"
            ).fetchall(),
            "audit": conn.execute(
                "select job_id, counts, details ->> 'outcome' from audit_log"
                " where job_id is not null order by job_id"
            ).fetchall(),
        }


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("-q", "--database-url", url, *args)


@pytest.fixture
def clone(bulk_template: str) -> Iterator[Any]:
    """Make more copies of the bulk district within one test."""
    made: list[str] = []

    def make() -> str:
        url = admin.with_database(bulk_template, f"wcperf_bulkk_{RUN_ID}_{uuid.uuid4().hex[:6]}")
        admin.clone_database(bulk_template, url)
        made.append(url)
        return url

    yield make
    for url in made:
        admin.drop_database(url)


# -- dry runs and refusals -------------------------------------------------------------
def test_dry_run_prints_exact_counts_and_writes_nothing(bulk_url: str, tmp_path: Path) -> None:
    before = state(bulk_url)
    with admin.connect(bulk_url) as conn:
        by_grade = dict(
            conn.execute(
                "select grade, count(*) from students where status = 'active' group by 1"
            ).fetchall()
        )
        of_nurse_one = conn.execute(
            "select count(*) from students where nurse_id = 1 and status = 'active'"
        ).fetchone()[0]
    grade = cli(
        bulk_url, "bulk", "grade-transition", "--school-year", "2026", "--dry-run", "--json"
    )
    assert grade.returncode == 0, grade.stderr
    plan = json.loads(grade.stdout)
    assert plan["dry_run"] is True and plan["total"] == sum(by_grade.values())
    assert {r["grade"]: r["students"] for r in plan["breakdowns"]["by grade"]} == by_grade
    school_rows = plan["breakdowns"]["by school"]
    assert sum(r["promoted"] + r["graduated"] for r in school_rows) == plan["total"]

    nurse = cli(bulk_url, "bulk", "nurse-reassign", "--from", "1", "--balance", "--dry-run")
    assert nurse.returncode == 0, nurse.stderr
    assert f"{of_nurse_one} rows to change" in nurse.stdout and "receives" in nurse.stdout

    csv = tmp_path / "students.csv"
    csv.write_text(f"student_id,name\n5,{NAME_CANARY}\n6,{NAME_CANARY}\n")
    move = cli(bulk_url, "bulk", "transfer", "--to-school", "3", "--students", str(csv),
               "--reason", REASON_CANARY, "--dry-run", "--json")  # fmt: skip
    assert move.returncode == 0, move.stderr
    assert json.loads(move.stdout)["total"] == 2
    assert NAME_CANARY not in move.stdout + move.stderr
    assert REASON_CANARY not in move.stdout + move.stderr
    assert state(bulk_url) == before


def test_refusals_are_one_line_exit_2_and_write_nothing(bulk_url: str, tmp_path: Path) -> None:
    before = state(bulk_url)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(f"student_id,name\n5,x\n{NAME_CANARY},y\n")
    unknown_csv = tmp_path / "unknown.csv"
    unknown_csv.write_text("5\n6\n88888888\n")
    cases = {
        ("bulk", "nurse-reassign", "--from", "1", "--to", "2"): "over the maximum workload",
        ("bulk", "transfer", "--to-school", "3", "--students", str(unknown_csv)):
            "1 of 3 student ids do not exist (88888888); nothing written",
        ("bulk", "transfer", "--to-school", "3", "--students", str(bad_csv)):
            "line 3 holds no valid student id",
        ("bulk", "grade-transition", "--school-year", "2026", "--school", "777777"):
            "unknown school id(s): 777777",
        ("bulk", "grade-transition", "--school-year", "2026", "--throttle", "bogus=1"):
            "unknown throttle signal 'bogus'",
        ("bulk", "nurse-reassign", "--from", "1"): "exactly one of --to NURSE or --balance",
        ("bulk", "status", "424242"): "no bulk job 424242",
    }  # fmt: skip
    for args, message in cases.items():
        result = cli(bulk_url, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert NAME_CANARY not in result.stdout + result.stderr
    assert state(bulk_url) == before


def test_run_json_summary_status_and_no_phi_anywhere(bulk_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "students.csv"
    csv.write_text(f"student_id,name\n5,{NAME_CANARY}\n6,{NAME_CANARY}\n7,{NAME_CANARY}\n")
    # Trust auth ignores a password, so one can be planted: the audit row must mask it.
    url = bulk_url.replace("://postgres@", f"://postgres:{PASSWORD_CANARY}@")
    moved = cli(url, "bulk", "transfer", "--to-school", "3", "--students", str(csv),
                "--reason", REASON_CANARY, "--json")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    summary = json.loads(moved.stdout)
    assert summary["status"] == "done" and summary["counts"] == {"moved": 3, "skipped": 0}
    status = cli(bulk_url, "bulk", "status", str(summary["job"]), "--json")
    listing = cli(bulk_url, "bulk", "list", "--json")
    assert status.returncode == listing.returncode == 0
    shown = json.loads(status.stdout)
    assert shown["status"] == "done" and shown["audit"]["details"]["outcome"] == "done"
    command = shown["audit"]["details"]["command"]
    assert "--reason REDACTED" in command and "bulk transfer --to-school 3" in command
    everything = moved.stdout + moved.stderr + status.stdout + listing.stdout
    with admin.connect(bulk_url) as conn:
        audit = json.dumps(conn.execute("select counts, details from audit_log").fetchall())
        reasons = conn.execute("select distinct reason from student_transfers").fetchall()
    assert reasons == [(REASON_CANARY,)]  # kept where it belongs
    for canary in (NAME_CANARY, REASON_CANARY, PASSWORD_CANARY):
        assert canary not in everything and canary not in audit


# -- kill -9 at random points, then resume ---------------------------------------------
JOBS: dict[str, list[str]] = {
    "grade": [
        "bulk", "grade-transition", "--school-year", "2026", "--graduation-date", "2026-06-15",
    ],
    "transfer": ["bulk", "transfer", "--to-school", "3", "--from-school", "1", "--reason", "r"],
    "reassign": ["bulk", "nurse-reassign", "--from", "1", "--balance"],
}  # fmt: skip
ROUNDS = [("grade", i) for i in range(10)] + [
    (k, i) for k in ("transfer", "reassign") for i in (0, 1)
]


def spawn(url: str, args: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    return subprocess.Popen(
        [sys.executable, "-m", "wcperf", "-q", "--database-url", url, *args],
        cwd=REPO,
        env={**env, "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def rows_done(url: str) -> tuple[int, int] | None:
    with admin.connect(url) as conn:
        row = conn.execute("select rows_done, rows_total from bulk_jobs where id = 1").fetchone()
    return (int(row[0]), int(row[1])) if row else None


def test_kill_9_at_random_points_then_resume_ends_as_a_clean_run(clone: Any) -> None:
    seed = int(os.environ.get("WCPERF_KILL_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    clean: dict[str, dict[str, Any]] = {}
    for kind, args in JOBS.items():
        url = clone()
        result = cli(url, *args)
        assert result.returncode == 0, result.stderr
        clean[kind] = state(url)
        assert clean[kind]["jobs"][0][2] == "done"
    mid_job = 0
    for kind, i in ROUNDS:
        url = clone()
        # Even rounds rest between small batches (kills land mostly between batches);
        # odd rounds run tiny batches back to back (kills land mostly inside one).
        pace = ["--batch-size", "40", "--sleep-ms", "25"] if i % 2 == 0 else ["--batch-size", "7"]
        proc = spawn(url, JOBS[kind] + pace)
        deadline = time.monotonic() + 30
        while (done := rows_done(url)) is None or done[0] == 0:
            assert proc.poll() is None and time.monotonic() < deadline, f"seed {seed}: never ran"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = rows_done(url)
        assert at_kill is not None
        mid_job += at_kill[0] < at_kill[1]
        again = JOBS[kind] if i % 3 else ["bulk", "resume", "1"]
        resumed = cli(url, *again)
        assert resumed.returncode == 0, f"seed {seed} round {kind} {i}: {resumed.stderr}"
        got = state(url)
        assert got == clean[kind], f"seed {seed} round {kind} {i}: state differs from a clean run"
    assert mid_job >= len(ROUNDS) - 2, f"seed {seed}: only {mid_job} kills landed mid-job"


def test_ctrl_c_stops_cleanly_says_interrupted_and_resumes(clone: Any) -> None:
    url = clone()
    proc = spawn(url, [*JOBS["grade"], "--batch-size", "40", "--sleep-ms", "25"])
    deadline = time.monotonic() + 30
    while (done := rows_done(url)) is None or done[0] == 0:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 130
    shown = json.loads(cli(url, "bulk", "status", "1", "--json").stdout)
    assert shown["status"] == "interrupted" and shown["error"] == "interrupted"
    assert 0 < shown["rows_done"] < shown["rows_total"]
    assert shown["audit"]["details"]["outcome"] == "interrupted"
    resumed = cli(url, "bulk", "resume", "1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "done" and summary["rows_done"] == summary["rows_total"]
    with admin.connect(url) as conn:  # every eligible student changed, none left over
        left = conn.execute(
            "select count(*) from students where status = 'active'"
            " and coalesce(last_promoted_year, 0) < 2026"
        ).fetchone()
        changed = conn.execute(
            "select count(*) from students where last_promoted_year = 2026"
        ).fetchone()
    assert left == (0,) and changed == (summary["rows_total"],)
