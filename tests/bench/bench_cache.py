"""Cache latency against its floors, in one run.

- L1 hit (goal <= 5 µs);
- L2 hit against a raw redis-py GET of the same payload (goal <= 1.3x);
- each hot path read from the database against the same read from the cache.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis as redis_lib
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.bench.common import bench_database, save
from wcperf.cache.keys import Sealer
from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_redis
from wcperf.settings import Settings
from wcperf.workload import hot_paths as hp

SECRET = b"bench-secret-0123456789abcdef01"
PREFIX = "wcperf-bench:"


def per_call_us(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(n):
            fn()
        times.append((time.perf_counter_ns() - started) / n / 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=100_000)
    args = parser.parse_args(argv)
    settings = Settings.from_env(command="bench")
    redis_url = resolve_redis(settings).url
    if redis_url is None:
        print("no Redis: cache benchmark skipped")
        return
    with (
        bench_database("wcperf_bench_cache", args.students, migrate=True) as url,
        Database(url, settings) as db,
    ):
        cache = QueryCache(redis_url, secret=SECRET, prefix=PREFIX)
        cache.attach(db)
        cache.flush()
        raw = redis_lib.Redis.from_url(redis_url)
        with Session(db.engine) as s:
            day = s.scalar(
                text(
                    'select "scheduledAt"::date from appointments '
                    "where status = 'SCHEDULED' order by id limit 1"
                )
            )
            student, school, nurse = s.execute(
                text(
                    'select id, "schoolId", "nurseId" from students where "isActive"'
                    ' and "deletedAt" is null and "nurseId" is not null order by id limit 1'
                )
            ).one()
            paths: dict[str, Callable[[QueryCache | None], Any]] = {
                "student list": lambda c: hp.student_dashboard(s, nurse, cache=c),
                "health timeline": lambda c: hp.health_timeline(s, student, cache=c),
                "graduating students": lambda c: hp.graduating_students(s, school, cache=c),
                "emergency-contact stats": lambda c: hp.emergency_contact_stats(s, cache=c),
                "appointment calendar": lambda c: hp.appointment_calendar(s, day, cache=c),
                "medication search": lambda c: hp.medication_search(s, name_prefix="Ibu", cache=c),
                "student detail": lambda c: hp.student_detail(s, student, cache=c),
            }
            rows = []
            for name, call in paths.items():
                db_us = per_call_us(lambda call=call: call(None), 20)
                call(cache)
                l1_us = per_call_us(lambda call=call: call(cache), 2_000)
                rows.append((name, db_us, l1_us))

            # L1 primitive and L2 against a raw GET of the very same payload.
            probe = ("student_detail", "Student", "bench", {"id": 1}, ("students",))
            value = hp.student_detail(s, student)
            cache.get_or_load(*probe, lambda: value)
            l1_hit = per_call_us(lambda: cache.get_or_load(*probe, lambda: value), 100_000)
            rkey = next(iter(raw.scan_iter(match=PREFIX + "cache:student_detail:*")))
            payload = raw.get(rkey)

            # The same cache with no room in L1: every read is an L2 hit.
            l2_only = QueryCache(redis_url, secret=SECRET, prefix=PREFIX, l1_size=0)

            def l2_hit() -> None:
                l2_only.get_or_load(*probe, lambda: value)

            sealer, name = Sealer(SECRET), rkey.decode()

            def raw_get() -> None:  # what an L2 hit must do at least: GET, open, unpickle
                pickle.loads(sealer.unseal(raw.get(rkey), name))

            def raw_get_bytes() -> None:
                raw.get(rkey)

            # Alternate blocks so the machine's drift falls on both alike.
            l2_runs, floor_runs, decoded_runs = [], [], []
            for _ in range(9):
                l2_runs.append(per_call_us(l2_hit, 1_000, rounds=1))
                floor_runs.append(per_call_us(raw_get_bytes, 1_000, rounds=1))
                decoded_runs.append(per_call_us(raw_get, 1_000, rounds=1))
            l2 = statistics.median(l2_runs)
            floor = statistics.median(floor_runs)
            floor_decoded = statistics.median(decoded_runs)
            assert l2_only.counts["loads"] == 0, "the L2 probe must never load"
            l2_only.close()
        cache.flush()
        cache.close()
        raw.close()
    ratio = l2 / floor
    print(
        f"L1 hit                    {l1_hit:8.2f} µs (goal <= 5 µs) "
        f"{'OK' if l1_hit <= 5 else 'MISSED'}"
    )
    print(
        f"L2 hit (GET + open + unpickle) {l2:8.1f} µs; raw GET of the same "
        f"{len(payload):,}-byte sealed payload {floor:6.1f} µs "
        f"(with AES-GCM open and unpickle {floor_decoded:.1f} µs)"
    )
    print(
        f"L2 / raw GET              {ratio:8.2f} x (goal <= 1.30) "
        f"{'OK' if ratio <= 1.3 else 'MISSED'}"
    )
    print(f"{'hot path':26} {'database µs':>12} {'cached µs':>10} {'speed-up':>9}")
    for name, db_us, l1_us in rows:
        print(f"{name:26} {db_us:12.0f} {l1_us:10.2f} {db_us / l1_us:8.0f}x")
    save(
        "cache",
        {
            "l1_hit_us": l1_hit,
            "l2_hit_us": l2,
            "raw_get_us": floor,
            "raw_get_unpickle_us": floor_decoded,
            "l2_ratio": ratio,
            "hot_paths": [{"path": n, "db_us": d, "cached_us": c} for n, d, c in rows],
        },
    )


if __name__ == "__main__":
    main()
