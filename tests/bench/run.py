"""`make bench`: every benchmark in turn; figures on stdout and in bench-results/."""

from __future__ import annotations

from tests.bench import (
    bench_bulk,
    bench_cache,
    bench_exposition,
    bench_loadtest,
    bench_migrate,
    bench_monitor,
    bench_seed,
    bench_server_log,
    bench_year_end,
)


def main() -> None:
    print("== seed: wcperf seed vs. INSERT ... SELECT generate_series ==")
    bench_seed.main([])
    print("\n== migrate: online index build vs. plain builds, writer, verify --compare ==")
    bench_migrate.main([])
    print("\n== monitor: query monitor overhead on SELECT 1, one live refresh ==")
    bench_monitor.main([])
    print("\n== server log: ingestion vs. pgBadger and a plain read; logging's cost ==")
    bench_server_log.main([])
    print("\n== exposition: a Prometheus scrape vs. the reading it needs; the load timeline ==")
    bench_exposition.main([])
    print("\n== cache: L1, L2 against a raw GET, database against cached per hot path ==")
    bench_cache.main([])
    print("\n== bulk: grade transition vs. one UPDATE; nurses' reads during the job ==")
    bench_bulk.main([])
    print("\n== year-end: school-day's cache and latency with grade transitions vs. alone ==")
    bench_year_end.main([])
    print("\n== loadtest: point reads vs. pgbench; school-day at 200 users ==")
    bench_loadtest.main([])


if __name__ == "__main__":
    main()
