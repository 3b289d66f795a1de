"""`wcperf demo` as a library: seed a district where there is none, build the 14 indexes
online, then measure the district, the hot queries, the pool under a burst and the cache,
and plan the year-end job. `run` returns the figures; the CLI only renders them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, func, select, table, text

from wcperf.cache.keys import load_secret
from wcperf.cache.tiered import QueryCache
from wcperf.db import admin
from wcperf.db.engine import Database, PoolFigures, driver
from wcperf.errors import WcperfError
from wcperf.jobs import launch
from wcperf.jobs.base import Plan
from wcperf.jobs.grade_transition import GradeTransition
from wcperf.migrate import alembic_driver
from wcperf.migrate.build_watch import Listener
from wcperf.migrate.index_state import PRESENT
from wcperf.migrate.online_index import MigrationHooks
from wcperf.migrate.verify import Verdict, verify
from wcperf.observe.observer import Observer
from wcperf.observe.snapshot import Snapshot
from wcperf.platform import GRADES, PLATFORM_TABLES
from wcperf.redact import shown
from wcperf.seed.district import SCALES
from wcperf.seed.load import SeedResult, district_counts, seeded_by_wcperf
from wcperf.seed.load import seed as load_district


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


_TABLES = """
select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema', 'wcperf')
  and n.nspname not like 'pg\\_%'
"""


def foreign_tables(db: Database) -> int:
    """Tables the demo would be writing beside: 0 when the database is empty or wcperf
    seeded it (the demo writes a district and 14 indexes: never into data unasked)."""
    with db.pool.connection() as conn:
        row = conn.execute(_TABLES).fetchone()
        tables = int(row[0]) if row else 0
        return 0 if not tables or seeded_by_wcperf(conn) is not None else tables


@dataclass(frozen=True)
class Indexes:
    revision: tuple[str, ...]
    present: int
    built: int  # of the present, built online by wcperf
    total: int
    differing: tuple[str, ...]  # left alone: they differ from the platform's model


@dataclass(frozen=True)
class DemoRun:
    seeded: SeedResult | None  # None: a district was there already
    students_found: int
    indexes: Indexes
    summary: Summary
    verdicts: list[Verdict]
    burst: Burst
    seen: Snapshot  # what the Observer published while the burst and the tour ran
    tour: list[CachedPath]
    cache_mode: str
    year: int
    plan: Plan  # the grade transition, planned only


def prepare(db: Database, on_index: Listener | None = None) -> Indexes:
    """Migrate to head, or at head already, build what is missing since."""
    hooks = MigrationHooks(listener=on_index)
    before = alembic_driver.status(db.engine)
    status = alembic_driver.upgrade(db.engine, hooks=hooks)
    if before.up_to_date:
        alembic_driver.repair_indexes(db.engine, hooks)
    states = alembic_driver.indexes(db.engine)
    present = sum(s.state == PRESENT for s in states.values())
    built = sum(s.built for s in states.values())
    return Indexes(
        status.current, present, built, len(states), tuple(st.name for st in hooks.differing)
    )


def run(
    db: Database,
    redis_url: str | None,
    *,
    say: Callable[[str], None] = lambda line: None,
    on_index: Listener | None = None,
    year: int | None = None,
) -> DemoRun:
    """The whole demo on `db` (which `foreign_tables` has cleared), with `redis_url`'s
    cache when there is one. `say` hears progress lines (no PHI: counts and names)."""
    settings = db.settings
    if redis_url:
        try:
            say(f"redis {admin.check_redis(redis_url)} answers")
        except WcperfError as exc:
            say(shown(exc))
    with db.engine.connect() as conn:
        counts = district_counts(driver(conn))
    seeded = None
    if counts.schools:
        say(f"district already present ({counts.students:,} students); not seeding")
    else:
        say("seeding a small district into the platform's schema …")
        seeded = load_district(db.url, SCALES["small"], application_name=settings.application_name)
        where = "created the platform's tables and " if seeded.created_schema else ""
        say(f"{where}seeded {seeded.total_rows:,} rows in {seeded.seconds:.2f} s")
    ix = indexes = prepare(db, on_index)
    say(
        f"wcperf schema at {', '.join(ix.revision)}; {ix.present}/{ix.total} performance "
        f"indexes present ({ix.built} built online by wcperf, {ix.present - ix.built} found)"
    )
    for name in ix.differing:
        say(f"{name} differs from the platform's model: left alone")
    summary = district_summary(db.engine)
    with db.pool.connection() as conn:
        verdicts = verify(conn, compare=True, repeat=1)
    # The burst runs observed, and publishes like any working wcperf process:
    # `wcperf monitor live` in another terminal shows it.
    cache = QueryCache(
        redis_url,
        secret=load_secret(settings.cache_secret, settings.home),
        prefix=settings.redis_prefix,
    )
    try:
        cache.attach(db)
        with Observer(db, settings, redis_url=redis_url, cache_stats=cache.stats) as observer:
            burst = pool_burst(db, workers=3 * settings.pool.max_size, queries=600)
            tour = cache_tour(db, cache)
            seen = observer.snapshot()
        mode = cache.mode()
    finally:
        cache.close()
    # The year-end job, planned only: the demo may run against a database in use.
    kind, year = GradeTransition(), year or date.today().year
    plan = launch.plan(db, lambda c: kind.plan(c, kind.args(year)))
    return DemoRun(
        seeded, counts.students, indexes, summary, verdicts, burst, seen, tour, mode, year, plan
    )
