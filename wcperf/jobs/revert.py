"""`bulk revert JOB`: put back exactly what a job changed, from what it recorded.

Each job kind records, per row it changed, the values it replaced and the
`"updatedAt"` it set (the transition's ledger, the move history). A revert walks
those records in keyset batches, like any job (checkpointed, resumable, audited,
under backpressure), and restores a row only where nothing has changed it since:
its `"updatedAt"` is still the one the job set and the changed columns still hold
what the job wrote. A row edited since is counted and left alone. The reverted
records are marked, so the grade transition may run again for that year.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection

from wcperf.db.engine import driver
from wcperf.errors import ConfigError, RefusedError
from wcperf.jobs import store
from wcperf.jobs.base import BatchResult, Breakdown, JobKind, Plan
from wcperf.jobs.claims import Claims
from wcperf.jobs.grade_transition import GradeTransition
from wcperf.jobs.nurse_reassign import NurseReassign
from wcperf.jobs.store import Job
from wcperf.jobs.transfer import Transfer
from wcperf.jobs.undo import Undo


class Revertible(JobKind, Protocol):
    undo: Undo


REVERTIBLE: dict[str, Revertible] = {
    k.name: k for k in (GradeTransition(), NurseReassign(), Transfer())
}


def _target(conn: Connection, job_id: int) -> Job:
    return store.get(driver(conn), job_id)


class Revert:
    name = "revert"
    tables: tuple[str, ...] = ("students",)
    changes = frozenset().union(*(k.changes for k in REVERTIBLE.values()))  # what it puts back

    @staticmethod
    def args(job_id: int) -> dict[str, Any]:
        if job_id < 1:
            raise ConfigError("JOB must be a bulk job number (see `wcperf bulk list`)")
        return {"job": job_id}

    def plan(self, conn: Connection, args: dict[str, Any]) -> Plan:
        target = _target(conn, args["job"])
        kind = REVERTIBLE.get(target.kind)
        if kind is None:
            raise RefusedError(
                f"bulk job {target.id} is a {target.kind} job: it has nothing of its own to "
                "revert (run the job it reverted again instead)"
            )
        if target.alive:
            raise RefusedError(
                f"bulk job {target.id} is running ({target.owner}): abort it first "
                f"(`wcperf bulk abort {target.id}`), then revert it"
            )
        counts = kind.undo.plan(conn, target)
        restore = counts["recorded"] - counts["changed_since"]
        plan = Plan(
            self.name,
            args,
            {"target_kind": target.kind},
            restore,
            [
                Breakdown(
                    f"revert of job {target.id} ({target.kind})",
                    ["rows", "count"],
                    [
                        ["recorded by the job, not yet reverted", counts["recorded"]],
                        ["restored as they were", restore],
                        ["changed since: left alone", counts["changed_since"]],
                    ],
                )
            ],
            claims=Claims.of({f"job:{target.id}"}),
        )
        if counts["changed_since"]:
            plan.notes.append(
                f"{counts['changed_since']} rows changed after job {target.id} wrote them; "
                "they keep their current values"
            )
        return plan

    def _kind(self, job: Job) -> Revertible:
        return REVERTIBLE[job.plan["target_kind"]]

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult:
        return self._kind(job).undo.batch(conn, _target(conn, job.args["job"]), job, limit)

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        step = self._kind(job).undo.batch(conn, _target(conn, job.args["job"]), job, None)
        return BatchResult(step.rows, step.checkpoint, step.counts, done=True)
