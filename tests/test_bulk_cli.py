"""`wcperf bulk` as a user runs it: dry runs, refusals, PHI, kill -9 and resume."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DISTRICT, EXTRA_NURSES, REPO, RUN_ID, SERVER_VARS, run_cli
from wcperf.db import admin

NAME_CANARY = "Zebulon Quixotic-Canary"
REASON_CANARY = "diagnosis Q99.9 canary reason"
PASSWORD_CANARY = "pw-canary-8e1f"


def state(url: str) -> dict[str, Any]:
    """Everything a bulk job may change, as comparable data (not the moment it did)."""
    with admin.connect(url) as conn:
        return {
            "students": conn.execute(
                'select id, "schoolId", "nurseId", grade, "isActive", "deletedAt", "updatedBy",'
                ' "districtId" from students order by id'
            ).fetchall(),
            "promotions": conn.execute(
                "select student_id, school_year, job_id, from_grade, to_grade, prev_updated_at"
                " from wcperf.promotions order by student_id"
            ).fetchall(),
            "moves": conn.execute(
                "select job_id, student_id, from_school_id, to_school_id, from_nurse_id,"
                " to_nurse_id, reason from wcperf.student_moves order by job_id, student_id"
            ).fetchall(),
            "jobs": conn.execute(
                "select id, kind, status, rows_total, rows_done, checkpoint -> 'counts'"
                " from wcperf.bulk_jobs order by id"
            ).fetchall(),
            "audit": conn.execute(
                "select job_id, counts, details ->> 'outcome' from wcperf.audit_log"
                " where job_id is not null order by job_id"
            ).fetchall(),
        }


SCHOOL = [str(DISTRICT.uuid_of("schools", i)) for i in range(3)]
NURSE = str(DISTRICT.uuid_of("users", 0))
LIVE = '"isActive" and "deletedAt" is null'


def students(url: str, n: int, where: str = "true") -> list[str]:
    with admin.connect(url) as conn:
        return [
            str(r[0])
            for r in conn.execute(
                f"select id from students where {LIVE} and {where} order by id limit %s", (n,)
            )
        ]


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
            conn.execute(f"select grade, count(*) from students where {LIVE} group by 1").fetchall()
        )
        of_nurse = conn.execute(
            f'select count(*) from students where "nurseId" = %s and {LIVE}', (NURSE,)
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

    nurse = cli(bulk_url, "bulk", "nurse-reassign", "--from", NURSE, "--balance", "--dry-run")
    assert nurse.returncode == 0, nurse.stderr
    assert f"{of_nurse} rows to change" in nurse.stdout and "receives" in nurse.stdout

    csv = tmp_path / "students.csv"  # as a spreadsheet saves it: BOM, CRLF, camelCase header
    ids = students(bulk_url, 2, f"\"schoolId\" <> '{SCHOOL[2]}'")
    csv.write_bytes(
        ("\ufeffstudentId,name\r\n" + "".join(f"{i},{NAME_CANARY}\r\n" for i in ids)).encode()
    )
    move = cli(bulk_url, "bulk", "transfer", "--to-school", SCHOOL[2], "--students", str(csv),
               "--reason", REASON_CANARY, "--dry-run", "--json")  # fmt: skip
    assert move.returncode == 0, move.stderr
    assert json.loads(move.stdout)["total"] == 2
    assert NAME_CANARY not in move.stdout + move.stderr
    assert REASON_CANARY not in move.stdout + move.stderr
    assert state(bulk_url) == before


def test_refusals_are_one_line_exit_2_and_write_nothing(bulk_url: str, tmp_path: Path) -> None:
    before = state(bulk_url)
    good = students(bulk_url, 2)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(f"student_id,name\n{good[0]},x\n{NAME_CANARY},y\n")
    unknown = "0badbeef-0000-4000-8000-000000000000"
    unknown_csv = tmp_path / "unknown.csv"
    unknown_csv.write_text(f"{good[0]}\n{good[1]}\n{unknown}\n")
    other = str(EXTRA_NURSES[0])
    cases = {
        ("bulk", "nurse-reassign", "--from", NURSE, "--to", other, "--max-workload", "50"):
            "over the maximum workload",
        ("bulk", "transfer", "--to-school", SCHOOL[2], "--students", str(unknown_csv)):
            f"1 of 3 student ids are not active students ({unknown}); nothing written",
        ("bulk", "transfer", "--to-school", SCHOOL[2], "--students", str(bad_csv)):
            "line 3 holds no valid student id",
        ("bulk", "grade-transition", "--school-year", "2026", "--school", unknown):
            f"unknown school(s): {unknown}",
        ("bulk", "grade-transition", "--school-year", "2026", "--school", "7"):
            "--school must be a UUID",
        ("bulk", "grade-transition", "--school-year", "2062"): "not a school year near now",
        ("bulk", "grade-transition", "--school-year", "2026", "--throttle", "bogus=1"):
            "unknown throttle signal 'bogus'",
        ("bulk", "nurse-reassign", "--from", NURSE): "exactly one of --to NURSE or --balance",
        ("bulk", "nurse-reassign", "--from", "1", "--balance"): "--from must be a UUID",
        ("bulk", "status", "424242"): "no bulk job 424242",
        ("bulk", "revert", "424242"): "no bulk job 424242",
    }  # fmt: skip
    for args, message in cases.items():
        result = cli(bulk_url, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert NAME_CANARY not in result.stdout + result.stderr
    assert state(bulk_url) == before


def test_run_json_summary_status_revert_and_no_phi_anywhere(bulk_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "students.csv"
    ids = students(bulk_url, 3, f"\"schoolId\" <> '{SCHOOL[2]}'")
    csv.write_text("student_id,name\n" + "".join(f"{i},{NAME_CANARY}\n" for i in ids))
    before = state(bulk_url)
    # Trust auth ignores a password, so one can be planted: the audit row must mask it.
    # Both forms at once: in the userinfo, and as a ?password= parameter.
    url = bulk_url.replace("://postgres@", f"://postgres:{PASSWORD_CANARY}@")
    url += f"?password={PASSWORD_CANARY}-query&application_name=x"
    moved = cli(url, "bulk", "transfer", "--to-school", SCHOOL[2], "--students", str(csv),
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
    assert "--reason REDACTED" in command and f"bulk transfer --to-school {SCHOOL[2]}" in command
    dry = cli(bulk_url, "bulk", "revert", str(summary["job"]), "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["total"] == 3
    undone = cli(bulk_url, "bulk", "revert", str(summary["job"]), "--json")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["counts"] == {"restored": 3, "changed_since": 0}
    assert state(bulk_url)["students"] == before["students"]
    everything = moved.stdout + moved.stderr + status.stdout + listing.stdout + undone.stdout
    with admin.connect(bulk_url) as conn:
        audit = json.dumps(
            conn.execute("select counts, details from wcperf.audit_log").fetchall(), default=str
        )
        reasons = conn.execute("select distinct reason from wcperf.student_moves").fetchall()
    assert reasons == [(REASON_CANARY,)]  # kept where it belongs
    for canary in (NAME_CANARY, REASON_CANARY, PASSWORD_CANARY):
        assert canary not in everything and canary not in audit
    assert "?password=***&application_name=x" in audit  # masked, the rest kept


# -- kill -9 at random points, then resume ---------------------------------------------
JOBS: dict[str, list[str]] = {
    "grade": ["bulk", "grade-transition", "--school-year", "2026"],
    "transfer": [
        "bulk", "transfer", "--to-school", SCHOOL[2], "--from-school", SCHOOL[0], "--reason", "r",
    ],
    "reassign": ["bulk", "nurse-reassign", "--from", NURSE, "--balance", "--max-workload", "300"],
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
        row = conn.execute(
            "select rows_done, rows_total from wcperf.bulk_jobs where id = 1"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


KILL_SEED = int(os.environ.get("WCPERF_KILL_SEED") or time.time_ns() % 1_000_000)


@pytest.fixture(scope="module")
def clean_runs(bulk_template: str) -> Iterator[Any]:
    """Each job kind's end state when nothing interrupts it, run once per process."""
    found: dict[str, dict[str, Any]] = {}
    made: list[str] = []

    def of(kind: str) -> dict[str, Any]:
        if kind not in found:
            url = admin.with_database(bulk_template, f"wcperf_bulkr_{RUN_ID}_{kind}")
            admin.clone_database(bulk_template, url)
            made.append(url)
            result = cli(url, *JOBS[kind])
            assert result.returncode == 0, result.stderr
            found[kind] = state(url)
            assert found[kind]["jobs"][0][2] == "done"
        return found[kind]

    yield of
    for url in made:
        admin.drop_database(url)


