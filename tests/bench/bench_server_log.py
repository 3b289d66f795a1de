"""Server-log ingestion: wcperf against pgBadger and a plain read of the same file;
per-query P95/P99 against the exact values; what logging every statement costs a
point read.

The log is built from a real one: a PostgreSQL of the bench's own (the embedded
binaries) logs a platform-like mix in jsonlog; those records are then repeated
with a fresh literal and duration in each line up to --lines, so every line is a
new text as a real log's are, and the exact durations are known.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.bench.common import save
from wcperf.db.embedded import EmbeddedPostgres
from wcperf.observe import histogram as hdr
from wcperf.observe.server_log import Folder, Records

MARK = 987654321  # stands for each line's literal in the sampled records
SHAPES = [
    'select id, "firstName" from students where id = {m}',
    'select count(*) from health_records where "studentId" = {m} and "deletedAt" is null',
    'select * from appointments where "nurseId" = {m} order by "scheduledAt" limit 20',
    "update appointments set status = 'CONFIRMED' where id = {m}",
    "select name from medications where id = {m}",
    "insert into visits (id, note) values ({m}, 'seen at recess')",
    'select grade, count(*) from students where "schoolId" = {m} group by grade',
    'select * from allergies where "studentId" = {m}',
    "delete from sessions where id = {m}",
    "select email from users where id = {m} and role = 'NURSE'",
    'select 1 from incidents where "studentId" = {m} limit 1',
    'select * from immunizations where "studentId" = {m}',
]
TABLES = [
    'students (id int, "firstName" text, grade text, "schoolId" int)',
    'health_records (id int, "studentId" int, "deletedAt" timestamptz)',
    'appointments (id int, "nurseId" int, "scheduledAt" timestamptz, status text)',
    "medications (id int, name text)",
    "visits (id int, note text)",
    'allergies ("studentId" int)',
    "sessions (id int)",
    "users (id int, email text, role text)",
    'incidents ("studentId" int)',
    'immunizations ("studentId" int)',
]
WEIGHTS = [30, 12, 10, 8, 8, 6, 5, 5, 5, 4, 4, 3]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sample(home: Path) -> list[str]:
    """Real jsonlog records, one per shape, as the server writes them."""
    port = _port()
    pg = EmbeddedPostgres(home, port=port)
    pg.start(
        listen_port=port,
        settings={
            "logging_collector": "on",
            "log_destination": "jsonlog",
            "log_min_duration_statement": "0",
        },
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        with psycopg.connect(url, autocommit=True) as setup:
            setup.execute("set log_min_duration_statement = -1")
            for ddl in TABLES:
                setup.execute(f"create table {ddl}")
        with psycopg.connect(url, autocommit=True, application_name="nurse-app") as conn:
            for shape in SHAPES:
                conn.execute(shape.format(m=MARK))
            conn.execute("select pg_sleep(0.3)")
        records = []
        for path in (pg.data_dir / "log").glob("*.json"):
            for line in path.read_text().splitlines():
                if str(MARK) in line and '"message":"duration: ' in line:
                    records.append(line)
        return records
    finally:
        pg.stop()


def _build(path: Path, records: list[str], lines: int, rng: random.Random) -> dict[int, list[int]]:
    """The log file; the exact durations (µs) per shape."""
    templates = []
    for raw in records:
        record = json.loads(raw)
        message = record["message"]
        _, _, rest = message.partition(" ms  ")
        record["message"] = "duration: {d} ms  " + rest.replace(str(MARK), "{m}")
        templates.append(json.dumps(record).replace("{d}", "%s").replace("{m}", "%s"))
    shape_of = list(range(len(templates)))  # one record per shape, in the order sent
    durations: dict[int, list[int]] = {i: [] for i in range(len(templates))}
    picks = rng.choices(range(len(templates)), weights=[WEIGHTS[s] for s in shape_of], k=lines)
    with path.open("w") as out:
        for n, i in enumerate(picks):
            us = int(rng.lognormvariate(math.log(400 + 200 * i), 0.8))
            durations[i].append(us)
            out.write(templates[i] % (f"{us // 1000}.{us % 1000:03d}", n) + "\n")
    return durations


def _nearest(values: list[int], pct: float) -> int:
    """The exact value at HdrHistogram's rank for `pct`: round(pct / 100 * n)."""
    ordered = sorted(values)
    return ordered[max(1, int(pct / 100 * len(ordered) + 0.5)) - 1]


def _ingest(path: Path) -> tuple[float, Folder]:
    folder, records = Folder(), Records("jsonlog")
    started = time.perf_counter()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            folder.add(records.feed(chunk))
    folder.figures()  # what the monitor does each refresh: histograms brought up to date
    return time.perf_counter() - started, folder


