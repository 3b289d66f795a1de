"""`wcperf demo`: what `make demo` runs on a fresh machine."""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import typer

from wcperf.cache.keys import load_secret
from wcperf.cache.tiered import QueryCache
from wcperf.cli.context import announce, database, err, out, redis_endpoint
from wcperf.cli.render import pairs, table
from wcperf.db import admin
from wcperf.db.engine import driver
from wcperf.demo import cache_tour, district_summary, pool_burst
from wcperf.errors import RefusedError, WcperfError
from wcperf.jobs import launch
from wcperf.jobs.grade_transition import GradeTransition
from wcperf.migrate import alembic_driver
from wcperf.migrate.online_index import PRESENT, IndexEvent, MigrationHooks
from wcperf.migrate.verify import verify
from wcperf.observe.observer import Observer
from wcperf.redact import shown
from wcperf.seed.district import SCALES
from wcperf.seed.load import district_counts, seeded_by_wcperf
from wcperf.seed.load import seed as load_district
from wcperf.urls import mask_url
from wcperf.views.tables import percentile_table


def demo(
    ctx: typer.Context,
    yes: bool = typer.Option(
        False,
        "--yes",
        help="Run on a database holding data wcperf did not seed (it builds the 14 indexes "
        "there). Without it the demo asks on a terminal and refuses elsewhere.",
    ),
) -> None:
    """Start what is missing, seed a small district if the database is empty, build the
    14 performance indexes online, and show the district, the pool and the cache working."""
    redis = redis_endpoint(ctx, "demo")
    with database(ctx, "demo", create=True) as db:
        _guard(db, yes)
        announce(ctx, redis)
        if redis.url:
            try:
                err.print(f"redis {admin.check_redis(redis.url)} answers")
            except WcperfError as exc:
                err.print(shown(exc), style="yellow", markup=False)
        with db.engine.connect() as conn:
            counts = district_counts(driver(conn))
        if counts.schools:
            err.print(f"district already present ({counts.students:,} students); not seeding")
        else:
            err.print("seeding a small district into the platform's schema …")
            result = load_district(
                db.url, SCALES["small"], application_name=db.settings.application_name
            )
            where = "created the platform's tables and " if result.created_schema else ""
            err.print(f"{where}seeded {result.total_rows:,} rows in {result.seconds:.2f} s")
        hooks = MigrationHooks(listener=_Bars(err))
        before = alembic_driver.status(db.engine)
        status = alembic_driver.upgrade(db.engine, hooks=hooks)
        if before.up_to_date:  # at head already: build whatever is missing since
            alembic_driver.repair_indexes(db.engine, hooks)
        states = alembic_driver.indexes(db.engine)
        present = sum(s.state == PRESENT for s in states.values())
        built = sum(s.built for s in states.values())
        err.print(
            f"wcperf schema at {', '.join(status.current)}; {present}/{len(states)} performance "
            f"indexes present ({built} built online by wcperf, {present - built} found)"
        )
        for st in hooks.differing:
            err.print(f"[yellow]{st.name} differs from the platform's model: left alone[/]")
        summary = district_summary(db.engine)
        out.print(
            table("district", ["table", "rows"], [[k, f"{v:,}"] for k, v in summary.rows.items()])
        )
        out.print(
            table(
                "students by grade",
                ["grade", "students", "active"],
                [[g, f"{n:,}", f"{a:,}"] for g, n, a in summary.grades],
            )
        )
        with db.pool.connection() as conn:
            verdicts = verify(conn, compare=True, repeat=1)
        out.print(
            table(
                "hot queries (wcperf migrate verify --compare)",
                ["query", "performance index", "used", "ms", "without index ms"],
                [
                    [
                        v.query,
                        v.index or "none of the 14",
                        "yes" if v.chosen else "-" if v.index is None else "no (small table)",
                        f"{v.after.ms:.3f}",
                        f"{v.before.ms:.3f}" if v.before else "-",
                    ]
                    for v in verdicts
                ],
            )
        )
        # The burst runs observed, and publishes like any working wcperf process:
        # `wcperf monitor live` in another terminal shows it.
        settings = db.settings
        cache = QueryCache(
            redis.url,
            secret=load_secret(settings.cache_secret, settings.home),
            prefix=settings.redis_prefix,
        )
        cache.attach(db)
        with Observer(db, settings, redis_url=redis.url, cache_stats=cache.stats) as observer:
            burst = pool_burst(db, workers=3 * settings.pool.max_size, queries=600)
            tour = cache_tour(db, cache)
            seen = observer.snapshot()
        cache.close()
        out.print(
            pairs(
                f"pool under a burst of {burst.workers} workers "
                f"({burst.queries} dashboard queries)",
                {
                    "max size / warm": f"{burst.peak.max_size} / {burst.peak.min_size}",
                    "peak in use": burst.peak.in_use,
                    "peak waiting": burst.peak_waiting,
                    "requests (queued)": f"{burst.after.requests} ({burst.after.requests_queued})",
                    "mean wait": f"{burst.after.mean_wait_ms:.1f} ms",
                    "timeouts": burst.after.timeouts,
                    "throughput": f"{burst.queries / burst.seconds:,.0f} queries/s",
                },
            )
        )
        out.print(percentile_table(seen, limit=5, buckets=False))
        l1 = seen.cache.tiers.get("l1") if seen.cache else None
        l1_hits = l1.hits if l1 else 0
        out.print(
            table(
                f"hot paths through the query cache ({l1_hits:,} L1 hits; {cache.mode()})",
                ["hot path", "database ms", "cached µs"],
                [[p.name, f"{p.database_ms:.2f}", f"{p.cached_us:.1f}"] for p in tour],
            )
        )
        # The year-end job, planned only: the demo may run against a database in use.
        kind, year = GradeTransition(), date.today().year
        plan = launch.plan(db, lambda c: kind.plan(c, kind.args(year)))
        out.print(
            table(
                f"grade transition {year}: planned, not applied",
                plan.breakdowns[0].columns,
                plan.breakdowns[0].rows,
            )
        )
        wcperf = command_name()
        out.print(
            f"{plan.total:,} students; apply with: {wcperf} bulk grade-transition "
            f"--school-year {year}",
            markup=False,
            soft_wrap=True,  # a command to copy: the terminal may wrap it, never a newline
        )
        out.print(
            f"watch it work from another terminal: {wcperf} monitor live",
            markup=False,
            soft_wrap=True,
        )
        if wcperf != "wcperf":
            out.print(
                f"(`. {Path(wcperf).parent}/activate` puts wcperf on PATH)",
                markup=False,
                soft_wrap=True,
            )


