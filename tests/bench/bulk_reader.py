"""A nurses' read workload for the bulk benchmark, in a process of its own.

Threads read one student with their nurse by primary key (the student-detail
hot query) at a steady pace through a wcperf engine, observed and publishing
their Snapshot like any working wcperf process. Prints latency percentiles
(HDR, µs) and the encoded histogram as JSON.

    python -m tests.bench.bulk_reader URL SECONDS THREADS KEYS [REDIS_URL]

KEYS: how many students `bench_keys` numbers (a random number picks one).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import replace

from hdrh.histogram import HdrHistogram

from wcperf.db.engine import Database
from wcperf.observe.observer import Observer
from wcperf.settings import Settings

QUERY = (
    'select s.id, s.grade, s."isActive", u.id from bench_keys k join students s on s.id = k.id'
    ' left join users u on u.id = s."nurseId" and u."deletedAt" is null'
    ' where k.n = %s and s."deletedAt" is null'
)
THINK_S = 0.004  # a nurse's request every few ms per thread: a busy, not saturated, day


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    threads, keys = int(sys.argv[3]), int(sys.argv[4])
    redis_url = sys.argv[5] if len(sys.argv) > 5 else None
    settings = replace(Settings.from_env(), command="bench-reader")
    hist = HdrHistogram(1, 60_000_000, 3)
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    with Database(url, settings) as db, Observer(db, settings, redis_url=redis_url):

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            local = HdrHistogram(1, 60_000_000, 3)
            while time.monotonic() < stop:
                started = time.perf_counter_ns()
                with db.engine.connect() as conn:  # observed: published like the platform's
                    conn.exec_driver_sql(QUERY, (rng.randint(1, keys),)).fetchone()
                local.record_value(max(1, (time.perf_counter_ns() - started) // 1000))
                time.sleep(THINK_S)
            with lock:
                hist.add(local)

        pool = [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    print(
        json.dumps(
            {
                "count": hist.get_total_count(),
                "p50_us": hist.get_value_at_percentile(50),
                "p95_us": hist.get_value_at_percentile(95),
                "p99_us": hist.get_value_at_percentile(99),
                "max_us": hist.get_max_value(),
                "hdr": hist.encode().decode("ascii"),
            }
        )
    )


if __name__ == "__main__":
    main()
