"""How a job's changes are put back: one shape for every kind, from what it recorded.

Each kind records, per student it changed, a row in a ledger of wcperf's own (the
values it replaced, the `"updatedAt"` it set). Its `Undo` names that ledger, what
to restore, and what the student must still hold for the change to be the job's:
a row whose `"updatedAt"` or changed columns differ was edited since, and is
counted and left alone. Restored records are marked, never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from wcperf.jobs.base import MOVED, BatchResult, placed_students
from wcperf.jobs.store import Job

NIL = "00000000-0000-0000-0000-000000000000"  # below every UUID: where a keyset starts
_MOVED = MOVED.format(t="k", o="w")


@dataclass(frozen=True)
class Undo:
    ledger: str  # wcperf's table of what the job changed, keyed (job_id, student_id)
    restore: str  # the SET list, from the ledger row `b`
    unchanged: str  # what student `s` still holds if nothing changed it since (`b`: ledger)

    def _batch_sql(self) -> str:
        return f"""
        with batch as (
          select * from {self.ledger} b
           where b.job_id = %(target)s and b.reverted_by is null and b.student_id > %(last)s
           order by b.student_id limit %(n)s
        ), was as (  -- where the cache last saw them: the statement's snapshot
          select s.id, s."nurseId", s."schoolId" from students s join batch b on s.id = b.student_id
        ), back as (
          update students s set {self.restore}, "updatedAt" = b.prev_updated_at,
                                "updatedBy" = b.prev_updated_by
            from batch b
           where s.id = b.student_id and s."updatedAt" = b.applied_at and {self.unchanged}
          returning s.id, s."nurseId", s."schoolId"
        ), marked as (
          update {self.ledger} m set reverted_by = %(job)s
            from back where m.student_id = back.id and m.job_id = %(target)s
        )
        select (select student_id from batch order by student_id desc limit 1),
               (select count(*) from batch), (select count(*) from back),
               (select {_MOVED} from back k join was w on w.id = k.id)
        """

    def plan(self, conn: Connection, target: Job) -> dict[str, int]:
        total, changed = conn.exec_driver_sql(
            f"""select count(*), count(*) filter (where s.id is null
                       or s."updatedAt" <> b.applied_at or not ({self.unchanged}))
                  from {self.ledger} b left join students s on s.id = b.student_id
                 where b.job_id = %(target)s and b.reverted_by is null""",
            {"target": target.id},
        ).one()
        return {"recorded": int(total), "changed_since": int(changed)}

    def batch(self, conn: Connection, target: Job, job: Job, limit: int | None) -> BatchResult:
        params: dict[str, Any] = {
            "target": target.id,
            "job": job.id,
            "last": job.checkpoint.get("last_id", NIL),
            "n": limit,
        }
        top, scanned, back, placed = conn.exec_driver_sql(self._batch_sql(), params).one()
        if top is None:
            return BatchResult(0, {}, {}, done=True)
        return BatchResult(
            back,
            {"last_id": str(top)},
            {"restored": back, "changed_since": scanned - back},
            done=False,
            scanned=scanned,
            placed=placed_students(placed) if limit is not None else {},
        )