_TABLES = """
select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema', 'wcperf')
  and n.nspname not like 'pg\\_%'
"""


def _guard(db: Any, yes: bool) -> None:
    """The demo writes (a district, 14 indexes): never into someone else's data unasked.

    A database is the demo's when it has no tables at all, or wcperf seeded it.
    """
    with db.pool.connection() as conn:
        tables = conn.execute(_TABLES).fetchone()[0]
        if not tables or seeded_by_wcperf(conn) is not None or yes:
            return
    plural = "s" if tables != 1 else ""
    question = (
        f"{mask_url(db.url)} holds {tables} table{plural} wcperf did not seed; the demo "
        "would write a sample district and build the 14 performance indexes there"
    )
    if sys.stdin.isatty() and sys.stderr.isatty():
        if typer.confirm(f"{shown(question)}. Go on?", default=False, err=True):
            return
        raise RefusedError("the demo was not run; nothing written")
    raise RefusedError(
        f"{question}: refused (nothing written). Point it at another database "
        "(--database-url embedded) or pass --yes"
    )


def command_name() -> str:
    """How to type wcperf again: `wcperf` when that is on PATH, else the path used now."""
    argv0 = Path(sys.argv[0])
    found = shutil.which("wcperf")
    if argv0.name == "wcperf" and not (found and Path(found).resolve() == argv0.resolve()):
        return str(argv0)
    return "wcperf" if found else f"{Path(sys.executable)} -m wcperf"


class _Bars:
    """One line per index the migration builds (the demo is read in a terminal or a log)."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def __call__(self, event: IndexEvent) -> None:
        if event.kind == "done" and event.spec is not None:
            self.console.print(
                f"  built {event.spec.name} online in {event.seconds:.2f} s", highlight=False
            )
