"""From a plan to a job row: the same command again resumes the job it started."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from wcperf.db.engine import Database
from wcperf.errors import RefusedError
from wcperf.jobs import store
from wcperf.jobs.base import JobKind, Plan
from wcperf.jobs.claims import Claims
from wcperf.jobs.revert import REVERTIBLE, Revert

KINDS: dict[str, JobKind] = {**REVERTIBLE, Revert.name: Revert()}
LAUNCH_LOCK = 0  # the second key of the launcher's lock; job ids (the leases') start at 1


def plan(db: Database, make: Callable[[Connection], Plan]) -> Plan:
    """Validate and count, in a transaction that is rolled back: a plan writes nothing."""
    with db.engine.connect() as conn:
        try:
            return make(conn)
        finally:
            conn.rollback()


def open_job(db: Database, plan: Plan, command: str) -> tuple[store.Job, bool]:
    """(job, resumed): an unfinished job with the same arguments, or a new one.

    The look and the insert happen under one transaction-level advisory lock, so
    two launchers started together cannot both find nothing and both create.
    """
    with db.pool.connection() as conn:  # committed (and the lock let go) when the block ends
        conn.execute("select pg_advisory_xact_lock(%s, %s)", (store.LOCK_CLASS, LAUNCH_LOCK))
        found = store.find_unfinished(conn, plan.kind, plan.args)
        if found is not None:
            return found, True
        refuse_overlap(conn, plan.kind, plan.claims)
        job_id = store.create(
            conn, plan.kind, plan.args, plan.fixed, plan.total, command, plan.claims
        )
        return store.get(conn, job_id), False


def reopen(db: Database, job: store.Job) -> None:
    """Before a stopped job runs again: refuse if a job started meanwhile overlaps it."""
    with db.pool.connection() as conn:
        conn.execute("select pg_advisory_xact_lock(%s, %s)", (store.LOCK_CLASS, LAUNCH_LOCK))
        refuse_overlap(conn, job.kind, job.claims, job.id)


def refuse_overlap(conn: Any, kind: str, claims: Claims, job_id: int | None = None) -> None:
    """Refuse (exit 2) when an unfinished job of `kind` other than `job_id` overlaps."""
    for other in store.unfinished(conn, kind):
        if other.id != job_id and other.claims.overlaps(claims):
            raise RefusedError(
                f"bulk job {other.id} ({kind}, {other.shown_status}) works on "
                f"{other.claims.shared(claims)} too: let it finish, resume it "
                f"(`wcperf bulk resume {other.id}`) or abort it first; nothing written"
            )


def with_conn(db: Database, fn: Callable[[Any], Any]) -> Any:
    """Run `fn` on a pooled psycopg connection, committed at the end (control, listing)."""
    with db.pool.connection() as conn:
        return fn(conn)
