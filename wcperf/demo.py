"""What the demo shows: the seeded district and the pool's figures under a burst."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, table, text

from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database, PoolFigures
from wcperf.platform import GRADES, PLATFORM_TABLES


@dataclass(frozen=True)
class Summary:
    rows: dict[str, int]
    grades: list[tuple[str, int, int]]  # grade, live students, of them active


def district_summary(engine: Engine) -> Summary:
    with engine.connect() as conn:
        rows = {
            t: int(conn.execute(select(func.count()).select_from(table(t))).scalar_one())
            for t in PLATFORM_TABLES
        }
        found = {
            g: (int(n), int(a))
            for g, n, a in conn.execute(
                text(
                    'select grade, count(*), count(*) filter (where "isActive") '
                    'from students where "deletedAt" is null group by grade'
                )
            )
        }
    order = [g for g in GRADES if g in found] + sorted(set(found) - set(GRADES))
    return Summary(rows, [(g, *found[g]) for g in order])


@dataclass(frozen=True)
class Burst:
    workers: int
    queries: int
    seconds: float
    peak: PoolFigures
    peak_waiting: int
    after: PoolFigures


_DASHBOARD = text(
    'select s.id, s.grade, u.id as nurse from students s left join users u on u.id = s."nurseId"'
    ' and u."deletedAt" is null where s."schoolId" = :school and s."isActive"'
    ' and s."deletedAt" is null order by s."lastName", s."firstName", s.id limit 25'
)


def pool_burst(db: Database, workers: int, queries: int) -> Burst:
    """More workers than connections: shows the pool queueing them, with real counts."""
    with db.engine.connect() as conn:
        schools = list(conn.scalars(text('select id from schools where "deletedAt" is null')))
    peak: list[PoolFigures] = [db.figures()]
    peak_waiting = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            f = db.figures()
            if f.in_use > peak[0].in_use:
                peak[0] = f
            peak_waiting[0] = max(peak_waiting[0], f.waiting)
            time.sleep(0.002)

    def one(i: int) -> None:
        with db.engine.connect() as conn:
            conn.execute(_DASHBOARD, {"school": schools[i % len(schools)]}).fetchall()
            time.sleep(0.005)  # a little application work while holding the connection

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(one, range(queries)))
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    return Burst(workers, queries, seconds, peak[0], peak_waiting[0], db.figures())


@dataclass(frozen=True)
class CachedPath:
    name: str
    database_ms: float
    cached_us: float


def cache_tour(db: Database, cache: QueryCache, repeat: int = 200) -> list[CachedPath]:
    """Each hot path once from the database, then from the cache: what caching buys."""
    from sqlalchemy.orm import Session

    from wcperf.workload import hot_paths as hp

    with Session(db.engine) as s:
        student, school, nurse = s.execute(
            text(
                'select id, "schoolId", "nurseId" from students where "deletedAt" is null'
                ' and "isActive" and "nurseId" is not null order by id limit 1'
            )
        ).one()
        day = s.scalar(
            text(
                'select "scheduledAt"::date from appointments'
                " where status = 'SCHEDULED' and \"deletedAt\" is null order by id limit 1"
            )
        )
        paths = {
            "student list": lambda c: hp.student_dashboard(s, nurse, cache=c),
            "health timeline": lambda c: hp.health_timeline(s, student, cache=c),
            "graduating students": lambda c: hp.graduating_students(s, school, cache=c),
            "emergency-contact stats": lambda c: hp.emergency_contact_stats(s, cache=c),
            "appointment calendar": lambda c: hp.appointment_calendar(s, day, cache=c),
            "medication search": lambda c: hp.medication_search(s, name_prefix="Ibu", cache=c),
            "student detail": lambda c: hp.student_detail(s, student, cache=c),
        }
        out = []
        for name, call in paths.items():
            started = time.perf_counter()
            call(None)
            database_ms = (time.perf_counter() - started) * 1000
            call(cache)
            started = time.perf_counter()
            for _ in range(repeat):
                call(cache)
            out.append(
                CachedPath(name, database_ms, (time.perf_counter() - started) / repeat * 1e6)
            )
    return out
