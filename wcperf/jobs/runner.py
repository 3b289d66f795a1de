"""Running a bulk job: keyset batches under backpressure, or one atomic transaction.

Per batch: read the signals (on the lease connection, never queued behind the
pool) and decide go / slow / pause / abort; then, in one transaction from the
pool, lock the job row (what the operator asked for, the checkpoint, a fixed
batch size), change the next rows after the checkpoint, and advance the
checkpoint. A kill at any moment leaves either the whole batch with its
checkpoint or neither, so a resumed job never applies a row twice. After each
commit the tables written get their cache generations bumped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from wcperf.db.engine import Database, driver
from wcperf.errors import WcperfError, database_message
from wcperf.jobs import store
from wcperf.jobs.base import BatchResult, JobKind, add_counts, on_calendars
from wcperf.jobs.signals import SignalReader, remembered_p99
from wcperf.jobs.states import JobStatus, Request, RunState, Verdict
from wcperf.jobs.store import Job
from wcperf.jobs.throttle import GO, Backoff, BatchSizer, Decision, Thresholds, decide, state_dict
from wcperf.observe.history import History
from wcperf.observe.snapshot import JobState
from wcperf.settings import BulkSettings

RETRYABLE = (
    pg_errors.LockNotAvailable,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.QueryCanceled,
)
EXIT_STOPPED = 3


class Throttled(WcperfError):
    """The pool or the database is under pressure: not starting, or stopped by a threshold."""

    exit_code = EXIT_STOPPED


_BULK = BulkSettings()  # the settings tree's defaults


@dataclass(frozen=True)
class RunOptions:
    batch_size: int | None = None  # fixed; None adapts to target_batch_ms
    target_batch_ms: float = _BULK.target_batch_ms
    min_batch: int = 100
    max_batch: int = 50_000
    sleep_ms: float = 0.0  # rest between batches, on top of any backpressure rest
    atomic: bool = False
    backpressure: bool = True
    thresholds: Thresholds = field(default_factory=Thresholds)
    lock_timeout_ms: int = _BULK.lock_timeout_ms
    atomic_timeout_ms: int = _BULK.atomic_timeout_ms
    max_retries: int = _BULK.max_retries


@dataclass
class Progress:
    job_id: int
    kind: str
    rows_done: int
    rows_total: int
    state: RunState
    reason: str
    batch_size: int
    batches: int
    rows_per_s: float


@dataclass
class Outcome:
    job: Job
    status: JobStatus  # done or aborted
    reason: str
    seconds: float
    batches: int = 0
    retries: int = 0
    pauses: int = 0
    paused_s: float = 0.0
    rows: int = 0  # changed by this run

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job.id,
            "kind": self.job.kind,
            "status": self.status,
            "reason": self.reason,
            "rows_total": self.job.rows_total,
            "rows_done": self.job.rows_done,
            "rows_this_run": self.rows,
            "counts": self.job.counts,
            "seconds": round(self.seconds, 3),
            "batches": self.batches,
            "retries": self.retries,
            "pauses": self.pauses,
            "paused_s": round(self.paused_s, 3),
        }


def safe_message(exc: BaseException) -> str:
    """PostgreSQL's message without DETAIL (which may quote row values), or the type."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    found = database_message(orig)
    if found is not None:
        return found
    if isinstance(orig, WcperfError):
        return str(orig)
    return type(orig).__name__


