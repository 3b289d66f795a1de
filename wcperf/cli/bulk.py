"""`wcperf bulk`: year-end and staffing jobs under connection-pool backpressure."""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Connection

from wcperf import limits
from wcperf.cli.context import announce, database, err, out, redis_endpoint, state
from wcperf.cli.render import emit_json, table
from wcperf.db.engine import Database
from wcperf.errors import ConfigError, RefusedError
from wcperf.jobs import launch, store
from wcperf.jobs.base import Plan
from wcperf.jobs.grade_transition import GradeTransition
from wcperf.jobs.nurse_reassign import NurseReassign
from wcperf.jobs.revert import Revert
from wcperf.jobs.runner import EXIT_STOPPED, Outcome, RunOptions
from wcperf.jobs.runner import Progress as JobProgress
from wcperf.jobs.states import JobStatus, Request
from wcperf.jobs.status import StatusLines
from wcperf.jobs.throttle import SIGNALS, Thresholds
from wcperf.jobs.transfer import Transfer, read_ids
from wcperf.redact import mask as mask_secrets
from wcperf.redact import shown
from wcperf.settings import BulkSettings
from wcperf.urls import mask_url

app = typer.Typer(  # its help: wcperf.cli.commands
    no_args_is_help=True,
)
BREAKDOWN_ROWS = 25
_BULK = BulkSettings()  # the settings tree's defaults

_THROTTLE_HELP = (
    "Backpressure thresholds as SIGNAL=PAUSE:ABORT ('-' for off), e.g. active_backends=8:64. "
    f"Signals: {', '.join(SIGNALS)}. Default from $WCPERF_THROTTLE, else built in."
)


def parse_batch_size(raw: str) -> int | None:
    """`auto` (None: adaptive) or a whole number of rows (ids for grade-transition)."""
    if raw == "auto":
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ConfigError(f"--batch-size must be auto or a whole number, not {shown(repr(raw))}")
    return limits.whole("--batch-size", int(raw), 1, limits.MAX_BATCH_ROWS)


def run_options(
    ctx: typer.Context,
    batch_size: str,
    target_batch_ms: float,
    sleep_ms: float,
    atomic: bool,
    no_backpressure: bool,
    throttle: list[str] | None,
) -> RunOptions:
    """The options every job command and `resume` share, thresholds over $WCPERF_THROTTLE."""
    return RunOptions(
        batch_size=parse_batch_size(batch_size),
        target_batch_ms=limits.number(
            "--target-batch-ms", target_batch_ms, 1, limits.MAX_TARGET_BATCH_MS
        ),
        sleep_ms=limits.number("--sleep-ms", sleep_ms, 0, limits.MAX_SLEEP_MS),
        atomic=atomic,
        backpressure=not no_backpressure,
        thresholds=Thresholds.parse(throttle, Thresholds.of(state(ctx).settings.bulk.throttle)),
    )


def _batch_size() -> Any:
    return typer.Option(
        "auto",
        "--batch-size",
        help="Rows per batch (ids per batch for grade-transition): auto, adapting to "
        "--target-batch-ms, or N.",
    )


def _target() -> Any:
    return typer.Option(
        _BULK.target_batch_ms, "--target-batch-ms", min=10, help="Aimed-for time of one batch."
    )


def _sleep() -> Any:
    return typer.Option(0.0, "--sleep-ms", min=0, help="Rest between batches, always.")


def _atomic() -> Any:
    return typer.Option(
        False,
        "--atomic",
        help="The whole job in one READ COMMITTED transaction, after a pool and database "
        "health check (refused, exit 3, when either is under pressure).",
    )


def _no_bp() -> Any:
    return typer.Option(
        False, "--no-backpressure", help="Ignore every signal (a maintenance window only)."
    )


def _throttle() -> Any:
    return typer.Option(None, "--throttle", help=_THROTTLE_HELP)


def _dry_run() -> Any:
    return typer.Option(False, "--dry-run", help="Print exact counts; write nothing.")


def _json() -> Any:
    return typer.Option(False, "--json", help="Print a machine-readable summary on stdout.")


@dataclass(frozen=True)
class JobRun:
    """What the shared options of a job command ask for."""

    options: RunOptions
    dry_run: bool
    json_out: bool