@pytest.mark.parametrize("kind,i", ROUNDS, ids=[f"{k}-{i}" for k, i in ROUNDS])
def test_kill_9_at_a_random_point_then_resume_ends_as_a_clean_run(
    clone: Any, clean_runs: Any, kind: str, i: int
) -> None:
    """Rounds are cases of their own, so they run side by side; WCPERF_KILL_SEED replays."""
    rng = random.Random(KILL_SEED * 100 + ROUNDS.index((kind, i)))
    where = f"seed {KILL_SEED} round {kind} {i}"
    clean = clean_runs(kind)
    url = clone()
    # Even rounds rest between small batches (kills land mostly between batches);
    # odd rounds run tiny batches back to back (kills land mostly inside one).
    pace = ["--batch-size", "40", "--sleep-ms", "25"] if i % 2 == 0 else ["--batch-size", "7"]
    proc = spawn(url, JOBS[kind] + pace)
    deadline = time.monotonic() + 30
    while (done := rows_done(url)) is None or done[0] == 0:
        assert proc.poll() is None and time.monotonic() < deadline, f"{where}: never ran"
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    at_kill = rows_done(url)
    assert at_kill is not None
    if kind == "grade":  # 690 tiny batches, or 121 with a rest: far longer than the wait
        assert at_kill[0] < at_kill[1], f"{where}: the kill landed after the job"
    again = JOBS[kind] if i % 3 else ["bulk", "resume", "1"]
    # Resumed in large batches: the end state may not depend on where batches fell.
    resumed = cli(url, *again, "--batch-size", "500")
    assert resumed.returncode == 0, f"{where}: {resumed.stderr}"
    assert state(url) == clean, f"{where}: state differs from a clean run"