class Runner:
    def __init__(
        self,
        db: Database,
        kind: JobKind,
        job_id: int,
        options: RunOptions | None = None,
        *,
        redis_client: Any = None,
        prefix: str = "wcperf:",
        own_source: str = "",
        on_progress: Callable[[Progress], None] | None = None,
        bump: Callable[..., None] | None = None,
    ) -> None:
        self.db, self.kind, self.job_id = db, kind, job_id
        self.options = options or RunOptions()
        self.redis_client, self.prefix, self.own_source = redis_client, prefix, own_source
        self.on_progress = on_progress or (lambda p: None)
        self.bump = bump
        o = self.options
        initial = max(o.min_batch, min(o.max_batch, 1000))
        self.sizer = BatchSizer(o.target_batch_ms, initial=initial, lo=o.min_batch, hi=o.max_batch)
        self.throttle: dict[str, Any] = {"state": RunState.STARTING, "reason": "", "signals": {}}
        self.job: Job | None = None
        self._run_rows = 0
        self._started = time.monotonic()

    # -- what the Snapshot and the display show ------------------------------------
    def snapshot_state(self) -> dict[str, JobState]:
        """The Snapshot's throttle section: this job, how far, and why it is held back."""
        job, t = self.job, self.throttle
        return {
            f"job {self.job_id}": JobState(
                kind=self.kind.name,
                state=str(t.get("state", RunState.STARTING)),
                reason=str(t.get("reason") or ""),
                rows_done=job.rows_done if job else 0,
                rows_total=job.rows_total if job else 0,
                batch_size=self.batch_size(),
                pressure=float(t.get("pressure", 0.0)),
                signals=dict(t.get("signals") or {}),
                notes=list(t.get("notes") or []),
            )
        }

    def batch_size(self) -> int:
        """What the next batch uses: the operator's size, the flag's, or the adaptive one."""
        fixed = self.job.batch_size if self.job else None
        return fixed or self.options.batch_size or self.sizer.size

    def _report(self, state: RunState, reason: str = "", batches: int = 0) -> None:
        job = self.job
        assert job is not None
        elapsed = time.monotonic() - self._started
        self.on_progress(
            Progress(
                job.id,
                job.kind,
                job.rows_done,
                job.rows_total,
                state,
                reason,
                self.batch_size(),
                batches,
                self._run_rows / elapsed if elapsed > 0 else 0.0,
            )
        )

    # -- the run ------------------------------------------------------------------------
    def run(self) -> Outcome:
        self._started = time.monotonic()
        with store.lease(self.db.url, self.job_id) as lease:
            job = self.job = store.get(lease, self.job_id)
            if job.kind != self.kind.name:
                raise WcperfError(f"bulk job {job.id} is a {job.kind} job, not {self.kind.name}")
            if job.status == JobStatus.DONE:
                return Outcome(job, JobStatus.DONE, "already done", 0.0)
            self.job = store.claim(lease, self.job_id)
            reader = SignalReader(
                self.db,
                lease,
                self.kind.tables,
                redis_client=self.redis_client,
                prefix=self.prefix,
                own_source=self.own_source,
                baseline_limit_ms=self.options.thresholds.pause_of("live_p99_ms"),
                remembered_p99_ms=self._remembered_p99(),
            )
            try:
                if self.options.atomic:
                    outcome = self._atomic(reader)
                else:
                    outcome = self._batches(lease, reader)
            except BaseException as exc:
                # Interrupted (Ctrl-C, or an atomic run refused): nothing half-done, resumable.
                stopped = isinstance(exc, KeyboardInterrupt | Throttled)
                status = JobStatus.INTERRUPTED if stopped else JobStatus.FAILED
                message = str(exc) or "interrupted" if stopped else safe_message(exc)
                self._finish_outside(lease, status, message)
                raise
            if outcome.status != JobStatus.DONE:  # done is recorded with the last batch
                store.record_run(
                    lease, self.job_id, outcome.status, outcome.seconds, self.job.counts
                )
            return outcome

    def _remembered_p99(self) -> float | None:
        """The P99 of the last hour's normal minutes, from the monitor's shared history."""
        if self.redis_client is None or not self.options.backpressure:
            return None
        points = History(self.redis_client, self.prefix).points()
        limit = self.options.thresholds.pause_of("live_p99_ms")
        return remembered_p99(points, limit, int(time.time() // 60))

    def _finish_outside(self, lease: psycopg.Connection, status: JobStatus, message: str) -> None:
        try:
            store.note_state(lease, self.job_id, status, self.throttle, message)
            assert self.job is not None
            store.record_run(
                lease,
                self.job_id,
                status,
                time.monotonic() - self._started,
                self.job.counts,
            )
        except psycopg.Error:
            pass  # the lease connection itself is gone: the job shows as interrupted

    def _decide(self, reader: SignalReader) -> Decision:
        if not self.options.backpressure:
            self._show(RunState.RUNNING, "backpressure off", signals={})
            return GO
        values = reader.read()
        decision = decide(values, self.options.thresholds)
        self.throttle = state_dict(decision, values)
        if reader.notes:
            self.throttle["notes"] = reader.notes
        return decision

    def _show(self, state: RunState, reason: str, **more: Any) -> None:
        """The throttle as shown, with this state and reason (its signals kept)."""
        self.throttle = {**self.throttle, "state": state, "reason": reason, **more}

    def _outcome(self, status: JobStatus, reason: str, tally: _Tally | None = None) -> Outcome:
        assert self.job is not None
        t = tally or _Tally()
        return Outcome(
            self.job, status, reason, time.monotonic() - self._started,
            batches=t.batches, retries=t.retries, pauses=t.pauses, paused_s=t.paused_s,
            rows=self._run_rows,
        )  # fmt: skip

    def _commit_batch(self, conn: Connection, job: Job, result: BatchResult) -> None:
        checkpoint = {
            **job.checkpoint,
            **result.checkpoint,
            "counts": add_counts(job.counts, result.counts),
        }
        status = JobStatus.DONE if result.done else JobStatus.RUNNING
        raw = driver(conn)
        store.advance(raw, job, result.rows, checkpoint, status, self.throttle)
        if result.done:
            seconds = time.monotonic() - self._started
            store.record_run(raw, job.id, JobStatus.DONE, seconds, job.counts)

    def _after_commit(self, result: BatchResult) -> None:
        self._run_rows += result.rows
        if self.bump is not None and result.rows:
            placed = {t: list(rows) for t, rows in result.placed.items()}
            try:
                with self.db.engine.connect() as conn:
                    on_calendars(conn, placed)
            except DBAPIError:  # unknown: every nurse's calendar is read afresh instead
                pass
            self.bump(*self.kind.tables, placed=placed, changed=self.kind.changes)

    def _atomic(self, reader: SignalReader) -> Outcome:
        decision = self._decide(reader)
        if decision.state in (Verdict.PAUSE, Verdict.ABORT):
            raise Throttled(
                f"not starting the atomic run: {decision.reason}; try later or run in batches"
            )
        self._report(RunState.RUNNING, "one atomic transaction")
        engine = self.db.engine.execution_options(isolation_level="READ COMMITTED")
        with engine.connect() as conn, conn.begin():
            job = store.lock(driver(conn), self.job_id, self.options.lock_timeout_ms)
            self.job = job
            conn.exec_driver_sql(
                "select set_config('statement_timeout', %(t)s, true)",
                {"t": f"{self.options.atomic_timeout_ms}ms"},
            )
            result = self.kind.apply_all(conn, job)
            self._commit_batch(conn, job, result)
        self._after_commit(result)
        self._report(RunState.DONE, batches=1)
        return self._outcome(JobStatus.DONE, "", _Tally(batches=1))

    def _batches(self, lease: psycopg.Connection, reader: SignalReader) -> Outcome:
        """Batch after batch until done: each step either yields to pressure or to an
        operator, retries a batch a lock or timeout broke, or commits one batch."""
        if self.options.backpressure:
            self._report(RunState.RUNNING, "measuring live traffic before the first batch")
            reader.prime()
        tally = _Tally()
        while True:
            decision = self._decide(reader)
            if decision.state in (Verdict.ABORT, Verdict.PAUSE):
                ended = self._under_pressure(lease, decision, tally)
                if ended is not None:
                    return ended
                continue
            tally.backoff.reset()
            tally.was_paused = False
            started = time.monotonic()
            try:
                job, result = self._one_batch(decision)
            except DBAPIError as exc:
                self._retry_later(exc, tally)
                continue
            tally.failures_in_row = 0
            if job.status == JobStatus.ABORTED:
                self._report(RunState.ABORTED, "aborted by operator", tally.batches)
                return self._outcome(JobStatus.ABORTED, "aborted by operator", tally)
            if job.status == JobStatus.PAUSED or result is None:
                tally.pauses += 1
                tally.paused_s += self._wait_while_paused(lease, tally.batches)
                continue
            seconds = time.monotonic() - started
            self._committed(job, result, decision, seconds, tally)
            if result.done:
                return self._outcome(JobStatus.DONE, "", tally)
            rest = decision.rest_s(seconds) + self.options.sleep_ms / 1000
            if rest > 0:
                time.sleep(rest)

    def _under_pressure(
        self, lease: psycopg.Connection, decision: Decision, tally: _Tally
    ) -> Outcome | None:
        """A signal over its abort threshold ends the job; over its pause threshold the
        job rests with a growing backoff (an operator's abort still ends it)."""
        if decision.state == Verdict.ABORT:
            store.note_state(lease, self.job_id, JobStatus.ABORTED, self.throttle, decision.reason)
            self._report(RunState.ABORTED, decision.reason, tally.batches)
            return self._outcome(JobStatus.ABORTED, decision.reason, tally)
        if store.requested(lease, self.job_id) == Request.ABORT:
            return self._operator_abort(lease, tally)
        if not tally.was_paused:
            tally.pauses += 1
            tally.was_paused = True
        store.note_state(lease, self.job_id, JobStatus.PAUSED, self.throttle)
        self._report(RunState.PAUSED, decision.reason, tally.batches)
        delay = tally.backoff.next()
        time.sleep(delay)
        tally.paused_s += delay
        return None

    def _one_batch(self, decision: Decision) -> tuple[Job, BatchResult | None]:
        """One transaction: lock the job row, obey the operator or change the next rows and
        advance the checkpoint. No result means the operator paused or aborted it."""
        o = self.options
        with self.db.engine.connect() as conn, conn.begin():
            job = store.lock(driver(conn), self.job_id, o.lock_timeout_ms)
            self.job = job
            if job.requested in (Request.PAUSE, Request.ABORT):
                aborting = job.requested == Request.ABORT
                status = JobStatus.ABORTED if aborting else JobStatus.PAUSED
                reason = f"{status} by operator"
                self._show(RunState(status), reason)
                error = reason if aborting else None
                store.note_state(driver(conn), job.id, status, self.throttle, error)
                job.status = status
                return job, None
            size = (
                job.batch_size
                or o.batch_size
                or self.sizer.next(decision.target_ms(o.target_batch_ms))
            )
            result = self.kind.batch(conn, job, size)
            self._commit_batch(conn, job, result)
            return job, result

    def _retry_later(self, exc: DBAPIError, tally: _Tally) -> None:
        """A batch broken by a lock, deadlock or timeout: smaller, after a rest; re-raised
        when it is anything else or the retries ran out."""
        if not isinstance(exc.orig, RETRYABLE) or tally.failures_in_row >= self.options.max_retries:
            raise exc
        tally.retries += 1
        tally.failures_in_row += 1
        self.sizer.shrink()
        reason = f"batch retried: {safe_message(exc)}"
        self._show(RunState.RETRYING, reason)
        self._report(RunState.PAUSED, reason, tally.batches)
        time.sleep(tally.backoff.next())

    def _committed(
        self, job: Job, result: BatchResult, decision: Decision, seconds: float, tally: _Tally
    ) -> None:
        tally.batches += 1
        self._after_commit(result)
        o = self.options
        if job.batch_size is None and o.batch_size is None:
            scanned = result.scanned if result.scanned is not None else result.rows
            self.sizer.observe(scanned, seconds)
        state = RunState.SLOWED if decision.state == Verdict.SLOW else RunState.RUNNING
        self._report(RunState.DONE if result.done else state, decision.reason, tally.batches)

    def _wait_while_paused(self, lease: psycopg.Connection, batches: int) -> float:
        """Paused by an operator: poll the job row until resumed or aborted."""
        backoff, waited = Backoff(cap_s=2.0), 0.0
        while store.requested(lease, self.job_id) == Request.PAUSE:
            self._report(RunState.PAUSED, "paused by operator: `wcperf bulk resume`", batches)
            delay = backoff.next()
            time.sleep(delay)
            waited += delay
        if store.requested(lease, self.job_id) != Request.ABORT:
            store.note_state(lease, self.job_id, JobStatus.RUNNING, self.throttle)
        return waited

    def _operator_abort(self, lease: psycopg.Connection, tally: _Tally) -> Outcome:
        reason = "aborted by operator"
        store.note_state(lease, self.job_id, JobStatus.ABORTED, self.throttle, reason)
        self._report(RunState.ABORTED, reason, tally.batches)
        return self._outcome(JobStatus.ABORTED, reason, tally)


@dataclass
class _Tally:
    """What one run of batches has counted so far."""

    batches: int = 0
    retries: int = 0
    pauses: int = 0
    paused_s: float = 0.0
    failures_in_row: int = 0
    was_paused: bool = False
    backoff: Backoff = field(default_factory=Backoff)
