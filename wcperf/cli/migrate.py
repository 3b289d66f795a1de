"""`wcperf migrate`: schema and performance indexes, online, verified by their plans."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from wcperf.cli.context import database, err, out, state
from wcperf.cli.render import emit_json, pairs, table
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.migrate.online_index import BuildPolicy, IndexEvent, MigrationHooks
from wcperf.migrate.verify import verify as verify_plans

app = typer.Typer(
    help="Apply wcperf's migrations: the baseline schema and the 14 performance indexes, "
    "built online (CREATE INDEX CONCURRENTLY) with lock timeouts, retries and repair.",
    invoke_without_command=True,
)

LOCK_TIMEOUT = typer.Option(
    2000,
    "--lock-timeout",
    min=50,
    metavar="MS",
    help="Give up one lock wait after this long, then retry.",
)
ATTEMPTS = typer.Option(
    6,
    "--attempts",
    min=1,
    help="Tries per index before giving up (backoff doubles from 1 s, at most 30 s).",
)
BUILD_TIMEOUT = typer.Option("2h", "--build-timeout", help="statement_timeout for one build.")
WORK_MEM = typer.Option("256MB", "--maintenance-work-mem", help="Memory for each build's sort.")
PARALLEL = typer.Option(
    "auto",
    "--parallel-workers",
    metavar="auto|N",
    help="Parallel workers per build. auto: one core while other sessions are working, "
    "PostgreSQL's own parallelism while the database is quiet.",
)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class _Bars:
    """One progress bar per index, fed by the builder's events (from two threads)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.summary: list[dict[str, Any]] = []

    def __call__(self, event: IndexEvent) -> None:
        name = event.spec.name if event.spec else f"analyze {event.table}"
        p = self.progress
        if event.kind in ("start", "analyze"):
            self.tasks[name] = p.add_task(name, total=1.0, phase=event.detail or "")
        elif event.kind == "progress" and event.progress and name in self.tasks:
            pr = event.progress
            phase = pr.phase
            if pr.blockers:
                phase += " — waiting for " + ", ".join(b.describe() for b in pr.blockers[:2])
            fraction = pr.fraction
            if fraction is None:
                p.update(self.tasks[name], phase=phase)
            else:
                p.update(self.tasks[name], phase=phase, completed=fraction)
        elif event.kind in ("retry", "dropped") and name in self.tasks:
            detail = event.detail if event.kind == "retry" else f"dropped {event.detail} leftover"
            p.update(self.tasks[name], phase=detail)
            p.console.print(f"{name}: {detail}", markup=False, highlight=False)
        elif event.kind in ("done", "analyzed") and name in self.tasks:
            p.update(
                self.tasks[name],
                completed=1.0,
                phase=f"{event.detail or 'valid'} in {event.seconds:.1f} s "
                + (_size(event.size_bytes) if event.size_bytes else ""),
            )
            if event.spec is not None:
                self.summary.append(
                    {
                        "index": name,
                        "action": event.detail or "built",
                        "seconds": round(event.seconds, 3),
                        "size_bytes": event.size_bytes,
                    }
                )
        elif event.kind == "skipped":
            self.summary.append(
                {
                    "index": name,
                    "action": "already valid",
                    "seconds": 0.0,
                    "size_bytes": event.size_bytes,
                }
            )


def _progress(json_out: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<46}"),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn("{task.fields[phase]}"),
        console=err,
        disable=json_out or not err.is_terminal,
    )


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit():
        raise typer.BadParameter("auto or a whole number", param_hint="--parallel-workers")
    return int(value)


def _hooks(db: Database, bars: _Bars, policy: BuildPolicy) -> MigrationHooks:
    return MigrationHooks(policy=policy, listener=bars, poll_connect=db.pool.connection)