def test_ctrl_c_stops_cleanly_says_interrupted_and_resumes(clone: Any) -> None:
    url = clone()
    # 100 batches with a 200 ms rest: the signal lands mid-job however loaded the machine
    proc = spawn(url, [*JOBS["grade"], "--batch-size", "40", "--sleep-ms", "200"])
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
            f"select count(*) from students s where {LIVE} and grade <> 'Graduate' and not"
            " exists (select 1 from wcperf.promotions p where p.student_id = s.id)"
        ).fetchone()
        changed = conn.execute("select count(*) from wcperf.promotions").fetchone()
    assert left == (0,) and changed == (summary["rows_total"],)


STATUS = re.compile(
    r"^job \d+ grade-transition: ([\d,]+)/([\d,]+) rows \([\d.]+ %\); [\d,]+ rows/s; "
    r"ETA (\S+); state (\w+); batch 250; batches \d+"
)


def test_off_a_terminal_a_job_prints_status_lines_at_intervals(bulk_url: str) -> None:
    """What a log or a pipe gets instead of a bar: rows, rate, ETA, state, reason."""
    run = run_cli("--database-url", bulk_url, *JOBS["grade"], "--batch-size", "250",
                  "--sleep-ms", "30", env={"WCPERF_STATUS_INTERVAL_S": "0.1"})  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [m for m in map(STATUS.match, run.stderr.splitlines()) if m]
    assert len(lines) >= 4, run.stderr  # about 20 batches of 30 ms rest: several intervals
    done = [int(m.group(1).replace(",", "")) for m in lines]
    assert done == sorted(done) and done[-1] == int(lines[-1].group(2).replace(",", ""))
    assert lines[-1].group(4) == "done" and lines[-1].group(3) == "0s"
    assert any(m.group(4) == "running" and m.group(3) != "0s" for m in lines)
    quiet = run_cli("-q", "--database-url", bulk_url, *JOBS["grade"])  # nothing left to do
    assert not [line for line in quiet.stderr.splitlines() if STATUS.match(line)]
