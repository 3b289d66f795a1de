"""Bulk jobs in the database: their rows, their audit row, who runs them.

The `bulk_jobs` row is the job's checkpoint and its control surface: each batch
locks it, reads what an operator asked for (`requested`: run, pause, abort;
`batch_size`), and advances `checkpoint` and `rows_done` in the same transaction
as the rows it changed. A job is *alive* while its runner holds a session-level
advisory lock on a connection of its own; a kill ends the session and frees it.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from wcperf.db import admin
from wcperf.errors import RefusedError, WcperfError
from wcperf.jobs.claims import Claims
from wcperf.jobs.states import UNFINISHED, JobStatus, Request

LOCK_CLASS = 0x77637066  # 'wcpf': the advisory-lock namespace of bulk jobs


class JobNotFound(WcperfError):
    pass


class JobBusy(WcperfError):
    """Another process is running the job."""

    exit_code = 3


@dataclass
class Job:
    id: int
    kind: str
    params: dict[str, Any]  # {"args": what the user asked (ids only), "plan": fixed at start}
    status: JobStatus
    checkpoint: dict[str, Any]
    rows_total: int
    rows_done: int
    batch_size: int | None
    requested: Request | None
    throttle: dict[str, Any] | None
    error: str | None
    owner: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    alive: bool = False

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.params.get("args", {}))

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self.params.get("plan", {}))

    @property
    def claims(self) -> Claims:
        return Claims.from_params(self.params)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.checkpoint.get("counts", {}))

    def __post_init__(self) -> None:
        self.status = JobStatus(self.status)
        self.requested = Request(self.requested) if self.requested else None

    @property
    def shown_status(self) -> JobStatus:
        """`running` or `paused` with no live runner means a runner was killed."""
        if self.status in (JobStatus.RUNNING, JobStatus.PAUSED) and not self.alive:
            return JobStatus.INTERRUPTED
        return self.status

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "args": self.args,
            "status": self.shown_status,
            "requested": self.requested,
            "rows_total": self.rows_total,
            "rows_done": self.rows_done,
            "counts": self.counts,
            "batch_size": self.batch_size,
            "throttle": self.throttle,
            "error": self.error,
            "owner": self.owner,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


_COLUMNS = (
    "id, kind, params, status, coalesce(checkpoint, '{}') as checkpoint,"
    " coalesce(rows_total, 0) as rows_total, rows_done, batch_size, requested, throttle,"
    " error, owner, created_at, updated_at, started_at, finished_at"
)
_ALIVE = (
    "exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.granted"
    f" and l.classid = {LOCK_CLASS} and l.objid = bulk_jobs.id and l.objsubid = 2"
    " and l.database = (select oid from pg_database where datname = current_database()))"
    " as alive"
)


def actor() -> str:
    """The OS user running wcperf: who, in the audit row."""
    try:
        return getpass.getuser()
    except Exception:
        return f"uid:{os.getuid()}"


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _job(row: dict[str, Any]) -> Job:
    return Job(**row)


def get(conn: psycopg.Connection, job_id: int) -> Job:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"select {_COLUMNS}, {_ALIVE} from wcperf.bulk_jobs where id = %s", (job_id,)
        ).fetchone()
    if row is None:
        raise JobNotFound(f"no bulk job {job_id}")
    return _job(row)


def lock(conn: psycopg.Connection, job_id: int, lock_timeout_ms: int) -> Job:
    """The job row, locked for this batch's transaction (which also gets `lock_timeout`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select set_config('lock_timeout', %s, true) as lock_timeout,"
            f" {_COLUMNS}, true as alive from wcperf.bulk_jobs where id = %s for update",
            (f"{lock_timeout_ms}ms", job_id),
        ).fetchone()
    if row is None:
        raise JobNotFound(f"no bulk job {job_id}")
    del row["lock_timeout"]
    return _job(row)


def advance(
    conn: psycopg.Connection,
    job: Job,
    rows: int,
    checkpoint: dict[str, Any],
    status: JobStatus,
    throttle: dict[str, Any] | None,
) -> None:
    """Move the checkpoint, in the batch's own transaction."""
    conn.execute(
        "update wcperf.bulk_jobs set checkpoint = %s, rows_done = rows_done + %s, status = %s,"
        " throttle = %s, error = null, updated_at = now(),"
        " finished_at = case when %s then now() end"
        " where id = %s",
        (Jsonb(checkpoint), rows, status, Jsonb(throttle), status.finished, job.id),
    )
    job.rows_done += rows
    job.checkpoint = checkpoint
    job.status = status


def requested(conn: psycopg.Connection, job_id: int) -> Request | None:
    row = conn.execute("select requested from wcperf.bulk_jobs where id = %s", (job_id,)).fetchone()
    return Request(row[0]) if row and row[0] else None


def listing(conn: psycopg.Connection, limit: int = 50) -> list[Job]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"select {_COLUMNS}, {_ALIVE} from wcperf.bulk_jobs order by id desc limit %s", (limit,)
        ).fetchall()
    return [_job(r) for r in rows]


def unfinished(conn: psycopg.Connection, kind: str) -> list[Job]:
    """Every job of this kind that may still change rows (an aborted one was let go)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"select {_COLUMNS}, {_ALIVE} from wcperf.bulk_jobs"
            " where kind = %s and status = any(%s) order by id",
            (kind, list(UNFINISHED)),
        ).fetchall()
    return [_job(r) for r in rows]


def find_unfinished(conn: psycopg.Connection, kind: str, args: dict[str, Any]) -> Job | None:
    """The newest job of this kind and these arguments that did not finish or get aborted."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"select {_COLUMNS}, {_ALIVE} from wcperf.bulk_jobs"
            " where kind = %s and params -> 'args' = %s"
            " and status = any(%s) order by id desc limit 1",
            (kind, Jsonb(args), list(UNFINISHED)),
        ).fetchone()
    return _job(row) if row else None


