"""The query and pool monitors, N+1 detection, targets, and the Snapshot."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, lazyload, selectinload

from tests.conftest import every_connection_held
from wcperf.db.engine import Database
from wcperf.db.schema import Student
from wcperf.observe.fingerprint import fingerprint
from wcperf.observe.observer import Observer
from wcperf.observe.pool_monitor import MINUTES_KEPT, PoolMonitor
from wcperf.observe.prometheus import exposition
from wcperf.observe.query_monitor import NPlusOneDetector, NPlusOneError, QueryMonitor
from wcperf.observe.snapshot import (
    CacheFigures,
    CacheTier,
    DatabaseView,
    IndexBuild,
    RedisServer,
    ServerStatement,
    Sessions,
    Snapshot,
    merge,
)
from wcperf.observe.targets import Targets, evaluate
from wcperf.settings import Settings
from wcperf.views.grids import GRIDS, LAST_MINUTE, SINCE_START

CANARIES = (
    "Zebulon-Canary-7731",
    "1999-12-31",
    "+1-555-0199-CANARY",
    "asthma-canary-note",
    "Q99.9-CANARY",
)


def _exact(values: list[int], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def test_percentiles_agree_with_an_exact_computation() -> None:
    rng = random.Random(3)
    values = [int(rng.lognormvariate(7, 1.2)) + 1 for _ in range(20_000)]  # µs, ~1 ms median
    monitor = QueryMonitor()
    for us in values:
        monitor.record("select * from students where id = %(id)s", us)
    (stats,) = monitor.queries()
    assert stats.count == len(values)
    assert stats.total_us == sum(values)
    assert (stats.min_us, stats.max_us) == (min(values), max(values))
    for pct in (50, 95, 99):
        exact_ms = _exact(values, pct) / 1000
        assert abs(stats.p(pct) - exact_ms) <= exact_ms * 0.001 + 0.001, pct  # HDR: 3 digits


def test_merged_histograms_equal_the_histogram_of_the_union() -> None:
    rng = random.Random(5)
    a = [rng.randint(50, 5_000) for _ in range(3_000)]
    b = [rng.randint(2_000, 900_000) for _ in range(1_000)]
    snaps = []
    for part in (a, b):
        m = QueryMonitor()
        for us in part:
            m.record("select 1", us)
        snaps.append(Snapshot(taken_at=0, queries=m.queries()))
    (merged,) = merge([Snapshot.from_json(s.to_json()) for s in snaps], 0).queries
    assert merged.count == len(a) + len(b)
    for pct in (50, 95, 99):
        exact_ms = _exact(a + b, pct) / 1000
        assert abs(merged.p(pct) - exact_ms) <= exact_ms * 0.001 + 0.001
    assert merged.buckets["fast"] + merged.buckets["medium"] + merged.buckets["slow"] == len(
        a
    ) + len(b)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM students WHERE first_name = 'Zebulon-Canary-7731' AND date_of_birth = "
        "'1999-12-31'",
        "select id from students where last_name like 'Zebulon-Canary-7731%'"
        " /* asthma-canary-note */",
        "update emergency_contacts set phone = '+1-555-0199-CANARY' where id in (1, 2, 3)",
        "insert into health_records (notes, diagnosis_code) values ($$asthma-canary-note$$, "
        "E'Q99.9-CANARY') -- Zebulon-Canary-7731",
    ],
)
def test_every_literal_and_comment_is_stripped(sql: str) -> None:
    fp = fingerprint(sql)
    assert not [c for c in CANARIES if c in fp.normalized], fp.normalized
    assert "$1" in fp.normalized


def test_planted_phi_never_reaches_any_output(
    database_url: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = replace(settings, monitor=replace(settings.monitor, slow_ms=0.0))
    with Database(database_url, s) as db, Observer(db, s) as observer:
        with db.engine.begin() as conn:
            district, school = uuid.uuid4(), uuid.uuid4()
            conn.execute(
                text(
                    'insert into districts (id, name, code, "createdAt", "updatedAt")'
                    " values (:id, 'Canary District', :code, now(), now())"
                ),
                {"id": district, "code": district.hex},
            )
            conn.execute(
                text(
                    'insert into schools (id, name, code, "districtId", "createdAt", "updatedAt")'
                    " values (:id, 'Zebulon-Canary-7731 School', :code, :d, now(), now())"
                ),
                {"id": school, "code": school.hex, "d": district},
            )
            for _ in range(6):  # also an N+1 pattern
                conn.execute(
                    text(
                        'select * from students where "firstName" = :n and "dateOfBirth" = :d'
                        ' and "schoolId" = :s'
                    ),
                    {"n": CANARIES[0], "d": CANARIES[1], "s": school},
                )
            conn.execute(
                text(
                    f"""select * from emergency_contacts where "phoneNumber" = '{CANARIES[2]}'"""
                    f" /* {CANARIES[3]} */"
                )
            )
            conn.execute(text("delete from schools where id = :id"), {"id": school})
            conn.execute(text("delete from districts where id = :id"), {"id": district})
        snap = observer.snapshot()
    assert snap.slow and snap.n_plus_one and snap.alerts
    outputs = {
        "json": snap.to_json(derived=True),
        "prometheus": exposition(lambda: snap),
        "monitor screen": repr(
            [g(snap, m).rows for g in GRIDS for m in (SINCE_START, LAST_MINUTE)]
        ),
        "alerts": " ".join(a.message for a in snap.alerts),
        "logs": caplog.text,
    }
    for name, body in outputs.items():
        leaked = [c for c in CANARIES if c in body]
        assert leaked == [], name
    assert {t for sq in snap.slow for t in sq.param_types} >= {"str", "UUID"}


def test_n_plus_one_fires_for_a_lazy_loop_and_not_for_the_eager_query(
    bulk_url: str, settings: Settings
) -> None:
    with Database(bulk_url, settings) as db:  # the models need the schema at head
        with db.engine.connect() as conn:  # one student per school: each has another nurse
            ids = list(
                conn.execute(
                    text(
                        'select distinct on ("schoolId") id from students'
                        ' where "nurseId" is not null order by "schoolId", id'
                    )
                ).scalars()
            )
        assert len(ids) >= 10
        first_of_each_school = select(Student).where(Student.id.in_(ids)).order_by(Student.id)
        monitor = QueryMonitor()
        monitor.attach(db.engine)
        with Session(db.engine) as session:
            students = session.scalars(first_of_each_school.options(lazyload(Student.nurse))).all()
            nurses = {s.nurse.id for s in students if s.nurse}  # one query per student
        lazy = list(monitor.n_plus_one.detections)
        assert len(lazy) == 1 and nurses
        assert lazy[0].count >= 5 and lazy[0].table == "users"
        assert "test_observe.py" in lazy[0].call_site
        assert "eagerly" in lazy[0].suggestion

        monitor.n_plus_one.detections.clear()
        with Session(db.engine) as session:
            students = session.scalars(
                first_of_each_school.options(selectinload(Student.nurse))
            ).all()
            assert {s.nurse.id for s in students if s.nurse} == nurses
        assert list(monitor.n_plus_one.detections) == []
        monitor.detach()

        strict = QueryMonitor(strict=True)
        strict.attach(db.engine)
        with Session(db.engine) as session, pytest.raises(NPlusOneError, match="N\\+1"):
            for s in session.scalars(first_of_each_school.options(lazyload(Student.nurse))).all():
                _ = s.nurse
        strict.detach()


def test_waiting_requests_and_pool_alerts_show_in_the_snapshot(
    database_url: str, settings: Settings
) -> None:
    with Database(database_url, settings) as db:
        observer = Observer(db, settings)
        with every_connection_held(db, waiters=7):
            snap = observer.snapshot()
    (pool,) = snap.pools
    assert pool.waiting == 7 and pool.in_use == pool.max_size
    assert pool.utilisation_pct == 100.0
    codes = {(a.severity, a.code) for a in snap.alerts}
    assert ("critical", "pool_utilisation") in codes
    assert ("warning", "pool_wait_queue") in codes


def test_health_check_counts_consecutive_failures(database_url: str, settings: Settings) -> None:
    small = replace(settings, pool=replace(settings.pool, max_size=2))
    with Database(database_url, small) as db:
        monitor = PoolMonitor(db, "t", health_timeout_s=0.2)
        assert monitor.check_health() and monitor.consecutive_failures == 0
        held = [db.pool.getconn() for _ in range(2)]
        assert not monitor.check_health()
        assert not monitor.check_health()
        assert monitor.consecutive_failures == 2
        assert monitor.sample().health == "failing"
        alerts = evaluate(Snapshot(taken_at=0, pools=[monitor.sample()]), Targets())
        assert any(a.code == "pool_health" and a.severity == "critical" for a in alerts)
        for conn in held:
            db.pool.putconn(conn)
        assert monitor.check_health() and monitor.consecutive_failures == 0


def test_pool_history_keeps_24_hours_of_minutes(database_url: str, settings: Settings) -> None:
    now = [1_000_000.0]
    with Database(database_url, settings) as db:
        monitor = PoolMonitor(db, "t", clock=lambda: now[0])
        for _ in range(MINUTES_KEPT + 300):
            monitor.sample()
            now[0] += 60
        history = monitor.sample().history
    assert len(monitor.history) == MINUTES_KEPT
    assert len(history) == MINUTES_KEPT + 1  # the minute in progress too
    minutes = [h.minute for h in history]
    assert minutes == sorted(minutes) and minutes[-1] - minutes[0] == MINUTES_KEPT


def test_targets_are_configurable_and_judged_on_merged_latency() -> None:
    m = QueryMonitor()
    for us in [50_000] * 90 + [700_000] * 10:
        m.record("select 1", us)
    snap = Snapshot(taken_at=0, queries=m.queries())
    codes = {a.code: a for a in evaluate(snap, Targets())}
    assert set(codes) == {"p95"}  # P50 50 ms, P95 700 ms, P99 700 ms
    assert codes["p95"].value == pytest.approx(700, rel=0.01)
    assert codes["p95"].severity == "warning"
    strict = Targets.parse("p95_ms=300,p50_ms=40")
    assert {a.code for a in evaluate(snap, strict)} == {"p50", "p95"}
    assert {a.severity for a in evaluate(snap, strict) if a.code == "p95"} == {"critical"}
    snap.cache = CacheFigures(hits=70, misses=30)
    assert "cache_hit_rate" in {a.code for a in evaluate(snap, Targets())}


def test_snapshot_round_trips_through_json() -> None:
    m = QueryMonitor(slow_ms=0.0)
    m.record("select * from students where id = %(id)s", 1234)
    cache = CacheFigures(hits=3, tiers={"l1": CacheTier(hits=3, entries=1)})
    database = DatabaseView(
        activity=[Sessions("wcperf:test", "active", 2, 0.5)],
        statements=[ServerStatement("SELECT $1", 10, 0.2, 2.0)],
        index_builds=[IndexBuild("idx_x", "students", "building index", 40.0)],
        redis=RedisServer(version="7", keyspace_hits=9, keyspace_misses=1, hit_rate_pct=90.0),
    )
    snap = Snapshot(taken_at=1.0, queries=m.queries(), cache=cache, database=database)
    again = Snapshot.from_json(snap.to_json())
    assert again.to_dict() == snap.to_dict()
    assert again.cache == cache and again.database == database  # typed sections, both ways
    assert json.loads(snap.to_json(derived=True))["queries"][0]["p50_ms"] == pytest.approx(
        1.234, rel=0.001
    )


def test_a_second_burst_after_the_window_is_a_new_detection() -> None:
    now = [100.0]
    detector = NPlusOneDetector(threshold=3, window_s=1.0, clock=lambda: now[0])
    fp = fingerprint("select * from users where id = %(id)s")
    for _ in range(4):
        detector.observe(fp, "site-a")
        now[0] += 0.1
    now[0] += 5  # quiet, then the same loop again
    for _ in range(3):
        detector.observe(fp, "site-a")
        now[0] += 0.1
    detector.observe(fp, "site-b")  # another call site is another pattern
    assert [d.count for d in detector.detections] == [4, 3]
    assert {d.call_site for d in detector.detections} == {"site-a"}


def test_no_sample_is_lost_when_folding_while_threads_record() -> None:
    monitor = QueryMonitor()
    stop = threading.Event()
    folded: list[int] = []

    def fold() -> None:
        while not stop.is_set():
            folded[:] = [q.count for q in monitor.queries()]

    def record() -> None:
        for i in range(5_000):
            monitor.record("select * from students where id = %(id)s", 100 + i % 7)

    folder = threading.Thread(target=fold)
    folder.start()
    writers = [threading.Thread(target=record) for _ in range(8)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    folder.join()
    (stats,) = monitor.queries()
    assert stats.count == 40_000
    assert stats.hdr.get_total_count() == 40_000


def test_derived_json_names_the_top_slow_and_top_frequent_patterns() -> None:
    m = QueryMonitor()
    for _ in range(50):
        m.record("select * from schools where id = %(id)s", 100)  # frequent, fast
    for _ in range(3):
        m.record("select * from students where grade = %(g)s", 900_000)  # rare, slow
    data = json.loads(Snapshot(taken_at=0, queries=m.queries()).to_json(derived=True))
    by_table = {q["fingerprint"]: q["table"] for q in data["queries"]}
    assert [by_table[f] for f in data["top_slow"]] == ["students", "schools"]
    assert [by_table[f] for f in data["top_frequent"]] == ["schools", "students"]


def test_n_plus_one_is_one_connection_repeating_not_many_users_once_each(db: Database) -> None:
    monitor = QueryMonitor()
    monitor.attach(db.engine)
    try:
        for _ in range(12):  # twelve "users", each one query on a connection of its own
            with db.engine.connect() as conn:
                conn.execute(
                    text("select count(*) from schools where id = :id"), {"id": uuid.UUID(int=1)}
                )
        assert list(monitor.n_plus_one.detections) == []
        with db.engine.connect() as conn:  # one request repeating it: an N+1
            for i in range(6):
                conn.execute(
                    text("select count(*) from schools where id = :id"), {"id": uuid.UUID(int=i)}
                )
        assert [d.count for d in monitor.n_plus_one.detections] == [6]  # the whole burst
    finally:
        monitor.detach()


def test_the_last_minute_moves_after_a_latency_change_while_since_start_barely_does() -> None:
    from wcperf.observe.windows import Windows

    now = [0.0]
    windows = Windows(window_s=60.0, clock=lambda: now[0])
    m = QueryMonitor(slow_ms=10_000.0)
    sql = "select * from students where id = %(id)s"

    def refresh(seconds: int, us: int, per_second: int = 50) -> Snapshot:
        for _ in range(seconds):
            for _ in range(per_second):
                m.record(sql, us)
            now[0] += 1.0
        snap = Snapshot(taken_at=now[0], queries=m.queries())
        snap.recent = windows.add(snap)
        snap.alerts = evaluate(snap, Targets())
        return snap

    assert refresh(1, 2_000).recent is None  # the first reading has no window
    for _ in range(30):  # half an hour of 2 ms reads, one refresh a minute
        snap = refresh(60, 2_000)
    assert snap.recent is not None and snap.recent.queries[0].p(99) == pytest.approx(2.0, 0.01)
    assert not [a for a in snap.alerts if a.code.startswith("p")]
    for _ in range(6):  # then a regression: 1.2 s, for one minute in 10 s refreshes
        snap = refresh(10, 1_200_000)
    (since_start,), (last_minute,) = snap.queries, snap.recent.queries
    assert last_minute.count == 6 * 10 * 50 and last_minute.p(50) == pytest.approx(1200, 0.01)
    assert since_start.p(50) == pytest.approx(2.0, 0.01)  # diluted: 94 % of all reads
    p99 = next(a for a in snap.alerts if a.code == "p99")
    assert p99.severity == "critical" and "in the last 60 s" in p99.message
    snap = refresh(61, 2_000)  # a minute of good reads: the window has moved on
    assert snap.recent.queries[0].p(99) == pytest.approx(2.0, 0.01)
    assert not [a for a in snap.alerts if a.code.startswith("p")]
    now[0] += 1
    unchanged = windows.add(snap)  # the same counters again: the window holds what it held
    assert unchanged is not None and unchanged.queries[0].count == snap.recent.queries[0].count
    gone = Snapshot(taken_at=now[0], queries=[])  # every publisher exited
    now[0] += 1
    assert all(q.count >= 0 for q in windows.add(gone).queries)
    data = json.loads(snap.to_json(derived=True))
    assert data["recent"]["queries"][0]["p99_ms"] == pytest.approx(2.0, 0.01)
    again = Snapshot.from_json(snap.to_json())
    assert again.recent == snap.recent


def test_history_is_shared_bounded_survives_a_restart_and_shows_trends(
    redis_url: str, redis_prefix: str
) -> None:
    import redis as redis_lib

    from wcperf.observe.history import MINUTES, History, trends
    from wcperf.observe.windows import Windows

    clock = [1_800_000_000.0]  # epoch seconds, on a minute
    client = redis_lib.Redis.from_url(redis_url)
    m = QueryMonitor(slow_ms=10_000.0)
    windows = Windows(clock=lambda: clock[0])
    first = History(client, redis_prefix, clock=lambda: clock[0])
    second = History(client, redis_prefix, clock=lambda: clock[0])  # another monitor

    def minute(us: int) -> Snapshot:
        for _ in range(100):
            m.record("select * from students where id = %(id)s", us)
        clock[0] += 60.0
        snap = Snapshot(taken_at=clock[0], queries=m.queries(), cache=CacheFigures(hits=9))
        snap.recent = windows.add(snap)
        return snap

    minute(2_000)  # the first reading has no window: nothing is written
    for _ in range(15):
        snap = minute(2_000)
        first.record(snap)
        second.record(snap)  # the same minute: written once
    for _ in range(5):  # the last five minutes ten times slower
        snap = minute(20_000)
        first.record(snap)
        second.record(snap)
    try:
        assert client.llen(f"{redis_prefix}history") == 20
        restarted = History(client, redis_prefix, clock=lambda: clock[0])
        points = restarted.points()
        assert [p.minute for p in points] == sorted({p.minute for p in points})
        assert len(points) == 20 and points[-1].figures["p99_ms"] == pytest.approx(20, 0.01)
        found = trends(points)
        assert found["p99_ms"].trend == "degrading"
        assert found["p99_ms"].now == pytest.approx(20, 0.01)
        assert found["p99_ms"].before == pytest.approx(2, 0.01)
        assert found["cache_hit_pct"].trend == "unknown"  # no lookups in any window
        assert found["lock_waits"].trend == "unknown"  # no server view in these points
        assert trends(points[:8])["p99_ms"].trend == "unknown"  # too few points
        fingerprints = list(points[-1].queries)
        assert len(fingerprints) == 1 and points[-1].queries[fingerprints[0]][0] == 100
        key = f"{redis_prefix}history"
        for _ in range(MINUTES + 50):  # more than a day: the list stays at a day
            clock[0] += 60.0
            first.record(snap)
        assert client.llen(key) == MINUTES
    finally:
        client.close()