def job_options(*, dry_run: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a job command the options every job command shares, declared here once.

    The command's own parameters come first; the shared ones follow (`--dry-run` when
    asked for, then the run's pacing, backpressure and `--json`), and the command
    receives them parsed, as `run: JobRun`.
    """

    def shared() -> list[inspect.Parameter]:
        specs: list[tuple[str, Any, Any]] = [
            ("atomic", bool, _atomic()),
            ("batch_size", str, _batch_size()),
            ("target_batch_ms", float, _target()),
            ("sleep_ms", float, _sleep()),
            ("no_backpressure", bool, _no_bp()),
            ("throttle", list[str] | None, _throttle()),
            ("json_out", bool, _json()),
        ]
        if dry_run:
            specs.insert(0, ("dry_run", bool, _dry_run()))
        kw = inspect.Parameter.KEYWORD_ONLY
        return [inspect.Parameter(n, kw, default=o, annotation=a) for n, a, o in specs]

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(fn)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(fn).parameters.values()
            if p.name != "run"
        ]
        extra = shared()

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            got = {p.name: kwargs.pop(p.name) for p in extra}
            ctx = kwargs["ctx"]
            options = run_options(
                ctx, got["batch_size"], got["target_batch_ms"], got["sleep_ms"],
                got["atomic"], got["no_backpressure"], got["throttle"],
            )  # fmt: skip
            fn(**kwargs, run=JobRun(options, got.get("dry_run", False), got["json_out"]))

        params = own + extra
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return command

    return wrap


# -- shared flow ------------------------------------------------------------------------
def _command_line() -> str:
    """The command as typed, for the audit row: URLs masked, --reason's free text dropped."""
    shown: list[str] = []
    mask: Callable[[str], str] | None = None
    for arg in sys.argv[1:]:
        if mask is not None:
            shown.append(mask(arg))
            mask = None
            continue
        name, eq, value = arg.partition("=")
        how = _MASKS.get(name)
        if how is None:
            shown.append(arg)
        elif eq:
            shown.append(f"{name}={how(value)}")
        else:
            shown.append(arg)
            mask = how
    # mask_secrets also catches ?password=, keyword strings and $PGPASSWORD anywhere
    return mask_secrets(shlex.join(["wcperf", *shown]))


_MASKS: dict[str, Callable[[str], str]] = {
    "--reason": lambda _: "REDACTED",
    "--database-url": mask_url,
    "--redis-url": mask_url,
}


def _print_plan(plan: Plan, json_out: bool, dry_run: bool) -> None:
    if json_out:
        emit_json({"dry_run": dry_run, **plan.as_dict()})
        return
    out.print(f"[bold]{plan.kind}[/]: {plan.total:,} rows to change")
    for b in plan.breakdowns:
        rows = b.rows[:BREAKDOWN_ROWS]
        more = len(b.rows) - len(rows)
        title = b.title + (f" (first {len(rows)} of {len(b.rows)}; --json for all)" if more else "")
        out.print(table(title, b.columns, rows))
    for note in plan.notes:
        out.print(f"note: {shown(note)}", markup=False)


class _Display:
    """A progress bar on a terminal; anywhere else a status line at each change of
    state and every `status_interval_s` (wcperf.jobs.status)."""

    def __init__(self, quiet: bool, status_interval_s: float = 10.0) -> None:
        self.quiet = quiet
        self.tty = err.is_terminal
        self.bar: Progress | None = None
        self.task: Any = None
        self.lines = StatusLines(status_interval_s)

    def __enter__(self) -> _Display:
        if self.tty and not self.quiet:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[state]}"),
                TextColumn("[yellow]{task.fields[reason]}"),
                console=err,
            )
            self.bar.__enter__()
        return self

    def __call__(self, p: JobProgress) -> None:
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(
                    f"{p.kind} #{p.job_id}",
                    total=p.rows_total or None,
                    rate="",
                    state="",
                    reason="",
                )
            self.bar.update(
                self.task,
                completed=p.rows_done,
                rate=f"{p.rows_per_s:,.0f} rows/s",
                state=f"{p.state} · batch {p.batch_size:,}",
                reason=p.reason,
            )
            return
        if self.quiet:
            return
        if (status := self.lines(p)) is not None:
            err.print(status, markup=False, highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _run(
    ctx: typer.Context, db: Database, job: store.Job, options: RunOptions, json_out: bool
) -> None:
    endpoint = redis_endpoint(ctx, "bulk")
    announce(ctx, endpoint)
    if endpoint.url is None:
        err.print(
            f"no Redis ({shown(endpoint.note)}): other wcperf pools unseen, no cache bumps",
            style="yellow",
            markup=False,
        )
    with _Display(json_out, db.settings.bulk.status_interval_s) as display:
        outcome = launch.run(db, job, options, redis_url=endpoint.url, on_progress=display)
    _report(outcome, json_out)


def _report(outcome: Outcome, json_out: bool) -> None:
    if json_out:
        emit_json(outcome.as_dict())
    else:
        job = outcome.job
        counts = ", ".join(f"{k} {v:,}" for k, v in job.counts.items()) or "no rows"
        out.print(
            f"job {job.id} {outcome.status}: {counts} "
            f"({outcome.rows:,} rows this run in {outcome.seconds:.1f} s, "
            f"{outcome.batches} batches, {outcome.pauses} pauses)"
            + (f" — {outcome.reason}" if outcome.reason else "")
        )
        if outcome.status == JobStatus.ABORTED:
            out.print(f"resume with: wcperf bulk resume {job.id}")
    if outcome.status != JobStatus.DONE:
        raise typer.Exit(EXIT_STOPPED)


def _job_command(ctx: typer.Context, make_plan: Callable[[Connection], Plan], run: JobRun) -> None:
    options, dry_run, json_out = run.options, run.dry_run, run.json_out
    with database(ctx, "bulk") as db:
        plan = launch.plan(db, make_plan)
        if dry_run:
            _print_plan(plan, json_out, dry_run=True)
            return
        if plan.total == 0:
            found = launch.with_conn(db, lambda c: store.find_unfinished(c, plan.kind, plan.args))
            if found is None:
                _print_plan(plan, json_out, dry_run=False)
                return
        job, resumed = launch.open_job(db, plan, _command_line())
        if resumed and not state(ctx).quiet:
            err.print(
                f"resuming job {job.id} ({job.shown_status}, {job.rows_done:,}/"
                f"{job.rows_total:,} rows done) with the parameters it started with"
            )
        _run(ctx, db, job, options, json_out)


# -- the jobs -------------------------------------------------------------------------
def _as_user() -> Any:
    return typer.Option(
        None,
        "--as-user",
        metavar="UUID",
        help='The user recorded in "updatedBy" on every row changed (default: NULL).',
    )


@app.command("grade-transition")
@job_options()
def grade_transition(
    ctx: typer.Context,
    school_year: int = typer.Option(
        ..., "--school-year", help="The school year ending, e.g. 2026."
    ),
    school: list[str] | None = typer.Option(
        None, "--school", metavar="UUID", help="Only this school (repeat)."
    ),
    as_user: str | None = _as_user(),
    yes: bool = typer.Option(
        False, "--yes", help="Needed for a school year that ended before last year."
    ),
    *,
    run: JobRun,
) -> None:
    """Move every active student one step along Pre-K, K, 1 ... 12, Graduate, once per year.

    Soft-deleted and inactive students are never moved; a student already promoted for
    the year (wcperf's ledger) is skipped, so re-running changes nobody twice.
    """
    kind = GradeTransition()
    args = kind.args(school_year, school, as_user, confirmed=yes)
    _job_command(ctx, lambda c: kind.plan(c, args), run)


@app.command("nurse-reassign")
@job_options()
def nurse_reassign(
    ctx: typer.Context,
    from_nurse: str = typer.Option(
        ..., "--from", metavar="UUID", help="The nurse whose students move."
    ),
    to_nurse: str | None = typer.Option(
        None, "--to", metavar="UUID", help="The nurse who takes them all."
    ),
    balance: bool = typer.Option(
        False, "--balance", help="Spread them over the school's other active nurses by load."
    ),
    max_workload: int | None = typer.Option(
        None,
        "--max-workload",
        min=1,
        help="Most active students any target nurse may have after the move "
        f"(default: $WCPERF_MAX_WORKLOAD, else {_BULK.max_workload}; the platform keeps no"
        " such limit).",
    ),
    as_user: str | None = _as_user(),
    *,
    run: JobRun,
) -> None:
    """Move a nurse's active students to one nurse or balance them; refuse over the limit."""
    kind = NurseReassign()
    args = kind.args(from_nurse, to_nurse, balance, max_workload, as_user)
    limit = state(ctx).settings.bulk.max_workload
    _job_command(ctx, lambda c: kind.plan(c, args, limit), run)


@app.command("transfer")
@job_options()
def transfer(
    ctx: typer.Context,
    to_school: str = typer.Option(
        ..., "--to-school", metavar="UUID", help="The school they move to."
    ),
    students: Path | None = typer.Option(
        None,
        "--students",
        help="CSV of student ids: one per line, or an id, studentId or student_id column.",
    ),
    from_school: str | None = typer.Option(
        None, "--from-school", metavar="UUID", help="Move this school's active students."
    ),
    grade: str | None = typer.Option(
        None, "--grade", help="With --from-school: only this grade (Pre-K, K, 1 ... 12)."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="Kept in the transfer history only; never printed or logged."
    ),
    as_user: str | None = _as_user(),
    *,
    run: JobRun,
) -> None:
    """Move students to another school, unassign their nurse, record the transfer history.

    Every listed id must be an active student (checked in one query) or nothing is written.
    """
    ids = read_ids(students) if students is not None else None
    kind = Transfer()
    args = kind.args(to_school, ids, from_school, grade, as_user)
    _job_command(ctx, lambda c: kind.plan(c, args, ids, reason), run)


@app.command("revert")
@job_options()
def revert(
    ctx: typer.Context,
    job_id: int = typer.Argument(..., metavar="JOB", help="The job whose changes to undo."),
    *,
    run: JobRun,
) -> None:
    """Put back exactly what job JOB changed, from what it recorded in wcperf's schema.

    A row changed since the job wrote it is counted and left alone. Batched, resumable
    and audited like any job: the same command again resumes an interrupted revert.
    """
    kind = Revert()
    args = kind.args(job_id)
    _job_command(ctx, lambda c: kind.plan(c, args), run)


# -- control from another terminal -------------------------------------------------------
def _job_table(jobs: list[store.Job]) -> Any:
    return table(
        "bulk jobs",
        ["job", "kind", "status", "rows", "batch", "throttle", "updated"],
        [
            [
                j.id,
                j.kind,
                j.shown_status,
                f"{j.rows_done:,}/{j.rows_total:,}",
                j.batch_size or "auto",
                (j.throttle or {}).get("reason") or (j.throttle or {}).get("state") or "-",
                j.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            ]
            for j in jobs
        ],
    )


@app.command("list")
def list_jobs(ctx: typer.Context, json_out: bool = _json()) -> None:
    """The 50 newest jobs: status (interrupted = no live runner), rows, throttle state."""
    with database(ctx, "bulk") as db:
        jobs = launch.with_conn(db, store.listing)
    if json_out:
        emit_json([j.as_dict() for j in jobs])
    else:
        out.print(_job_table(jobs))


@app.command()
def status(
    ctx: typer.Context, job_id: int = typer.Argument(..., metavar="JOB"), json_out: bool = _json()
) -> None:
    """One job: status, rows, counts, what slowed or paused it, its audit row."""
    with database(ctx, "bulk") as db:
        job, audit = launch.with_conn(
            db, lambda c: (store.get(c, job_id), store.audit_row(c, job_id))
        )
    if json_out:
        emit_json({**job.as_dict(), "audit": audit})
        return
    out.print(_job_table([job]))
    if job.counts:
        out.print("counts: " + ", ".join(f"{k} {v:,}" for k, v in job.counts.items()))
    if job.error:
        out.print(f"last error: {shown(job.error)}", markup=False)
    details = audit["details"]
    out.print(
        f"audit: {audit['actor']} · {details.get('outcome')} · {details.get('runs')} run(s),"
        f" {details.get('duration_s')} s"
    )


def _control(ctx: typer.Context, job_id: int, what: Request) -> store.Job:
    with database(ctx, "bulk") as db:
        return launch.with_conn(db, lambda c: store.request(c, job_id, what))


@app.command()
def pause(ctx: typer.Context, job_id: int = typer.Argument(..., metavar="JOB")) -> None:
    """Ask a running job to pause before its next batch."""
    job = _control(ctx, job_id, Request.PAUSE)
    out.print(f"job {job.id}: pause requested ({job.shown_status})")


@app.command()
def abort(ctx: typer.Context, job_id: int = typer.Argument(..., metavar="JOB")) -> None:
    """Stop a job between batches; everything committed stays, `resume` continues it."""
    job = _control(ctx, job_id, Request.ABORT)
    out.print(f"job {job.id}: abort requested ({job.shown_status})")


@app.command()
@job_options(dry_run=False)
def resume(
    ctx: typer.Context,
    job_id: int = typer.Argument(..., metavar="JOB"),
    *,
    run: JobRun,
) -> None:
    """Un-pause a live job, or continue an interrupted, failed or aborted one right here."""
    with database(ctx, "bulk") as db:
        job = launch.with_conn(db, lambda c: store.get(c, job_id))
        if job.alive:
            launch.with_conn(db, lambda c: store.request(c, job_id, Request.RUN))
            out.print(
                f"job {job_id}: resume requested (it runs in {shown(job.owner)})", markup=False
            )
            return
        if job.status == JobStatus.DONE:
            raise RefusedError(f"bulk job {job_id} is done; nothing to resume")
        launch.reopen(db, job)
        _run(ctx, db, job, run.options, run.json_out)


@app.command("set")
def set_(
    ctx: typer.Context,
    job_id: int = typer.Argument(..., metavar="JOB"),
    batch_size: str = typer.Option(..., "--batch-size", help="N rows per batch, or auto."),
) -> None:
    """Change a job's batch size; a running job takes it at its next batch."""
    size = parse_batch_size(batch_size)
    with database(ctx, "bulk") as db:
        job = launch.with_conn(db, lambda c: store.set_batch_size(c, job_id, size))
    out.print(f"job {job.id}: batch size {job.batch_size or 'auto'}")
