"""From a plan to a job row: the same command again resumes the job it started."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from wcperf.db.engine import Database
from wcperf.jobs import store
from wcperf.jobs.base import JobKind, Plan
from wcperf.jobs.revert import REVERTIBLE, Revert

KINDS: dict[str, JobKind] = {**REVERTIBLE, Revert.name: Revert()}


def plan(db: Database, make: Callable[[Connection], Plan]) -> Plan:
    """Validate and count, in a transaction that is rolled back: a plan writes nothing."""
    with db.engine.connect() as conn:
        try:
            return make(conn)
        finally:
            conn.rollback()


def open_job(db: Database, plan: Plan, command: str) -> tuple[store.Job, bool]:
    """(job, resumed): an unfinished job with the same arguments, or a new one."""
    with db.pool.connection() as conn:  # committed when the block ends
        found = store.find_unfinished(conn, plan.kind, plan.args)
        if found is not None:
            return found, True
        job_id = store.create(conn, plan.kind, plan.args, plan.fixed, plan.total, command)
        return store.get(conn, job_id), False


def with_conn(db: Database, fn: Callable[[Any], Any]) -> Any:
    """Run `fn` on a pooled psycopg connection, committed at the end (control, listing)."""
    with db.pool.connection() as conn:
        return fn(conn)
