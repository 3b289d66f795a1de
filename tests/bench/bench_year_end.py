"""Year-end beside a school day: the nurses' cache while grade transitions run.

school-day (its 50 users, two load processes, sharing Redis) runs twice on the
medium district (100 k students): alone, then while batched grade transitions
with backpressure run one school year after another from the first second to
the last (each year moves every student still on the ladder once more). The
floor is the same load without the job, measured in the same run. Goal: cache
hit rate within 10 points of the floor's, and the load's P99 beside it.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import replace
from datetime import date
from typing import Any

from tests.bench.common import bench_database, save
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_redis
from wcperf.jobs import launch
from wcperf.jobs.grade_transition import GradeTransition
from wcperf.jobs.runner import RunOptions
from wcperf.load import scenario as scenarios
from wcperf.load.replay import replay
from wcperf.load.result import document
from wcperf.settings import Settings

PREFIX = "wcperf-bench-year-end:"


def transitions(db: Database, redis_url: str, stop: threading.Event) -> dict[str, Any]:
    """Grade transitions, year after year, until `stop`: rows moved, jobs, batches."""
    kind = GradeTransition()
    this_year = date.today().year
    years = [this_year + 1, this_year, *range(this_year - 1, this_year - 11, -1)]
    done = {"rows": 0, "jobs": 0, "batches": 0, "seconds": 0.0}
    for year in years:
        if stop.is_set():
            break
        plan = launch.plan(db, lambda c, y=year: kind.plan(c, kind.args(y, confirmed=True)))
        job, _ = launch.open_job(db, plan, "bench")
        started = time.perf_counter()
        outcome = launch.run(db, job, RunOptions(backpressure=True), redis_url=redis_url)
        done["seconds"] += time.perf_counter() - started
        done["rows"] += outcome.job.rows_done
        done["jobs"] += 1
        done["batches"] += outcome.batches
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["WCPERF_REDIS_PREFIX"] = PREFIX  # the load's workers and the job share it
    settings = replace(Settings.from_env(command="bench"), redis_prefix=PREFIX)
    redis_url = resolve_redis(settings).url
    if redis_url is None:
        raise SystemExit("no Redis: the cache this benchmark measures needs one")
    day = scenarios.load(scenarios.resolve("school-day")).with_overrides(duration_s=args.seconds)
    runs: dict[str, Any] = {}
    with (
        bench_database("wcperf_bench_year_end", args.students, migrate=True) as url,
        Database(url, settings) as db,
    ):
        for name in ("alone", "with grade transitions"):
            stop = threading.Event()
            job: dict[str, Any] = {}
            worker = None
            if name != "alone":
                worker = threading.Thread(
                    target=lambda j=job, s=stop: j.update(transitions(db, redis_url, s)),
                    daemon=True,
                )
                worker.start()
            result = document(replay(day, url, processes=args.processes))
            stop.set()
            if worker is not None:
                worker.join()
            o, cache = result["overall"], result["cache"]
            runs[name] = {
                "hit_rate_pct": cache["hit_rate_pct"],
                "hits": cache["hits"],
                "loads": cache.get("loads"),
                **{k: o[k] for k in ("count", "rps", "errors", "p50_ms", "p95_ms", "p99_ms")},
                "job": job,
                "reads": cache.get("reads", {}),
                "operations": {
                    op: {k: f[k] for k in ("count", "p50_ms", "p95_ms", "p99_ms")}
                    for op, f in result["operations"].items()
                },
            }
    floor, ours = runs["alone"], runs["with grade transitions"]
    print(
        f"school-day, {day.users} users, {args.processes} processes, {args.seconds:.0f} s"
        f" after a {day.warmup_s:.0f} s warm-up, {args.students:,} students:"
    )
    for name, r in runs.items():
        extra = ""
        if r["job"]:
            j = r["job"]
            extra = (
                f"  jobs {j['jobs']}, {j['rows']:,} students moved in {j['batches']} batches"
                f" ({j['rows'] / max(j['seconds'], 1e-9):,.0f} rows/s)"
            )
        print(
            f"  {name:<23} cache hit {r['hit_rate_pct']:5.1f} %  P50 {r['p50_ms']:6.2f} ms"
            f"  P95 {r['p95_ms']:7.2f} ms  P99 {r['p99_ms']:7.2f} ms  {r['rps']:,.0f}/s{extra}"
        )
    print("  hit rate per read, alone → with the job:")
    for read, f in floor["reads"].items():
        with_job = ours["reads"].get(read, {}).get("hit_rate_pct")
        print(f"    {read:<34} {f['hit_rate_pct']:5.1f} % → {with_job} %")
    gap = floor["hit_rate_pct"] - ours["hit_rate_pct"]
    print(
        f"  → hit rate {gap:+.1f} points below the load alone (goal: within 10);"
        f" P99 {ours['p99_ms'] / floor['p99_ms']:.2f}x the load alone"
    )
    print(f"results: {save('year_end', {'students': args.students, 'runs': runs})}")


if __name__ == "__main__":
    main()
