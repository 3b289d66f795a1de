"""Bad, broken and hostile input, as a user or an attacker types it, across every command.

Each case must end in one line `wcperf: error: …` naming what was wrong, exit 2, no
traceback, nothing raw from the terminal's point of view, and the database exactly
as it was (row checksums of every platform table and of wcperf's own).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from psycopg import sql

from tests.conftest import DISTRICT, RUN_ID, run_cli
from tests.platform_dump import rows as platform_rows
from tests.platform_dump import schema as platform_schema
from wcperf.db import admin

SCHOOL = str(DISTRICT.uuid_of("schools", 1))
NURSE = str(DISTRICT.uuid_of("users", 0))
ESCAPES = "\x1b[2J\x1b]0;owned\x07"
FORGED = "x\nwcperf: error: forged"
WCPERF_TABLES = ("bulk_jobs", "audit_log", "promotions", "student_moves", "built_indexes", "seeds")


def checksums(url: str) -> dict[str, object]:
    """The platform's schema dump and row fingerprints, and every row of wcperf's own."""
    found: dict[str, object] = dict(platform_rows(url))
    found["platform schema"] = platform_schema(url)
    with admin.connect(url) as conn:
        for table in WCPERF_TABLES:
            found[f"wcperf.{table}"] = conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text),"
                    " '')) from {} t"
                ).format(sql.Identifier("wcperf", table))
            ).fetchone()
    return found


@pytest.fixture(scope="module")
def hostile_url(bulk_template: str) -> Iterator[str]:
    """A migrated district with one finished job in it (to control after it is done)."""
    url = admin.with_database(bulk_template, f"wcperf_hostile_{RUN_ID}_{uuid.uuid4().hex[:6]}")
    admin.clone_database(bulk_template, url)
    done = run_cli(
        "-q", "--database-url", url, "bulk", "grade-transition", "--school-year", "2026",
        "--school", SCHOOL, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    yield url
    admin.drop_database(url)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    made = {
        "utf16.csv": "id\n" + str(DISTRICT.uuid_of("students", 3)) + "\n",
        "huge-id.csv": "id\n100000000000000000000\n",
        "superscript.csv": "id\n²\n",
        "header-only.csv": "name,grade\nAda,5\n",
        "nan.toml": 'users = 5\nduration = nan\n[[tasks]]\nop = "point_read"\n',
        "inf.toml": 'users = 5\nduration = inf\n[[tasks]]\nop = "point_read"\n',
        "many.toml": 'users = 1000000000000\nduration = "5s"\n[[tasks]]\nop = "point_read"\n',
        "typo.toml": 'users = 5\nduration = "5s"\nduraton = "9s"\n[[tasks]]\nop = "point_read"\n',
        "badop.toml": 'users = 5\nduration = "5s"\n[[tasks]]\nop = "drop_table"\n',
        "weight.toml": 'users = 5\nduration = "5s"\n[[tasks]]\nop = "point_read"\nweight = 1e400\n',
    }
    for name, text in made.items():
        path = d / name
        if name == "utf16.csv":
            path.write_bytes(text.encode("utf-16"))
        else:
            path.write_text(text)
    (d / "binary.csv").write_bytes(bytes(range(256)) * 10)
    (d / "latin1.toml").write_bytes('name = "caf\xe9"\nusers = 1\n'.encode("latin-1"))
    (d / "result.json").write_text("{not json")
    return {p.name: p for p in d.iterdir()} | {"dir": d}


def _cases(f: dict[str, Path], done_job: int, busy_port: int) -> list[tuple[list[str], str]]:
    """(arguments, what the one line must say)."""
    transfer = ["bulk", "transfer", "--to-school", SCHOOL, "--dry-run", "--students"]
    grade = ["bulk", "grade-transition", "--school-year", "2026", "--dry-run"]
    return [
        # transfer lists: encodings, binary, endless, ids out of any range
        ([*transfer, str(f["utf16.csv"])], "not a UTF-8 text file"),
        ([*transfer, str(f["binary.csv"])], "not a UTF-8 text file"),
        ([*transfer, "/dev/zero"], "larger than 64 MiB"),
        ([*transfer, str(f["huge-id.csv"])], "line 2 holds no valid student id"),
        ([*transfer, str(f["superscript.csv"])], "line 2 holds no valid student id"),
        ([*transfer, str(f["header-only.csv"])], "header without an id"),
        ([*transfer, str(f["dir"] / "missing.csv")], "No such file or directory"),
        ([*transfer, str(f["dir"])], "cannot read"),
        (["bulk", "transfer", "--to-school", "42", "--from-school", SCHOOL], "must be a UUID"),
        # job numbers and sizes
        ([*grade[:3], "2062", "--dry-run"], "not a school year near now"),
        ([*grade[:3], "99999999999999999999", "--dry-run"], "not a school year near now"),
        (
            [*grade[:3], "2020", "--dry-run"],
            f"ended {date.today().year - 2020} years ago: pass --yes",
        ),
        ([*grade, "--batch-size", "100000000000000000000"], "--batch-size must be between"),
        ([*grade, "--batch-size", "²"], "--batch-size must be auto or a whole number"),
        ([*grade, "--batch-size", "0"], "--batch-size must be auto or a whole number"),
        ([*grade, "--sleep-ms", "inf"], "--sleep-ms must be a finite number"),
        ([*grade, "--sleep-ms", "nan"], "'--sleep-ms'"),
        ([*grade, "--target-batch-ms", "-1"], "'--target-batch-ms'"),
        ([*grade, "--throttle", "nope=1:2"], "unknown throttle signal"),
        ([*grade, "--school", ESCAPES], "--school must be a UUID"),
        (["bulk", "nurse-reassign", "--from", "1", "--balance"], "--from must be a UUID"),
        (["bulk", "nurse-reassign", "--from", NURSE], "exactly one of --to NURSE or --balance"),
        (["bulk", "status", "424242"], "no bulk job 424242"),
        (["bulk", "status", FORGED], "Invalid value for 'JOB'"),
        (["bulk", "revert", "0"], "JOB must be a bulk job number"),
        (["bulk", "set", str(done_job), "--batch-size", "5"], f"bulk job {done_job} is done"),
        (["bulk", "pause", str(done_job)], f"bulk job {done_job} is done"),
        (["bulk", "abort", str(done_job)], f"bulk job {done_job} is done"),
        (["bulk", "resume", str(done_job)], f"bulk job {done_job} is done"),
        # scenarios and load options
        (["loadtest", str(f["latin1.toml"])], "not a UTF-8 text file"),
        (["loadtest", str(f["nan.toml"])], "duration: must be a finite number"),
        (["loadtest", str(f["inf.toml"])], "duration: must be a finite number"),
        (["loadtest", str(f["many.toml"])], "users: must be between 1 and 10,000"),
        (["loadtest", str(f["typo.toml"])], "duraton: unknown field"),
        (["loadtest", str(f["badop.toml"])], "unknown operation 'drop_table'"),
        (["loadtest", str(f["weight.toml"])], "weight: must be a finite number"),
        (["loadtest", "no-such-scenario"], "no scenario 'no-such-scenario'"),
        (["loadtest", "school-day", "--users", "1000000000"], "--users must be between"),
        (["loadtest", "school-day", "--spawn-rate", "nan"], "'--spawn-rate'"),
        (["loadtest", "school-day", "--duration", "inf"], "--duration: must be like 60s"),
        (["loadtest", "school-day", "--processes", "100000"], "Invalid value for '--processes'"),
        (["loadtest", "school-day", "--json", "/no/such/folder/r.json"], "does not exist"),
        (["loadtest", "school-day", "--html", str(f["dir"])], "is a folder"),
        (["loadtest", "school-day", "--worker", ESCAPES], "--worker must be"),
        (["loadtest", "compare", str(f["result.json"]), str(f["result.json"])], "not a wcperf"),
        (["loadtest", "compare", "/no/such/a.json", "/no/b.json"], "No such file or directory"),
        # monitor
        (["monitor", "live", "--interval", "nan"], "--interval"),
        (["monitor", "serve", "--port", str(busy_port)], "in use"),
        (["monitor", "serve", "--host", "no-such-host.invalid", "--token", "t" * 16], "no such"),
        (["monitor", "serve", "--host", "0.0.0.0"], "without --token"),
        (["monitor", "serve", "--host", ESCAPES, "--token", "t" * 16], "no such address"),
        # migrations, seed, cache
        (["migrate", "downgrade", ESCAPES], "Can't locate revision"),
        (["migrate", "downgrade", FORGED, "--sql"], "Can't locate revision"),
        (["seed", "--students", "0"], "Invalid value for '--students'"),
        (["seed", "--students", "100000000000"], "Invalid value for '--students'"),
        (["cache", "flush", "--prefix", "A*"], "--prefix must be a cache kind"),
    ]


ENV_CASES: list[tuple[dict[str, str], list[str], str]] = [
    ({"WCPERF_REDIS_PREFIX": "*"}, ["cache", "stats"], "WCPERF_REDIS_PREFIX may hold only"),
    ({"WCPERF_REDIS_PREFIX": "a[b]"}, ["cache", "stats"], "WCPERF_REDIS_PREFIX may hold only"),
    ({"WCPERF_POOL_SIZE": "many"}, ["bulk", "list"], "WCPERF_POOL_SIZE must be a whole number"),
    ({"WCPERF_ENV": "staging"}, ["bulk", "list"], "WCPERF_ENV must be one of"),
]


def _check(result: subprocess.CompletedProcess[str], expect: str) -> str | None:
    """What is wrong with how a refusal came out, or None."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    problems = []
    if result.returncode != 2:
        problems.append(f"exit {result.returncode}")
    if len(lines) != 1 or not lines[0].startswith("wcperf: error: "):
        problems.append(f"not one error line: {result.stderr[-400:]!r}")
    elif expect not in lines[0]:
        problems.append(f"says {lines[0]!r}")
    if "Traceback" in result.stderr or "unexpected" in result.stderr:
        problems.append("a traceback or an 'unexpected' error")
    if any(ch in result.stdout + result.stderr for ch in "\x1b\x07\x9b"):
        problems.append("raw control characters in the output")
    return "; ".join(problems) or None


