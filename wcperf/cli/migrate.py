"""`wcperf migrate`: schema and performance indexes, online, verified by their plans."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from wcperf.cli.context import database, err, out, state
from wcperf.cli.render import emit_json, pairs, table
from wcperf.db.engine import Database
from wcperf.migrate import alembic_driver
from wcperf.migrate.alembic_driver import STATE_REVISION
from wcperf.migrate.build_watch import IndexEvent
from wcperf.migrate.index_plan import plan_drop
from wcperf.migrate.index_state import PRESENT, IndexState
from wcperf.migrate.online_index import BuildPolicy, MigrationHooks
from wcperf.migrate.verify import verify as verify_plans
from wcperf.platform.indexes import BY_NAME
from wcperf.redact import shown
from wcperf.settings import IndexSettings

INDEX_REVISION = "0002_performance_indexes"

app = typer.Typer(  # its help: wcperf.cli.commands
    invoke_without_command=True,
)

_INDEX = IndexSettings()  # the tree's defaults
LOCK_TIMEOUT = typer.Option(
    _INDEX.lock_timeout_ms,
    "--lock-timeout",
    min=50,
    metavar="MS",
    help="Give up one lock wait after this long, then retry.",
)
ATTEMPTS = typer.Option(
    _INDEX.attempts,
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
            p.console.print(
                f"{name}: {shown(detail)}", markup=False, highlight=False, soft_wrap=True
            )
        elif event.kind in ("done", "analyzed") and name in self.tasks:
            p.update(
                self.tasks[name],
                completed=1.0,
                phase=f"{event.detail or 'present'} in {event.seconds:.1f} s "
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
        elif event.kind == "waiting":
            p.console.print(
                f"{name}: {shown(event.detail)}", markup=False, highlight=False, soft_wrap=True
            )
        elif event.kind in ("skipped", "differs"):
            self.summary.append(
                {
                    "index": name,
                    "action": "present" if event.kind == "skipped" else "differs: left alone",
                    "detail": event.detail,
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


def _hooks(
    db: Database, bars: _Bars, policy: BuildPolicy, replace_differing: bool
) -> MigrationHooks:
    return MigrationHooks(
        policy=policy,
        listener=bars,
        poll_connect=db.pool.connection,
        replace_differing=replace_differing,
    )


def _expected_sql(st: IndexState) -> str:
    spec = BY_NAME[st.name]
    return f"CREATE INDEX {spec.name} ON {spec.table} {st.expected}"


def _report_differing(differing: list[IndexState], json_out: bool) -> None:
    """Live next to expected: the operator decides, wcperf never drops it unasked."""
    if json_out or not differing:
        return
    out.print(
        table(
            "indexes that differ from the platform's model: left alone",
            ["index", "live definition", "expected"],
            [[st.name, st.definition, _expected_sql(st)] for st in differing],
        )
    )
    err.print(
        f"{len(differing)} index(es) exist under the expected name with another definition; "
        "wcperf left them alone. `wcperf migrate --replace-differing` builds the expected "
        "one online beside each, then swaps it in (the table is never without one)"
    )


@app.callback()
def migrate(
    ctx: typer.Context,
    sql: bool = typer.Option(
        False,
        "--sql",
        help="Print exactly the SQL that would run against this database now; execute nothing.",
    ),
    to: str = typer.Option("head", "--to", metavar="REV", help="Revision to upgrade to."),
    replace_differing: bool = typer.Option(
        False,
        "--replace-differing",
        help="Where an index of an expected name has another definition, build the expected "
        "one concurrently under a temporary name, drop the old one concurrently and rename "
        "(downgrade puts the old definition back).",
    ),
    lock_timeout: int = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
    build_timeout: str = BUILD_TIMEOUT,
    maintenance_work_mem: str = WORK_MEM,
    parallel_workers: str = PARALLEL,
    json_out: bool = typer.Option(False, "--json", help="Print a summary as JSON."),
) -> None:
    """Find or build the platform's 14 performance indexes, online, and record what it built.

    Each index is read from the live database first: present ones (valid and equivalent)
    run nothing; missing ones are built with CREATE INDEX CONCURRENTLY; INVALID leftovers
    are dropped concurrently and rebuilt; one with another definition is left alone
    (exit 1) unless --replace-differing. wcperf never creates, alters or drops a platform
    table; its own state lives in the `wcperf` schema. Refuses (exit 2) a database
    without the platform's tables. Safe to re-run. Exit 3 when a lock never freed
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
            hooks = MigrationHooks(policy=policy, replace_differing=replace_differing)
            text = alembic_driver.upgrade_sql(db.engine, to, hooks)
            out.print(
                text or "-- nothing to do: at head and all 14 indexes present",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return
        before = alembic_driver.status(db.engine)
        with _progress(json_out) as progress:
            bars = _Bars(progress)
            hooks = _hooks(db, bars, policy, replace_differing)
            after = alembic_driver.upgrade(db.engine, to, hooks)
            if before.up_to_date:
                # At head already: build any index dropped or left INVALID since.
                alembic_driver.repair_indexes(db.engine, hooks)
        states = alembic_driver.indexes(db.engine)
    present = sum(s.state == PRESENT for s in states.values())
    differing = list({st.name: st for st in hooks.differing}.values())
    if json_out:
        emit_json(
            {
                "applied": list(before.pending),
                "current": list(after.current),
                "indexes": bars.summary,
                "present": present,
                "built_by_wcperf": sum(s.built for s in states.values()),
                "differing": [
                    {"index": st.name, "live": st.definition, "expected": _expected_sql(st)}
                    for st in differing
                ],
                "total": len(states),
            }
        )
    else:
        applied = ", ".join(before.pending) or "nothing new"
        built = [s for s in bars.summary if s["action"] in ("built", "replaced")]
        err.print(
            f"applied {applied}; now at {', '.join(after.current)}; "
            f"{len(built)} built now, {present}/{len(states)} indexes present"
        )
        _report_differing(differing, json_out)
    if differing:
        raise typer.Exit(1)


@app.command()
def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """wcperf's revision, and each index: present / missing / INVALID / differs, found or
    built by wcperf, size, scans.

    Exit 1 when migrations are pending or any index is not present.
    """
    with database(ctx, "migrate") as db:
        st = alembic_driver.status(db.engine)
        with db.engine.connect() as conn:
            alembic_driver.require_platform(conn)
        states = alembic_driver.indexes(db.engine)
    specs = alembic_driver.performance_indexes()
    rows = [
        {
            "index": s.name,
            "table": s.table,
            "state": states[s.name].state,
            "origin": states[s.name].origin,
            "found_as": states[s.name].found_as or None,
            "definition": states[s.name].definition or None,
            "size_bytes": states[s.name].size_bytes,
            "scans": states[s.name].scans,
        }
        for s in specs
    ]
    healthy = st.up_to_date and all(r["state"] == PRESENT for r in rows)
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
                "wcperf migrations (schema wcperf)",
                {
                    "current": ", ".join(st.current) or "(none yet)",
                    "head": ", ".join(st.heads),
                    "pending": ", ".join(st.pending) or "none",
                },
            )
        )
        out.print(
            table(
                "performance indexes",
                ["index", "table", "state", "origin", "size", "scans since reset"],
                [
                    [
                        r["index"],
                        r["table"],
                        r["state"],
                        f"found as {r['found_as']}" if r["found_as"] else r["origin"],
                        _size(int(r["size_bytes"])) if r["size_bytes"] else "-",
                        r["scans"],
                    ]
                    for r in rows
                ],
            )
        )
    if not healthy:
        raise typer.Exit(1)


