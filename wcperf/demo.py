"""What the demo shows: the seeded district and the pool's figures under a burst."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, table, text

from wcperf.cache.tiered import QueryCache
from wcperf.db.engine import Database, PoolFigures
from wcperf.db.schema import DISTRICT_TABLES


@dataclass(frozen=True)
class Summary:
    rows: dict[str, int]
    grades: list[tuple[str, int, int]]


def district_summary(engine: Engine) -> Summary:
    with engine.connect() as conn:
        rows = {
            t: int(conn.execute(select(func.count()).select_from(table(t))).scalar_one())
            for t in DISTRICT_TABLES
        }
        grades = [
            ("K" if g == 0 else str(g), int(n), int(a))
            for g, n, a in conn.execute(
                text(
                    "select grade, count(*), count(*) filter (where status = 'active') "
                    "from students group by grade order by grade"
                )
            )
        ]
    return Summary(rows, grades)


@dataclass(frozen=True)
class Burst:
    workers: int
    queries: int
    seconds: float
    peak: PoolFigures
    peak_waiting: int
    after: PoolFigures


_DASHBOARD = text(
    "select s.id, s.grade, u.id as nurse from students s left join users u on u.id = s.nurse_id "
    "where s.school_id = :school and s.status = 'active' order by s.id limit 25"
)


def pool_burst(db: Database, workers: int, queries: int) -> Burst:
    """More workers than connections: shows the pool queueing them, with real counts."""
    with db.engine.connect() as conn:
        schools = int(conn.execute(text("select count(*) from schools")).scalar_one()) or 1
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
            conn.execute(_DASHBOARD, {"school": 1 + i % schools}).fetchall()
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
        student = int(s.scalar(text("select min(id) from students")) or 1)
        school = int(s.scalar(text("select min(id) from schools")) or 1)
        day = s.scalar(
            text(
                "select scheduled_at::date from appointments "
                "where status = 'scheduled' order by id limit 1"
            )
        )
        paths = {
            "student dashboard": lambda c: hp.student_dashboard(s, school, cache=c),
            "health timeline": lambda c: hp.health_timeline(s, student, cache=c),
            "graduating students": lambda c: hp.graduating_students(s, school, cache=c),
            "emergency-contact stats": lambda c: hp.emergency_contact_stats(s, school, cache=c),
            "appointment calendar": lambda c: hp.appointment_calendar(s, day, cache=c),
            "medication search": lambda c: hp.medication_search(s, dosage_form="tablet", cache=c),
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
