"""The online index migration against plain builds, a writer's throughput, and verify.

On a seeded district in the platform's schema, its model indexes present (1 M
students by default):
- the 14 indexes built with plain CREATE INDEX (same session settings), summed;
- `wcperf migrate` (online: concurrent builds, checks, ANALYZE), total; goal <= 1.5x;
- a writer inserting health records and appointments one row per transaction, on the
  idle database and during a second online migration; goal >= 70 % with no failure;
- `migrate verify` on the same data before the migration (the platform's model
  indexes only) and after it: every hot query's plan and time, before -> after.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from dataclasses import replace

import psycopg
from psycopg import sql

from tests.bench.common import bench_database, save
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.migrate.online_index import BuildPolicy, MigrationHooks
from wcperf.migrate.verify import verify
from wcperf.settings import Settings


class Writer:
    """A nurse-like writer: one short transaction per row, on its own connection."""

    def __init__(self, url: str, students: list[str]) -> None:
        self.url, self.students = url, students
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        with admin.connect(self.url, autocommit=True, application_name="bench-writer") as conn:
            while not self._stop.is_set():
                student = rng.choice(self.students)
                try:
                    conn.execute(
                        """insert into health_records (id, "studentId", "recordType", title,
                                  description, "recordDate", "isConfidential", "createdAt",
                                  "updatedAt") values (gen_random_uuid(), %s, 'CHECKUP',
                                  'Visit', 'Visit', now(), false, now(), now())""",
                        (student,),
                    )
                    conn.execute(
                        """insert into appointments (id, "studentId", type, status, reason,
                                  "scheduledAt", "createdAt", "updatedAt")
                           values (gen_random_uuid(), %s, 'ROUTINE_CHECKUP', 'SCHEDULED',
                                   'Visit', now(), now(), now())""",
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
            conn.execute(
                sql.SQL("create index {} on {} ({})").format(
                    spec.ident(), sql.Identifier(spec.table), spec.columns_sql()
                )
            )
            times[spec.name] = time.perf_counter() - started
        for spec in alembic_driver.performance_indexes():
            conn.execute(sql.SQL("drop index {}").format(spec.ident()))
    return times


def online(db: Database, policy: BuildPolicy) -> float:
    started = time.perf_counter()
    alembic_driver.upgrade(
        db.engine, hooks=MigrationHooks(policy=policy, poll_connect=db.pool.connection)
    )
    elapsed = time.perf_counter() - started
    assert all(s.state == "present" for s in alembic_driver.indexes(db.engine).values())
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
    with bench_database("wcperf_bench_migrate", args.students) as url:
        with admin.connect(url, autocommit=True) as conn:
            rows = {
                t: conn.execute(
                    sql.SQL("select count(*) from {}").format(sql.Identifier(t))
                ).fetchone()[0]  # type: ignore[index]
                for t in ("health_records", "appointments", "medications")
            }  # also: the same warm cache for both kinds of build
            keys = [str(r[0]) for r in conn.execute("select id from students limit 20000")]
            conn.execute("analyze")
            before = {v.query: v for v in verify(conn, repeat=3)}
        plain = plain_builds(url, policy)
        plain_total = sum(plain.values())
        with Database(url, settings) as db:
            online_s = online(db, policy)
            with Writer(url, keys) as idle:
                time.sleep(args.writer_seconds)
            alembic_driver.downgrade(db.engine, "0001_wcperf_state", MigrationHooks(policy=policy))
            with Writer(url, keys) as busy:
                online_busy_s = online(db, policy)
            with db.pool.connection() as pooled:
                verdicts = verify(pooled, repeat=3)
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
    print(f"{'hot query':34} {'before ms':>10} {'after ms':>9} {'faster':>7}  plan before -> after")
    for v in verdicts:
        was = before[v.query].after
        pct = 100 * (was.ms - v.after.ms) / was.ms if was.ms else 0.0
        used = ", ".join(v.after.indexes) or "-"
        print(
            f"{v.query:34} {was.ms:10.2f} {v.after.ms:9.3f} {pct:6.1f}%  "
            f"{was.node} -> {v.after.node} ({used})"
        )
    save(
        "migrate",
        {
            "students": args.students,
            "rows": rows,
            "plain_s": plain,
            "plain_total_s": plain_total,
            "online_s": online_s,
            "ratio": ratio,
            "online_with_writer_s": online_busy_s,
            "writer_idle_rps": idle.rate,
            "writer_busy_rps": busy.rate,
            "writer_kept": kept,
            "writer_failed": len(busy.failed) + len(idle.failed),
            "verify": [{**v.as_dict(), "before_ms": before[v.query].after.ms} for v in verdicts],
        },
    )


if __name__ == "__main__":
    main()