@app.callback()
def migrate(
    ctx: typer.Context,
    sql: bool = typer.Option(
        False,
        "--sql",
        help="Print exactly the SQL that would run against this database now; execute nothing.",
    ),
    to: str = typer.Option("head", "--to", metavar="REV", help="Revision to upgrade to."),
    lock_timeout: int = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
    build_timeout: str = BUILD_TIMEOUT,
    maintenance_work_mem: str = WORK_MEM,
    parallel_workers: str = PARALLEL,
    json_out: bool = typer.Option(False, "--json", help="Print a summary as JSON."),
) -> None:
    """Upgrade to the newest revision: baseline if needed, then the indexes, online.

    Safe to re-run at any time: valid indexes are kept, INVALID leftovers of an
    interrupted build are dropped and rebuilt. Exit 3 when a lock never freed
    within the retry budget (nothing is left that a re-run cannot repair).
    """
    if ctx.invoked_subcommand is not None:
        return
    policy = BuildPolicy(
        lock_timeout_ms=lock_timeout,
        attempts=attempts,
        build_timeout=build_timeout,
        maintenance_work_mem=maintenance_work_mem,
        parallel_workers=_workers(parallel_workers),
    )
    policy.session_sql()  # validates the durations and sizes before anything connects
    with database(ctx, "migrate") as db:
        if sql:
            text = alembic_driver.upgrade_sql(db.engine, to, MigrationHooks(policy=policy))
            out.print(
                text or "-- nothing to do: the database is at head and every index is valid",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return
        before = alembic_driver.status(db.engine)
        with _progress(json_out) as progress:
            bars = _Bars(progress)
            after = alembic_driver.upgrade(db.engine, to, _hooks(db, bars, policy))
            if before.up_to_date:
                # At head already: repair any index dropped or left INVALID since.
                alembic_driver.repair_indexes(db.engine, _hooks(db, bars, policy))
        states = alembic_driver.indexes(db.engine)
    valid = sum(s.state == "valid" for s in states.values())
    if json_out:
        emit_json(
            {
                "applied": list(before.pending),
                "current": list(after.current),
                "indexes": bars.summary,
                "valid": valid,
                "total": len(states),
            }
        )
        return
    applied = ", ".join(before.pending) or "nothing new"
    built = [s for s in bars.summary if s["action"] not in ("already valid",)]
    err.print(
        f"applied {applied}; now at {', '.join(after.current)}; "
        f"{len(built)} built or repaired, {valid}/{len(states)} indexes valid"
    )


@app.command()
def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """Alembic current/head, and each index: valid / INVALID / missing, size, scans.

    Exit 1 when migrations are pending or any index is not valid.
    """
    with database(ctx, "migrate") as db:
        st = alembic_driver.status(db.engine)
        states = alembic_driver.indexes(db.engine) if st.current else {}
    specs = alembic_driver.performance_indexes()
    rows = [
        {
            "index": s.name,
            "table": s.table,
            "state": states[s.name].state if s.name in states else "missing",
            "size_bytes": states[s.name].size_bytes if s.name in states else 0,
            "scans": states[s.name].scans if s.name in states else 0,
        }
        for s in specs
    ]
    healthy = st.up_to_date and all(r["state"] == "valid" for r in rows)
    if json_out:
        emit_json(
            {
                "current": list(st.current),
                "heads": list(st.heads),
                "pending": list(st.pending),
                "up_to_date": st.up_to_date,
                "indexes": rows,
                "healthy": healthy,
            }
        )
    else:
        out.print(
            pairs(
                "migrations",
                {
                    "current": ", ".join(st.current) or "(none: empty database)",
                    "head": ", ".join(st.heads),
                    "pending": ", ".join(st.pending) or "none",
                },
            )
        )
        out.print(
            table(
                "performance indexes",
                ["index", "table", "state", "size", "scans since reset"],
                [
                    [
                        r["index"],
                        r["table"],
                        r["state"],
                        _size(r["size_bytes"]) if r["size_bytes"] else "-",
                        r["scans"],
                    ]
                    for r in rows
                ],
            )
        )
    if not healthy:
        raise typer.Exit(1)


@app.command()
def downgrade(
    ctx: typer.Context,
    revision: str = typer.Argument(..., help="Target revision, e.g. 0001_baseline or base."),
    lock_timeout: int = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
    yes: bool = typer.Option(
        False, "--yes", help="Needed to go below the baseline (that drops every table)."
    ),
) -> None:
    """Downgrade to REV; index revisions drop their indexes concurrently."""
    if revision == "base" and not yes:
        raise typer.BadParameter(
            "downgrading to base drops every table; add --yes", param_hint="REVISION"
        )
    policy = BuildPolicy(lock_timeout_ms=lock_timeout, attempts=attempts)
    with database(ctx, "migrate") as db, _progress(False) as progress:
        after = alembic_driver.downgrade(db.engine, revision, _hooks(db, _Bars(progress), policy))
    err.print(f"now at {', '.join(after.current) or 'base'}")


@app.command()
def verify(
    ctx: typer.Context,
    compare: bool = typer.Option(
        False,
        "--compare",
        help="Also time each query with index "
        "scans disabled (SET LOCAL: no lock, nothing dropped).",
    ),
    repeat: int = typer.Option(3, min=1, help="Runs per query; the median is reported."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run the hot queries under EXPLAIN (ANALYZE, BUFFERS): plan, index used, time.

    Exit 1 when a query does not use its index (on a table large enough to need one).
    """
    with database(ctx, "migrate") as db, db.pool.connection() as conn:
        verdicts = verify_plans(conn, compare=compare, repeat=repeat)
    if json_out:
        emit_json({"queries": [v.as_dict() for v in verdicts], "ok": all(v.ok for v in verdicts)})
    else:
        columns = ["query", "intended index", "uses it", "plan", "ms", "buffers"]
        if compare:
            columns += ["before ms", "% faster"]
        rows = []
        for v in verdicts:
            uses = "yes" if v.chosen else "usable (table too small)" if v.ok else "NO"
            row = [v.query, v.index, uses, v.after.node, f"{v.after.ms:.3f}", v.after.buffers]
            if compare and v.before is not None:
                row += [f"{v.before.ms:.3f}", f"{v.faster_pct:.0f} %"]
            rows.append(row)
        out.print(table("hot queries", columns, rows))
    if not all(v.ok for v in verdicts):
        if not state(ctx).quiet and not json_out:
            err.print("some hot queries do not use their index: run `wcperf migrate`")
        raise typer.Exit(1)
