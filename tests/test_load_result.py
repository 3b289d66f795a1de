"""A load run is a Snapshot: its section merges exactly across processes, survives JSON,
and the verdict judges it (or any Snapshot) against one Targets."""

from __future__ import annotations

import random

from wcperf.load.result import document
from wcperf.load.verdict import TARGETS, judge
from wcperf.observe import histogram as hdr
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.observe.snapshot import (
    CacheFigures,
    Faults,
    LoadPool,
    LoadRun,
    OperationStats,
    PoolStats,
    Snapshot,
    merge,
)
from wcperf.settings import Targets


def _worker(rng: random.Random, n: int, errors: int) -> tuple[Snapshot, list[int]]:
    values = [int(rng.lognormvariate(8, 1)) + 1 for _ in range(n)]
    h = hdr.new_histogram()
    hdr.record_all(h, values)
    run = LoadRun(
        "school-day",
        users=5,
        seconds=10.0 + rng.random(),
        warmup_s=2.0,
        operations={"point_read": OperationStats("point_read", errors, None, hdr.encode(h))},
        pool=LoadPool(
            max_size=10, peak_in_use=7, peak_waiting=2, requests_queued=4, wait_ms_total=20.0
        ),
        faults=Faults(redis_outages=1, redis_outage_s=0.5),
    )
    cache = CacheFigures(
        hits=90, misses=10, reads={"student detail": [60, 5], "student list": [30, 5]}
    )
    return Snapshot(taken_at=0, cache=cache, load=run), values


def test_workers_merge_exactly_and_survive_json() -> None:
    rng = random.Random(11)
    (a, va), (b, vb) = _worker(rng, 4_000, 3), _worker(rng, 6_000, 1)
    b.load.operations["point_read"].first_error = "OperationalError at operations.py:140"
    parts = [Snapshot.from_json(s.to_json()) for s in (a, b)]  # as the master receives them
    merged = merge(parts, taken_at=1)
    run = merged.load
    assert run is not None
    assert (run.users, run.processes) == (10, 2)
    assert run.seconds == max(a.load.seconds, b.load.seconds)
    op = run.operations["point_read"]
    union = hdr.new_histogram()
    hdr.record_all(union, va + vb)
    assert op.count == 10_000 and op.errors == 4
    assert op.first_error == "OperationalError at operations.py:140"
    for pct in (50, 95, 99):
        assert hdr.percentile_ms(op.hdr, pct) == hdr.percentile_ms(union, pct)
    assert (run.pool.max_size, run.pool.peak_in_use, run.pool.requests_queued) == (20, 14, 8)
    assert run.pool.mean_wait_ms == 5.0 and run.pool.peak_utilisation_pct == 70.0
    assert run.faults.redis_outages == 2 and merged.cache.hit_rate_pct == 90.0
    assert merged.cache.reads == {"student detail": [120, 10], "student list": [60, 10]}
    doc = document(merged, judge(merged, Targets(), ["p99_ms"]))
    assert doc["overall"]["count"] == 10_000
    assert doc["overall"]["error_pct"] == 0.04
    assert doc["overall"]["p99_ms"] == hdr.percentile_ms(union, 99)
    assert doc["verdict"]["checks"][0]["target"] == "p99_ms"
    assert doc["cache"]["reads"]["student detail"] == {
        "hits": 120, "loads": 10, "hit_rate_pct": 92.3
    }  # fmt: skip


def test_a_statements_window_is_what_it_did_after_the_first_reading() -> None:
    monitor = QueryMonitor()
    sql = "select * from students where id = %(id)s"
    for us in range(1, 1001):
        monitor.record(sql, us)
    (before,) = monitor.queries()
    later = list(range(5_000, 7_000))
    for us in later:
        monitor.record(sql, us)
    (now,) = monitor.queries()
    window = now.since(before)
    assert window.count == len(later) and window.total_us == sum(later)
    assert window.hdr.get_total_count() == len(later)
    assert abs(window.min_us - 5_000) <= 5 and abs(window.max_us - 6_999) <= 7  # HDR: 3 digits
    assert abs(window.p(50) - 6.0) < 0.01
    assert sum(window.buckets.values()) == len(later)


def test_the_verdict_judges_a_live_snapshot_with_the_same_targets() -> None:
    monitor = QueryMonitor()
    for us in [2_000] * 98 + [900_000] * 2:
        monitor.record("select 1", us)
    pool = PoolStats("h:1", 10, 2, 10, 9, 1, 7, 90.0, 100, 1.0, 0, "ok", 0, None)
    snap = Snapshot(taken_at=0, queries=monitor.queries(), pools=[pool])
    t = Targets.parse("p99_ms=500,pool_waiting=5")
    verdict = judge(snap, t, ["p50_ms", "p99_ms", "pool_waiting", "cache_hit_pct"])
    checks = {c.target: c for c in verdict.checks}
    assert checks["p50_ms"].passed and not checks["p99_ms"].passed
    assert checks["pool_waiting"].value == 7 and checks["pool_waiting"].passed is False
    assert checks["cache_hit_pct"].value is None and checks["cache_hit_pct"].passed is None
    assert not verdict.passed
    assert judge(snap, t, ["p50_ms", "cache_hit_pct"]).passed  # no data is not a miss


def test_every_target_a_scenario_may_name_is_a_field_of_targets() -> None:
    assert set(Targets.__dataclass_fields__) >= TARGETS
    assert Targets.of({"pool_waiting": 3.0}).pool_waiting == 3
    assert isinstance(Targets.of({"pool_waiting": 3.0}).pool_waiting, int)
