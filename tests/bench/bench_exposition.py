"""What a Prometheus scrape of `monitor serve` costs, and what the load timeline adds
per operation.

Scrape: PROCESSES publishers of FINGERPRINTS statements each (real HDR histograms)
in Redis; the floor is the reading every scrape must do anyway (`Collector.collect`:
Redis, the merge, the database's views), against the whole exposition (the same
reading, then per-process counters, the carry past exits, the histogram buckets and
the text format). Timeline: one `Timeline.record` per operation against the
`HdrHistogram.record_value` the operation's own histogram already does.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from tests.bench.common import bench_database, save
from wcperf.db import admin
from wcperf.db.servers import resolve_redis
from wcperf.observe import histogram as hdr
from wcperf.observe.collect import Collector
from wcperf.observe.observer import snapshot_key
from wcperf.observe.prometheus import Exporter, exposition
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.observe.snapshot import PoolStats, Snapshot, Source
from wcperf.observe.timeline import Timeline
from wcperf.settings import Settings


def _publish(client: redis_lib.Redis, prefix: str, processes: int, fingerprints: int) -> None:
    rng = random.Random(7)
    for p in range(processes):
        m = QueryMonitor()
        for f in range(fingerprints):
            sql = f"select * from students where id = %(id)s and c{f} = %(x)s"
            for _ in range(500):
                m.record(sql, int(rng.lognormvariate(7, 1)))
        source = f"bench:{p}"
        snap = Snapshot(
            taken_at=time.time(),
            sources=[Source(source, "loadtest:bench", p, time.time())],
            pools=[
                PoolStats(
                    source,
                    10,
                    2,
                    5,
                    3,
                    2,
                    0,
                    30.0,
                    1000,
                    0.2,
                    0,
                    "ok",
                    0,
                    None,
                    role="loadtest bench",
                )
            ],
            queries=m.queries(),
        )
        client.set(snapshot_key(prefix, source), snap.to_json(), ex=600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--fingerprints", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=15)
    parser.add_argument("--operations", type=int, default=200_000)
    args = parser.parse_args(argv)
    settings = Settings.from_env(command="bench")
    endpoint = resolve_redis(settings)
    assert endpoint.url, "the scrape benchmark needs Redis"
    prefix = f"wcperf-bench-{time.time_ns()}:"
    client = redis_lib.Redis.from_url(endpoint.url)
    floor, ours = [], []
    try:
        _publish(client, prefix, args.processes, args.fingerprints)
        with (
            bench_database("wcperf_bench_exposition") as url,
            admin.connect(url, autocommit=True) as conn,
        ):
            collector = Collector(conn, client, prefix, settings.monitor.targets)
            exporter = Exporter(collector.collect, lambda: collector.published)
            exposition(exporter)  # warm: fingerprints seen, carry primed
            for _ in range(args.scrapes):
                started = time.perf_counter()
                collector.collect()
                floor.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                body = exposition(exporter)
                ours.append((time.perf_counter() - started) * 1000)
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
    series = sum(len(f.samples) for f in text_string_to_metric_families(body))

    timeline, own = Timeline(), hdr.new_histogram()
    durations = [random.randint(50, 50_000) for _ in range(args.operations)]
    started = time.perf_counter_ns()
    for us in durations:
        own.record_value(us)
    record_ns = (time.perf_counter_ns() - started) / args.operations
    started = time.perf_counter_ns()
    for us in durations:
        timeline.record(us, False)
    timeline_ns = (time.perf_counter_ns() - started) / args.operations

    f, o = statistics.median(floor), statistics.median(ours)
    print(
        f"scrape floor (collect only)  {f:7.1f} ms   {args.processes} processes x "
        f"{args.fingerprints} statements, median of {args.scrapes}"
    )
    print(
        f"scrape, whole exposition     {o:7.1f} ms   {o / f:.2f}x the floor; "
        f"{series:,} series, {len(body) / 1024:,.0f} KiB"
    )
    print(
        f"timeline per operation       {timeline_ns:7.0f} ns   beside the operation's own "
        f"HDR record {record_ns:.0f} ns ({timeline_ns / record_ns:.2f}x); "
        "a point read takes about 150 000 ns"
    )
    save(
        "exposition",
        {
            "processes": args.processes,
            "fingerprints": args.fingerprints,
            "floor_ms": f,
            "scrape_ms": o,
            "ratio": o / f,
            "series": series,
            "bytes": len(body),
            "timeline_ns": timeline_ns,
            "hdr_record_ns": record_ns,
        },
    )


if __name__ == "__main__":
    main()
