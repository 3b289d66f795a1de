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
from wcperf.jobs.base import BatchResult, JobKind, add_counts
from wcperf.jobs.signals import SignalReader
from wcperf.jobs.store import Job
from wcperf.jobs.throttle import GO, Backoff, BatchSizer, Decision, Thresholds, decide, state_dict

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


@dataclass(frozen=True)
class RunOptions:
    batch_size: int | None = None  # fixed; None adapts to target_batch_ms
    target_batch_ms: float = 200.0
    min_batch: int = 100
    max_batch: int = 50_000
    sleep_ms: float = 0.0  # rest between batches, on top of any backpressure rest
    atomic: bool = False
    backpressure: bool = True
    thresholds: Thresholds = field(default_factory=Thresholds)
    lock_timeout_ms: int = 2_000
    atomic_timeout_ms: int = 3_600_000
    max_retries: int = 10


@dataclass
class Progress:
    job_id: int
    kind: str
    rows_done: int
    rows_total: int
    state: str  # running | slowed | paused | done | aborted | failed | interrupted
    reason: str
    batch_size: int
    batches: int
    rows_per_s: float


@dataclass
class Outcome:
    job: Job
    status: str  # done | aborted
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
        self.throttle: dict[str, Any] = {"state": "starting", "reason": "", "signals": {}}
        self.job: Job | None = None
        self._run_rows = 0
        self._started = time.monotonic()

    # -- what the Snapshot and the display show ------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        job = self.job
        return {
            f"job {self.job_id}": {
                **self.throttle,
                "kind": self.kind.name,
                "rows_done": job.rows_done if job else 0,
                "rows_total": job.rows_total if job else 0,
                "batch_size": self.batch_size(),
            }
        }

    def batch_size(self) -> int:
        """What the next batch uses: the operator's size, the flag's, or the adaptive one."""
        fixed = self.job.batch_size if self.job else None
        return fixed or self.options.batch_size or self.sizer.size

    def _report(self, state: str, reason: str = "", batches: int = 0) -> None:
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
            if job.status == "done":
                return Outcome(job, "done", "already done", 0.0)
            self.job = store.claim(lease, self.job_id)
            reader = SignalReader(
                self.db,
                lease,
                self.kind.tables,
                redis_client=self.redis_client,
                prefix=self.prefix,
                own_source=self.own_source,
            )
            try:
                if self.options.atomic:
                    outcome = self._atomic(reader)
                else:
                    outcome = self._batches(lease, reader)
            except BaseException as exc:
                # Interrupted (Ctrl-C, or an atomic run refused): nothing half-done, resumable.
                stopped = isinstance(exc, KeyboardInterrupt | Throttled)
                status = "interrupted" if stopped else "failed"
                message = str(exc) or "interrupted" if stopped else safe_message(exc)
                self._finish_outside(lease, status, message)
                raise
            if outcome.status != "done":  # done is recorded with the last batch
                store.record_run(
                    lease, self.job_id, outcome.status, outcome.seconds, self.job.counts
                )
            return outcome

    def _finish_outside(self, lease: psycopg.Connection, status: str, message: str) -> None:
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
            self.throttle = {"state": "running", "reason": "backpressure off", "signals": {}}
            return GO
        values = reader.read()
        decision = decide(values, self.options.thresholds)
        self.throttle = state_dict(decision, values)
        if reader.notes:
            self.throttle["notes"] = reader.notes
        return decision

    def _outcome(self, status: str, reason: str, **kw: Any) -> Outcome:
        assert self.job is not None
        return Outcome(
            self.job, status, reason, time.monotonic() - self._started, rows=self._run_rows, **kw
        )

    def _commit_batch(self, conn: Connection, job: Job, result: BatchResult) -> None:
        checkpoint = {
            **job.checkpoint,
            **result.checkpoint,
            "counts": add_counts(job.counts, result.counts),
        }
        status = "done" if result.done else "running"
        raw = driver(conn)
        store.advance(raw, job, result.rows, checkpoint, status, self.throttle)
        if result.done:
            store.record_run(raw, job.id, "done", time.monotonic() - self._started, job.counts)

    def _after_commit(self, result: BatchResult) -> None:
        self._run_rows += result.rows
        if self.bump is not None and result.rows:
            self.bump(*self.kind.tables)

    def _atomic(self, reader: SignalReader) -> Outcome:
        decision = self._decide(reader)
        if decision.state in ("pause", "abort"):
            raise Throttled(
                f"not starting the atomic run: {decision.reason}; try later or run in batches"
            )
        self._report("running", "one atomic transaction")
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
        self._report("done", batches=1)
        return self._outcome("done", "", batches=1)

    def _batches(self, lease: psycopg.Connection, reader: SignalReader) -> Outcome:
        o = self.options
        if o.backpressure:
            self._report("running", "measuring live traffic before the first batch")
            reader.prime()
        backoff = Backoff()
        batches = retries = failures_in_row = pauses = 0
        paused_s = 0.0
        was_paused = False
        while True:
            decision = self._decide(reader)
            if decision.state == "abort":
                store.note_state(lease, self.job_id, "aborted", self.throttle, decision.reason)
                self._report("aborted", decision.reason, batches)
                return self._outcome("aborted", decision.reason, batches=batches, pauses=pauses)
            if decision.state == "pause":
                if store.requested(lease, self.job_id) == "abort":
                    return self._operator_abort(lease, batches, pauses)
                if not was_paused:
                    pauses += 1
                    was_paused = True
                store.note_state(lease, self.job_id, "paused", self.throttle)
                self._report("paused", decision.reason, batches)
                delay = backoff.next()
                time.sleep(delay)
                paused_s += delay
                continue
            backoff.reset()
            was_paused = False
            started = time.monotonic()
            try:
                with self.db.engine.connect() as conn, conn.begin():
                    job = store.lock(driver(conn), self.job_id, o.lock_timeout_ms)
                    self.job = job
                    if job.requested in ("pause", "abort"):
                        status = "aborted" if job.requested == "abort" else "paused"
                        reason = f"{'aborted' if status == 'aborted' else 'paused'} by operator"
                        self.throttle = {**self.throttle, "state": status, "reason": reason}
                        store.note_state(
                            driver(conn),
                            job.id,
                            status,
                            self.throttle,
                            reason if status == "aborted" else None,
                        )
                        job.status = status
                    else:
                        size = (
                            job.batch_size
                            or o.batch_size
                            or self.sizer.next(decision.target_ms(o.target_batch_ms))
                        )
                        result = self.kind.batch(conn, job, size)
                        self._commit_batch(conn, job, result)
            except DBAPIError as exc:
                if not isinstance(exc.orig, RETRYABLE) or failures_in_row >= o.max_retries:
                    raise
                retries += 1
                failures_in_row += 1
                self.sizer.shrink()
                reason = f"batch retried: {safe_message(exc)}"
                self.throttle = {**self.throttle, "state": "retrying", "reason": reason}
                self._report("paused", reason, batches)
                time.sleep(backoff.next())
                continue
            failures_in_row = 0
            if job.status == "aborted":
                self._report("aborted", "aborted by operator", batches)
                return self._outcome("aborted", "aborted by operator", batches=batches)
            if job.status == "paused":
                pauses += 1
                paused_s += self._wait_while_paused(lease, batches)
                continue
            seconds = time.monotonic() - started
            batches += 1
            self._after_commit(result)
            if job.batch_size is None and o.batch_size is None:
                scanned = result.scanned if result.scanned is not None else result.rows
                self.sizer.observe(scanned, seconds)
            state = "slowed" if decision.state == "slow" else "running"
            self._report("done" if result.done else state, decision.reason, batches)
            if result.done:
                return self._outcome(
                    "done", "", batches=batches, retries=retries, pauses=pauses, paused_s=paused_s
                )
            rest = decision.rest_s(seconds) + o.sleep_ms / 1000
            if rest > 0:
                time.sleep(rest)

    def _wait_while_paused(self, lease: psycopg.Connection, batches: int) -> float:
        """Paused by an operator: poll the job row until resumed or aborted."""
        backoff, waited = Backoff(cap_s=2.0), 0.0
        while store.requested(lease, self.job_id) == "pause":
            self._report("paused", "paused by operator: `wcperf bulk resume`", batches)
            delay = backoff.next()
            time.sleep(delay)
            waited += delay
        if store.requested(lease, self.job_id) != "abort":
            store.note_state(lease, self.job_id, "running", self.throttle)
        return waited

    def _operator_abort(self, lease: psycopg.Connection, batches: int, pauses: int) -> Outcome:
        reason = "aborted by operator"
        store.note_state(lease, self.job_id, "aborted", self.throttle, reason)
        self._report("aborted", reason, batches)
        return self._outcome("aborted", reason, batches=batches, pauses=pauses)
