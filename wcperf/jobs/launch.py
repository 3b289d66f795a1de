"""From a plan to a job row, and from a job row to a run with everything it needs.

The same command again resumes the job it started. `run` wires what a run uses
(the Redis that carries other pools' snapshots and the cache's generations, the
query cache whose scopes each batch bumps, the Observer that publishes the job's
state) so the CLI, tests and Python callers start a job the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection

from wcperf.db.engine import Database
from wcperf.errors import RefusedError
from wcperf.jobs import store
from wcperf.jobs.base import JobKind, Plan
from wcperf.jobs.claims import Claims
from wcperf.jobs.revert import REVERTIBLE, Revert
from wcperf.jobs.runner import Outcome, Progress, Runner, RunOptions

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


@contextlib.contextmanager
def _redis(db: Database, redis_url: str | None) -> Iterator[tuple[Any, Any]]:
    """(client, cache) on `redis_url`, or (None, None): without Redis a job still runs,
    blind to other pools and bumping no cache."""
    if redis_url is None:
        yield None, None
        return
    import redis

    from wcperf.cache.keys import load_secret
    from wcperf.cache.tiered import QueryCache

    s = db.settings
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    cache = QueryCache(redis_url, secret=load_secret(s.cache_secret, s.home), prefix=s.redis_prefix)
    try:
        yield client, cache
    finally:
        cache.close()
        client.close()


def run(
    db: Database,
    job: store.Job,
    options: RunOptions,
    *,
    redis_url: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Outcome:
    """Run (or go on with) `job` to its end: done, aborted, or an exception that leaves
    it resumable. Its state is published like any working wcperf process's."""
    from wcperf.observe.observer import Observer

    with _redis(db, redis_url) as (client, cache):
        observer = Observer(db, db.settings, redis_url=redis_url, role=f"bulk job {job.id}")
        runner = Runner(
            db,
            KINDS[job.kind],
            job.id,
            options,
            redis_client=client,
            prefix=db.settings.redis_prefix,
            own_source=observer.source,
            on_progress=on_progress,
            bump=cache.bump if cache is not None else None,
        )
        observer.throttle_state = runner.snapshot_state
        with observer:
            return runner.run()