def test_bad_input_gets_one_line_exit_2_and_writes_nothing(
    hostile_url: str, files: dict[str, Path]
) -> None:
    with admin.connect(hostile_url) as conn:
        done_job = conn.execute("select max(id) from wcperf.bulk_jobs").fetchone()[0]
    before = checksums(hostile_url)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = [
            ({}, args, expect) for args, expect in _cases(files, done_job, busy.getsockname()[1])
        ]
        cases += ENV_CASES
        assert len(cases) >= 40

        def one(case: tuple[dict[str, str], list[str], str]) -> str | None:
            env, args, expect = case
            result = run_cli("-q", "--database-url", hostile_url, *args, env=env, timeout=120)
            problem = _check(result, expect)
            return f"{args}: {problem}" if problem else None

        with ThreadPoolExecutor(4) as pool:
            problems = [p for p in pool.map(one, cases) if p]
    assert problems == [], "\n".join(problems)
    assert checksums(hostile_url) == before


def test_escapes_in_a_url_are_shown_inert(hostile_url: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:1/{ESCAPES}{FORGED}"
    result = run_cli("--database-url", url, "bulk", "list")
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 2  # "using …" and the error, nothing forged
    assert lines[1].startswith("wcperf: error: ") and "\\x1b[2J" in result.stderr
    assert "\x1b" not in result.stderr and "\nwcperf: error: forged" not in result.stderr


def test_downgrade_takes_alembics_relative_spelling(hostile_url: str) -> None:
    result = run_cli("-q", "--database-url", hostile_url, "migrate", "downgrade", "-1", "--sql")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-- undoes: 0002_performance_indexes")
    assert "DROP INDEX CONCURRENTLY" in result.stdout


def test_a_real_bug_says_how_to_report_it() -> None:
    """Anything not foreseen is still one line, and says it is a bug and how to report it."""
    code = (
        "import sys; from wcperf.cli import app as a\n"
        "def boom(*_a, **_k): raise LookupError('x')\n"
        "a.run = boom\n"
        "a.main(['bulk', 'list'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "wcperf: error: unexpected LookupError: a bug in wcperf; please report it, with the "
        "command and the traceback from --debug"
    )


def test_metrics_serve_on_ipv6_loopback(hostile_url: str) -> None:
    """`--host ::1` binds an IPv6 socket rather than failing in the address family."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    from wcperf.observe.prometheus import server
    from wcperf.observe.snapshot import Snapshot

    httpd = server(lambda: Snapshot(taken_at=0.0), "::1", 0, None)
    try:
        assert httpd.socket.family == socket.AF_INET6
    finally:
        httpd.server_close()


def test_sessions_with_hostile_application_names_are_shown_as_typed(hostile_url: str) -> None:
    """A session named `[/]` once crashed the monitor (rich markup); names are text now."""
    names = ("[/]", "[bold red]nurse[/]", "app\x1b[2J")  # the server escapes the last itself
    conns = [admin.connect(hostile_url, application_name=n) for n in names]
    try:
        live = run_cli("-q", "--database-url", hostile_url, "monitor", "live", "--once")
        snap = run_cli("-q", "--database-url", hostile_url, "monitor", "snapshot")
        as_json = run_cli("-q", "--database-url", hostile_url, "monitor", "snapshot", "--json")
    finally:
        for conn in conns:
            conn.close()
    for result in (live, snap, as_json):
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout + result.stderr
    for result in (live, snap):
        assert "[/]" in result.stdout and "[bold red]nurse[/]" in result.stdout
