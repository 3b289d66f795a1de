"""`wcperf demo`: what `make demo` runs on a fresh machine (the work is `wcperf.demo.run`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

from wcperf import demo as library
from wcperf.cli.context import announce, database, err, out, redis_endpoint
from wcperf.cli.render import pairs, table
from wcperf.db.engine import Database
from wcperf.errors import RefusedError
from wcperf.migrate.build_watch import IndexEvent
from wcperf.redact import shown
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
        shown_run = library.run(
            db,
            redis.url,
            say=lambda line: err.print(line, markup=False, highlight=False),
            on_index=_built,
        )
    _render(shown_run)


def _render(r: library.DemoRun) -> None:
    out.print(
        table("district", ["table", "rows"], [[k, f"{v:,}"] for k, v in r.summary.rows.items()])
    )
    out.print(
        table(
            "students by grade",
            ["grade", "students", "active"],
            [[g, f"{n:,}", f"{a:,}"] for g, n, a in r.summary.grades],
        )
    )
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
                for v in r.verdicts
            ],
        )
    )
    burst = r.burst
    out.print(
        pairs(
            f"pool under a burst of {burst.workers} workers ({burst.queries} dashboard queries)",
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
    out.print(percentile_table(r.seen, limit=5, buckets=False))
    l1 = r.seen.cache.tiers.get("l1") if r.seen.cache else None
    out.print(
        table(
            f"hot paths through the query cache ({l1.hits if l1 else 0:,} L1 hits; {r.cache_mode})",
            ["hot path", "database ms", "cached µs"],
            [[p.name, f"{p.database_ms:.2f}", f"{p.cached_us:.1f}"] for p in r.tour],
        )
    )
    breakdown = r.plan.breakdowns[0]
    out.print(
        table(f"grade transition {r.year}: planned, not applied", breakdown.columns, breakdown.rows)
    )
    wcperf = command_name()
    # Commands to copy: the terminal may wrap them, never a newline.
    out.print(
        f"{r.plan.total:,} students; apply with: {wcperf} bulk grade-transition "
        f"--school-year {r.year}",
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f"watch it work from another terminal: {wcperf} monitor live", markup=False, soft_wrap=True
    )
    if wcperf != "wcperf":
        out.print(
            f"(`. {Path(wcperf).parent}/activate` puts wcperf on PATH)",
            markup=False,
            soft_wrap=True,
        )


def _guard(db: Database, yes: bool) -> None:
    """The demo writes (a district, 14 indexes): never into someone else's data unasked."""
    tables = 0 if yes else library.foreign_tables(db)
    if not tables:
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


def _built(event: IndexEvent) -> None:
    """One line per index the migration builds (the demo is read in a terminal or a log)."""
    if event.kind == "done" and event.spec is not None:
        err.print(f"  built {event.spec.name} online in {event.seconds:.2f} s", highlight=False)
