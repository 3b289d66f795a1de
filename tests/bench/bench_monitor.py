"""The query monitor's cost on a SELECT 1 loop, and the time of one `monitor live` refresh.

Instrumented and bare runs alternate in blocks on the same held connection, so
the machine's noise falls on both alike; the median block decides. Goal: the
monitor adds at most 10 % to a SELECT 1 round trip.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import redis as redis_lib
from rich.console import Console
from sqlalchemy import text

from tests.bench.common import bench_database, save
from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.db.servers import resolve_redis
from wcperf.observe.collect import collect
from wcperf.observe.observer import Observer
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.settings import Settings
from wcperf.views.tables import frame

SELECT_1 = text("select 1")


def _block(db: Database, n: int) -> float:
    """Mean µs per SELECT 1 over n statements on one held connection."""
    with db.engine.connect() as conn:
        started = time.perf_counter_ns()
        for _ in range(n):
            conn.execute(SELECT_1)
        return (time.perf_counter_ns() - started) / n / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--statements", type=int, default=5_000, help="per block")
    parser.add_argument("--blocks", type=int, default=9)
    args = parser.parse_args(argv)
    settings = Settings.from_env(command="bench")
    with bench_database("wcperf_bench_monitor") as url, Database(url, settings) as db:
        monitor = QueryMonitor()
        _block(db, 2_000)  # warm up both paths
        bare, observed = [], []
        for _ in range(args.blocks):
            bare.append(_block(db, args.statements))
            monitor.attach(db.engine)
            observed.append(_block(db, args.statements))
            monitor.detach()
        monitor.queries()  # the once-a-second fold, timed separately below
        fold_started = time.perf_counter()
        for _ in range(args.statements):
            monitor.record("select 1", 80)
        monitor.queries()
        fold_us = (time.perf_counter() - fold_started) / args.statements * 1e6

        endpoint = resolve_redis(settings)
        client = redis_lib.Redis.from_url(endpoint.url) if endpoint.url else None
        refresh_ms = []
        with Observer(db, settings, redis_url=endpoint.url) as observer:
            _block(db, 1_000)
            observer.publish()
            with admin.connect(url, autocommit=True) as conn:
                for _ in range(20):
                    started = time.perf_counter()
                    snap = collect(conn, client, settings.redis_prefix, settings.monitor.targets)
                    Console(file=io.StringIO(), width=160).print(frame(snap))
                    refresh_ms.append((time.perf_counter() - started) * 1000)
        if client is not None:
            client.close()
    b, o = statistics.median(bare), statistics.median(observed)
    overhead = (o - b) / b
    print(
        f"SELECT 1 bare          {b:7.1f} µs/statement (median of {args.blocks} blocks "
        f"of {args.statements:,})"
    )
    print(
        f"SELECT 1 instrumented  {o:7.1f} µs/statement   overhead {overhead:+.1%} "
        f"(goal <= 10 %) {'OK' if overhead <= 0.10 else 'MISSED'}"
    )
    print(f"fold into HDR (once a second, off the query path): {fold_us:.2f} µs/statement")
    print(
        f"monitor live refresh   {statistics.median(refresh_ms):7.1f} ms (median of 20: "
        "collect from Redis and PostgreSQL, merge, render)"
    )
    save(
        "monitor",
        {
            "bare_us": b,
            "instrumented_us": o,
            "overhead": overhead,
            "fold_us": fold_us,
            "refresh_ms": statistics.median(refresh_ms),
        },
    )


if __name__ == "__main__":
    main()