def create(
    conn: psycopg.Connection,
    kind: str,
    args: dict[str, Any],
    plan: dict[str, Any],
    rows_total: int,
    command: str,
    claims: Claims | None = None,
) -> int:
    """The job row and its one audit row, in one transaction."""
    params = {"args": args, "plan": plan, "claims": (claims or Claims()).as_dict()}
    with conn.transaction():
        job_id = conn.execute(
            "insert into wcperf.bulk_jobs (kind, params, status, checkpoint, rows_total, requested)"
            " values (%s, %s, %s, %s, %s, %s) returning id",
            (
                kind,
                Jsonb(params),
                JobStatus.PLANNED,
                Jsonb({"counts": {}}),
                rows_total,
                Request.RUN,
            ),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into wcperf.audit_log (actor, action, job_id, counts, details)"
            " values (%s, %s, %s, %s, %s)",
            (
                actor(),
                f"bulk {kind}",
                job_id,
                Jsonb({"rows_total": rows_total}),
                Jsonb(
                    {
                        "command": command,
                        "parameters": args,
                        "outcome": "started",
                        "runs": 0,
                        "duration_s": 0.0,
                    }
                ),
            ),
        )
    return int(job_id)


def record_run(
    conn: psycopg.Connection, job_id: int, outcome: str, seconds: float, counts: dict[str, Any]
) -> None:
    """Fold one run into the job's audit row: outcome, counts, total duration, runs."""
    conn.execute(
        "update wcperf.audit_log set counts = %s,"
        " details = details || jsonb_build_object("
        "   'outcome', %s::text,"
        "   'runs', coalesce((details ->> 'runs')::int, 0) + 1,"
        "   'duration_s',"
        "     round(coalesce((details ->> 'duration_s')::numeric, 0) + %s::numeric, 3),"
        "   'last_run_at', now())"
        " where job_id = %s",
        (Jsonb(counts), outcome, seconds, job_id),
    )


def audit_row(conn: psycopg.Connection, job_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "select actor, action, occurred_at, counts, details from wcperf.audit_log"
            " where job_id = %s",
            (job_id,),
        ).fetchall()
    if len(row) != 1:
        raise WcperfError(f"bulk job {job_id} has {len(row)} audit rows, not one")
    return row[0]


def request(conn: psycopg.Connection, job_id: int, what: Request) -> Job:
    """Ask a job to run, pause or abort: a live runner obeys at its next batch."""
    job = get(conn, job_id)
    if job.status == JobStatus.DONE:
        raise RefusedError(f"bulk job {job_id} is done; nothing to {what}")
    if what == Request.ABORT and job.status == JobStatus.ABORTED:
        raise RefusedError(f"bulk job {job_id} is aborted already")
    conn.execute(
        "update wcperf.bulk_jobs set requested = %s, updated_at = now() where id = %s",
        (what, job_id),
    )
    if what == Request.ABORT and not job.alive:
        conn.execute(
            "update wcperf.bulk_jobs set status = %s, error = 'aborted by operator',"
            " finished_at = now() where id = %s",
            (JobStatus.ABORTED, job_id),
        )
    return get(conn, job_id)


def set_batch_size(conn: psycopg.Connection, job_id: int, size: int | None) -> Job:
    if get(conn, job_id).status == JobStatus.DONE:
        raise RefusedError(f"bulk job {job_id} is done; its batch size is left as it was")
    conn.execute(
        "update wcperf.bulk_jobs set batch_size = %s, updated_at = now() where id = %s",
        (size, job_id),
    )
    return get(conn, job_id)


@contextmanager
def lease(url: str, job_id: int, wait_s: float = 2.0) -> Iterator[psycopg.Connection]:
    """A connection of the job's own, outside the pool, holding the job's advisory lock.

    The lock says the job is alive; the connection also reads the backpressure
    signals and records pauses, so neither waits behind a full pool.
    """
    conn = admin.connect(url, application_name=f"wcperf:bulk-job-{job_id}", autocommit=True)
    try:
        # A runner killed a moment ago frees its lock when the server notices: wait briefly.
        deadline = time.monotonic() + wait_s
        while not conn.execute(
            "select pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, job_id)
        ).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                raise JobBusy(
                    f"bulk job {job_id} is being run by another process; see `bulk status`"
                )
            time.sleep(0.1)
        yield conn
    finally:
        conn.close()


def note_state(
    conn: psycopg.Connection,
    job_id: int,
    status: JobStatus,
    throttle: dict[str, Any] | None,
    error: str | None = None,
) -> None:
    """Record a state outside a batch (paused, aborted, failed), on the lease connection."""
    finished = status.finished
    conn.execute(
        "update wcperf.bulk_jobs set status = %s, throttle = %s, error = %s, updated_at = now(),"
        " finished_at = case when %s then now() else finished_at end where id = %s",
        (status, Jsonb(throttle) if throttle is not None else None, error, finished, job_id),
    )


def claim(conn: psycopg.Connection, job_id: int) -> Job:
    """The runner starts (or resumes) the job: running, and run is what is asked."""
    conn.execute(
        "update wcperf.bulk_jobs set status = %s, requested = %s, owner = %s,"
        " error = null,"
        " started_at = coalesce(started_at, now()), finished_at = null, updated_at = now()"
        " where id = %s",
        (JobStatus.RUNNING, Request.RUN, owner(), job_id),
    )
    return get(conn, job_id)
