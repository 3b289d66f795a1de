"""The online index migration against plain builds, a writer's throughput, and verify.

On a seeded district (1 M students by default):
- the 14 indexes built with plain CREATE INDEX (same session settings), summed;
- `wcperf migrate` (online: concurrent builds, checks, ANALYZE), total; goal <= 1.5x;
- a writer inserting health records and appointments one row per transaction, on the
  idle database and during a second online migration; goal >= 70 % with no failure;
- `migrate verify --compare`: every hot query's before/after; goal >= 90 % faster.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from dataclasses import replace

import psycopg

from tests.bench.common import bench_database, save
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.migrate.online_index import BuildPolicy, MigrationHooks
from wcperf.migrate.verify import verify
from wcperf.seed.district import District
from wcperf.seed.load import seed
from wcperf.settings import Settings


class Writer:
    """A nurse-like writer: one short transaction per row, on its own connection."""

    def __init__(self, url: str, students: int) -> None:
        self.url, self.students = url, students
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        with admin.connect(self.url, autocommit=True, application_name="bench-writer") as conn:
            while not self._stop.is_set():
                student = rng.randint(1, self.students)
                try:
                    conn.execute(
                        """insert into health_records (student_id, record_type,
                                    record_date, is_confidential) values (%s, 'checkup',
                                    current_date, false)""",
                        (student,),
                    )
                    conn.execute(
                        """insert into appointments (student_id, type, status,
                                    scheduled_at) values (%s, 'checkup', 'scheduled', now())""",
                        (student,),
                    )
                    self.ok += 1
                except psycopg.Error as exc:
                    self.failed.append(type(exc).__name__)

    def __enter__(self) -> Writer:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.seconds = time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


def plain_builds(url: str, policy: BuildPolicy) -> dict[str, float]:
    """Plain builds with the same memory, and PostgreSQL's own parallelism."""
    times: dict[str, float] = {}
    with admin.connect(url, autocommit=True) as conn:
        for stmt in replace(policy, parallel_workers="auto").session_sql():
            conn.execute(stmt)
        for spec in alembic_driver.performance_indexes():
            started = time.perf_counter()
            conn.execute(f"create index {spec.name} on {spec.table} ({', '.join(spec.columns)})")
            times[spec.name] = time.perf_counter() - started
        for spec in alembic_driver.performance_indexes():
            conn.execute(f"drop index {spec.name}")
    return times


def online(db: Database, policy: BuildPolicy) -> float:
    started = time.perf_counter()
    alembic_driver.upgrade(
        db.engine, hooks=MigrationHooks(policy=policy, poll_connect=db.pool.connection)
    )
    elapsed = time.perf_counter() - started
    assert all(s.state == "valid" for s in alembic_driver.indexes(db.engine).values())
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--writer-seconds", type=float, default=10.0)
    parser.add_argument("--parallel-workers", default="auto")
    args = parser.parse_args(argv)
    workers = args.parallel_workers
    policy = BuildPolicy(parallel_workers=workers if workers == "auto" else int(workers))
    settings = replace(Settings.from_env(command="migrate"))
    with bench_database("wcperf_bench_migrate", "0001_baseline") as url:
        seeded = seed(url, District(args.students, 42))
        print(
            f"seeded {seeded.total_rows:,} rows in {seeded.seconds:.0f} s "
            f"(health_records {seeded.rows['health_records']:,}, "
            f"appointments {seeded.rows['appointments']:,})"
        )
        with admin.connect(url, autocommit=True) as conn:
            for t in ("health_records", "appointments", "medications"):
                conn.execute(f"select count(*) from {t}")  # same warm cache for both
        plain = plain_builds(url, policy)
        plain_total = sum(plain.values())
        with Database(url, settings) as db:
            online_s = online(db, policy)
            with Writer(url, args.students) as idle:
                time.sleep(args.writer_seconds)
            alembic_driver.downgrade(db.engine, "0001_baseline", MigrationHooks(policy=policy))
            with Writer(url, args.students) as busy:
                online_busy_s = online(db, policy)
            with db.pool.connection() as conn:
                verdicts = verify(conn, compare=True, repeat=3)
    ratio = online_s / plain_total
    kept = busy.rate / idle.rate
    print(f"plain CREATE INDEX x14     {plain_total:8.1f} s")
    print(
        f"wcperf migrate (online)    {online_s:8.1f} s   ratio {ratio:.2f} x "
        f"(goal <= 1.50) {'OK' if ratio <= 1.5 else 'MISSED'}"
    )
    print(
        f"writer idle                {idle.rate:8.0f} rows/s ({idle.ok:,} in "
        f"{idle.seconds:.0f} s, {len(idle.failed)} failed)"
    )
    print(
        f"writer during online build {busy.rate:8.0f} rows/s ({busy.ok:,} in "
        f"{busy.seconds:.0f} s, {len(busy.failed)} failed); kept {kept:.0%} "
        f"(goal >= 70 %, 0 failed) {'OK' if kept >= 0.7 and not busy.failed else 'MISSED'}"
    )
    print(f"online build with the writer running: {online_busy_s:.1f} s")
    print(f"{'hot query':34} {'before ms':>10} {'after ms':>9} {'faster':>7}  plan")
    for v in verdicts:
        pct = v.faster_pct or 0.0
        mark = (
            ""
            if pct >= 90
            else "  < 90 %" + (" (300-row table: seq scan is right)" if v.table_pages < 100 else "")
        )
        print(
            f"{v.query:34} {v.before.ms if v.before else 0:10.2f} {v.after.ms:9.3f} "
            f"{pct:6.1f}%  {v.after.node}{mark}"
        )
    save(
        "migrate",
        {
            "students": args.students,
            "rows": seeded.rows,
            "plain_s": plain,
            "plain_total_s": plain_total,
            "online_s": online_s,
            "ratio": ratio,
            "online_with_writer_s": online_busy_s,
            "writer_idle_rps": idle.rate,
            "writer_busy_rps": busy.rate,
            "writer_kept": kept,
            "writer_failed": len(busy.failed) + len(idle.failed),
            "verify": [v.as_dict() for v in verdicts],
        },
    )


if __name__ == "__main__":
    main()