@app.command(context_settings={"ignore_unknown_options": True})  # `downgrade -1`, as Alembic
def downgrade(
    ctx: typer.Context,
    revision: str = typer.Argument(
        ..., help="Target revision: 0001_wcperf_state, base, -1, REV-1 ..."
    ),
    lock_timeout: int = LOCK_TIMEOUT,
    attempts: int = ATTEMPTS,
    sql: bool = typer.Option(
        False, "--sql", help="Print what the downgrade would drop; execute nothing."
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        help="Needed to undo 0001_wcperf_state: that drops wcperf's own job history, audit "
        "and ledgers (never a platform table).",
    ),
) -> None:
    """Undo revisions. The index revision drops only the indexes wcperf built (and puts a
    swapped one's old definition back); an index it found is never dropped."""
    policy = BuildPolicy(lock_timeout_ms=lock_timeout, attempts=attempts)
    with database(ctx, "migrate") as db:
        if sql:
            undone = alembic_driver.downgrade_steps(db.engine, revision)
            steps = plan_drop(alembic_driver.built(db.engine)) if INDEX_REVISION in undone else []
            lines = [f"-- undoes: {', '.join(undone) or 'nothing'}"]
            lines += [f"{step.text()};  -- {step.why}" for step in steps]
            if STATE_REVISION in undone:
                lines.append("-- and drops wcperf's own tables in schema wcperf (needs --yes)")
            out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
            return
        with _progress(False) as progress:
            after = alembic_driver.downgrade(
                db.engine,
                revision,
                _hooks(db, _Bars(progress), policy, False),
                drop_state=yes,
            )
    err.print(f"now at {shown(', '.join(after.current) or 'base')}", markup=False)


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
    """Run the platform's hot queries under EXPLAIN (ANALYZE, BUFFERS): plan, index, time.

    The queries are the ones the load runs and the cache keys, as the platform sends them.
    Exit 1 when a query does not use its performance index (on a table large enough to
    need one). A query none of the 14 serves is said so, with what would (advice only).
    """
    with database(ctx, "migrate") as db, db.pool.connection() as conn:
        verdicts = verify_plans(conn, compare=compare, repeat=repeat)
    if json_out:
        emit_json({"queries": [v.as_dict() for v in verdicts], "ok": all(v.ok for v in verdicts)})
    else:
        columns = ["query", "performance index", "uses it", "plan", "ms", "buffers"]
        if compare:
            columns += ["before ms", "% faster"]
        rows = []
        for v in verdicts:
            if v.index is None:
                uses = "-"
            else:
                uses = "yes" if v.chosen else "usable (table too small)" if v.ok else "NO"
            row = [
                v.query,
                v.index or "none of the 14",
                uses,
                v.after.node,
                f"{v.after.ms:.3f}",
                v.after.buffers,
            ]
            if compare and v.before is not None:
                row += [f"{v.before.ms:.3f}", f"{v.faster_pct:.0f} %"]
            rows.append(row)
        out.print(table("hot queries", columns, rows))
        for v in verdicts:
            if v.advice:
                out.print(f"{v.query}: {v.advice}", markup=False, highlight=False, soft_wrap=True)
    if not all(v.ok for v in verdicts):
        if not state(ctx).quiet and not json_out:
            err.print("some hot queries do not use their index: run `wcperf migrate`")
        raise typer.Exit(1)
