"""Bulk jobs against their floors, in one run, on a large district (1 M students).

- grade transition in batches, and atomic, against one hand-written UPDATE doing
  the same change to the students (goals <= 1.3x and <= 1.05x); the job also writes
  its ledger row per student (what makes it exactly-once and revertible), which the
  UPDATE does not; every run starts from the same table state (reset and VACUUMed),
  alternating, two rounds; on the platform's schema, UUID keys, its model indexes;
- P99 of a concurrent nurses' read workload (its own process, 4 threads) while
  the batched job runs with backpressure on and off, against the same workload
  on an idle database (goal with it on: <= 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import redis as redis_lib
from hdrh.histogram import HdrHistogram

from tests.bench.common import bench_database, save, student_keys
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_redis
from wcperf.jobs import launch
from wcperf.jobs.grade_transition import LADDER, GradeTransition
from wcperf.jobs.runner import Runner, RunOptions
from wcperf.settings import Settings

YEAR = 2026
PREFIX = "wcperf-bench-bulk:"
# What a DBA would write by hand for the same change to the students.
FLOOR = """
update students s set grade = l.next, "updatedAt" = now(), "updatedBy" = null
  from unnest(%(from)s::text[], %(to)s::text[]) as l(grade, next)
 where l.grade = s.grade and s."isActive" and s."deletedAt" is null
"""


def reset(url: str) -> None:
    """Every student back to the seeded grade; ledger and jobs emptied; dead rows vacuumed."""
    with admin.connect(url, autocommit=True) as conn:
        conn.execute("set statement_timeout = 0")
        conn.execute(
            'update students s set grade = p.grade, "updatedAt" = p."updatedAt",'
            ' "updatedBy" = p."updatedBy" from bench_pristine p'
            " where s.id = p.id and s.grade is distinct from p.grade"
        )
        conn.execute(
            "truncate wcperf.promotions, wcperf.student_moves, wcperf.audit_log, wcperf.bulk_jobs"
        )
        conn.execute("vacuum (analyze) students")
        conn.execute("vacuum (analyze) wcperf.promotions")
        conn.execute("checkpoint")


def floor(url: str) -> float:
    """One hand-written UPDATE doing the same change."""
    with admin.connect(url, autocommit=True) as conn:
        conn.execute("set statement_timeout = 0")
        started = time.perf_counter()
        conn.execute(FLOOR, LADDER)
        return time.perf_counter() - started


def job(db: Database, redis_client: Any = None, **options: Any) -> tuple[float, int, int]:
    kind = GradeTransition()
    plan = launch.plan(db, lambda c: kind.plan(c, kind.args(YEAR)))
    opened, _ = launch.open_job(db, plan, "bench")
    runner = Runner(
        db, kind, opened.id, RunOptions(**options), redis_client=redis_client, prefix=PREFIX
    )
    started = time.perf_counter()
    outcome = runner.run()
    assert outcome.status == "done", outcome.reason
    return time.perf_counter() - started, outcome.job.rows_done, outcome.batches


def reader(url: str, seconds: float, threads: int, keys: int, redis_url: str | None) -> Any:
    cmd = [sys.executable, "-m", "tests.bench.bulk_reader", url, str(seconds), str(threads)]
    cmd += [str(keys)] + ([redis_url] if redis_url else [])
    env = {**os.environ, "WCPERF_REDIS_PREFIX": PREFIX}  # where the job looks for its pool
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def read_result(proc: Any) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    return json.loads(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    settings = replace(Settings.from_env(command="bench"), redis_prefix=PREFIX)
    redis_url = resolve_redis(settings).url
    client = redis_lib.Redis.from_url(redis_url) if redis_url else None
    with bench_database("wcperf_bench_bulk", args.students, migrate=True) as url:
        with admin.connect(url, autocommit=True) as conn:
            conn.execute(
                "create unlogged table bench_pristine as"
                ' select id, grade, "updatedAt", "updatedBy" from students'
            )
            conn.execute("alter table bench_pristine add primary key (id)")
        keys = student_keys(url)
        times: dict[str, list[float]] = {"update": [], "batched": [], "atomic": []}
        rows = batches = 0
        with Database(url, settings) as db:
            # The first UPDATE after COPY meets full pages; from then on every run
            # starts from the same reset-and-vacuumed table. Warm up once, untimed.
            reset(url)
            floor(url)
            for _ in range(args.rounds):
                reset(url)
                times["update"].append(floor(url))
                reset(url)
                seconds, rows, batches = job(db, client)
                times["batched"].append(seconds)
                reset(url)
                times["atomic"].append(job(db, client, atomic=True)[0])
            best = {k: min(v) for k, v in times.items()}
            print(f"grade transition of {rows:,} students ({batches} batches when batched):")
            for k in ("update", "batched", "atomic"):
                print(
                    f"  {k:<8} best {best[k]:6.2f} s  runs "
                    + ", ".join(f"{t:.2f}" for t in times[k])
                    + ("" if k == "update" else f"  → {best[k] / best['update']:.2f}x the UPDATE")
                )
            window = statistics.median(times["batched"])
            latency: dict[str, Any] = {}
            for name, on in [
                ("idle", None),
                ("backpressure off", False),
                ("backpressure on", True),
            ]:
                merged, runs = HdrHistogram(1, 60_000_000, 3), []
                for _ in range(args.repeat):
                    reset(url)
                    proc = reader(url, window + 2.5, args.readers, keys, redis_url)
                    time.sleep(2.5)  # started, connected and publishing: a P99 before the job
                    if on is not None:
                        seconds, _, batches = job(db, client, backpressure=on)
                        runs.append((seconds, batches))
                    result = read_result(proc)
                    merged.add(HdrHistogram.decode(result["hdr"].encode("ascii")))
                latency[name] = {
                    "count": merged.get_total_count(),
                    **{f"p{p}_us": merged.get_value_at_percentile(p) for p in (50, 95, 99)},
                    "job_s": [round(r[0], 2) for r in runs],
                    "batches": [r[1] for r in runs],
                }
        idle = latency["idle"]
        print(
            f"nurses' reads ({args.readers} threads, student by id with nurse; "
            f"{args.repeat} runs merged) during the batched job:"
        )
        for name, r in latency.items():
            ratio = r["p99_us"] / idle["p99_us"]
            extra = f"  job {', '.join(map(str, r['job_s']))} s" if r["job_s"] else ""
            print(
                f"  {name:<17} P50 {r['p50_us'] / 1000:6.2f} ms  P95 {r['p95_us'] / 1000:6.2f} ms"
                f"  P99 {r['p99_us'] / 1000:6.2f} ms ({ratio:.2f}x idle){extra}"
            )
    path = save(
        "bulk",
        {"students": args.students, "rows": rows, "times_s": times, "latency": latency},
    )
    print(f"results: {path}")
    if client is not None:
        client.close()


if __name__ == "__main__":
    main()