def _plain_read(path: Path) -> float:
    started = time.perf_counter()
    n = 0
    with path.open("rb") as fh:
        for _ in fh:
            n += 1
    return time.perf_counter() - started


def _pgbadger(path: Path, out: Path) -> float | None:
    if shutil.which("pgbadger") is None:
        return None
    started = time.perf_counter()
    subprocess.run(
        ["pgbadger", "-q", "-j", "1", "-f", "jsonlog", "-x", "text", "-o", str(out), str(path)],
        check=True,
        timeout=3600,
    )
    return time.perf_counter() - started


def _logging_cost(home: Path, reads: int) -> dict[str, float]:
    """Point reads in one session with log_min_duration_statement -1, then 0."""
    port = _port()
    pg = EmbeddedPostgres(home, port=port)
    pg.start(
        listen_port=port,
        settings={"logging_collector": "on", "log_destination": "jsonlog"},
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    figures = {}
    try:
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
            conn.execute("create table keyed (id int primary key, v text)")
            conn.execute("insert into keyed select g, 'v' || g from generate_series(1, 10000) g")
            for label, setting in (("off", "-1"), ("on", "0"), ("off_again", "-1")):
                conn.execute(f"set log_min_duration_statement = {setting}")
                h = hdr.new_histogram()
                for i in range(reads):
                    t = time.perf_counter_ns()
                    conn.execute("select v from keyed where id = %s", (i % 10000 + 1,)).fetchone()
                    h.record_value(max(1, (time.perf_counter_ns() - t) // 1000))
                figures[f"{label}_p50_us"] = h.get_value_at_percentile(50)
                figures[f"{label}_p99_us"] = h.get_value_at_percentile(99)
                figures[f"{label}_mean_us"] = round(h.get_mean_value(), 1)
    finally:
        pg.stop()
    return figures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_server_log")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wcperf-bench-log-") as tmp:
        home = Path(tmp)
        records = _sample(home / "sample")
        log = home / "postgresql.json"
        durations = _build(log, records, args.lines, random.Random(42))
        size_mb = log.stat().st_size / 1e6
        print(
            f"log: {args.lines:,} statements, {size_mb:,.0f} MB, {len(records)} real record shapes"
        )
        plain = _plain_read(log)
        ours, folder = _ingest(log)
        badger = _pgbadger(log, home / "pgbadger.txt")
        print(f"plain read of the file    {plain:7.2f} s")
        print(
            f"wcperf ingestion          {ours:7.2f} s  ({args.lines / ours:,.0f} lines/s, "
            f"{ours / plain:.1f}x the plain read)"
        )
        if badger is None:
            print("pgBadger                  not installed (apt-get install pgbadger)")
        else:
            print(
                f"pgBadger -j 1             {badger:7.2f} s  (wcperf is {badger / ours:.2f}x "
                "as fast per core)"
            )
        assert folder.statements == args.lines, (folder.statements, args.lines)
        worst = 0.0
        by_count = sorted(folder.series.values(), key=lambda s: s.logged, reverse=True)[:10]
        exact_by_size = {len(v): v for v in durations.values()}
        print("top 10: count, P95 and P99 (ms), wcperf / exact")
        for s in by_count:
            exact = exact_by_size[s.logged]
            for pct in (95, 99):
                got = hdr.counts_percentile(hdr.counts(s.histogram), pct)
                want = _nearest(exact, pct)
                worst = max(worst, abs(got - want) / want)
            print(
                f"  {s.logged:>8,}  P95 {hdr.percentile_ms(s.histogram, 95):8.3f} / "
                f"{_nearest(exact, 95) / 1000:8.3f}  P99 {hdr.percentile_ms(s.histogram, 99):8.3f}"
                f" / {_nearest(exact, 99) / 1000:8.3f}  {s.query.normalized[:50]}"
            )
        print(f"largest percentile difference: {worst:.3%} (HDR precision 0.1 %)")
        cost = _logging_cost(home / "cost", args.reads)
        print(
            "point read, log_min_duration_statement -1 / 0 / -1: "
            f"P50 {cost['off_p50_us']} / {cost['on_p50_us']} / {cost['off_again_p50_us']} µs, "
            f"P99 {cost['off_p99_us']} / {cost['on_p99_us']} / {cost['off_again_p99_us']} µs, "
            f"mean {cost['off_mean_us']} / {cost['on_mean_us']} / {cost['off_again_mean_us']} µs"
        )
        path = save(
            "server_log",
            {
                "lines": args.lines,
                "log_mb": round(size_mb, 1),
                "plain_read_s": round(plain, 3),
                "wcperf_s": round(ours, 3),
                "pgbadger_s": None if badger is None else round(badger, 3),
                "wcperf_vs_pgbadger": None if badger is None else round(badger / ours, 2),
                "largest_percentile_difference": round(worst, 5),
                "logging_cost": cost,
            },
        )
        print(f"written to {path}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
