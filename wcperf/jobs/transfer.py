"""Student transfer: students move to another school, their nurse unassigned.

The set is either a CSV of student ids (every id must exist: checked in one
query before anything is written) or the active students of one school
(optionally one grade). Each move writes the student row (school, no nurse,
transfer time and metadata) and one `student_transfers` row, unique per job and
student, in the batch's transaction. The reason an operator types is free text and
may name a child: it is kept beside the job's plan (to resume with) and in the
history rows, inside the database, and never reaches the job's arguments, the
audit row, a log or the screen.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from wcperf.errors import ConfigError
from wcperf.jobs.base import BatchResult, Breakdown, Plan, ids_sample, missing_ids
from wcperf.jobs.store import Job

_MOVE = """
with old as (
  select id, school_id, nurse_id from students
   where id = any(%(ids)s) and school_id <> %(to)s
   order by id for update
), moved as (
  update students s
     set school_id = %(to)s, nurse_id = null, transferred_at = now(), updated_at = now(),
         transfer_metadata = jsonb_build_object(
           'job_id', %(job)s::bigint, 'from_school_id', old.school_id,
           'from_nurse_id', old.nurse_id, 'to_school_id', %(to)s::bigint)
    from old where s.id = old.id
  returning s.id
), history as (
  insert into student_transfers
         (student_id, from_school_id, to_school_id, from_nurse_id, job_id, reason)
  select id, school_id, %(to)s, nurse_id, %(job)s, %(reason)s from old
  on conflict (job_id, student_id) do nothing
)
select count(*) from moved
"""


def read_ids(path: Path) -> list[int]:
    """Student ids from a CSV: one per line, or a `student_id`/`id` column.

    A bad line is reported by number only: the file may hold other columns, and
    they may be names.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise ConfigError(f"{path}: no student ids")
    column, start = 0, 0
    header = [c.strip().lower() for c in rows[0]]
    if not header[0].lstrip("-").isdigit():
        names = [h for h in ("student_id", "id") if h in header]
        if not names:
            raise ConfigError(f"{path}: line 1 is a header without a student_id or id column")
        column, start = header.index(names[0]), 1
    ids: list[int] = []
    for number, row in enumerate(rows[start:], start=start + 1):
        cell = row[column].strip() if column < len(row) else ""
        if not cell.isdigit() or int(cell) < 1:
            raise ConfigError(f"{path}: line {number} holds no valid student id; nothing written")
        ids.append(int(cell))
    if not ids:
        raise ConfigError(f"{path}: no student ids")
    return sorted(set(ids))


class Transfer:
    name = "transfer"
    tables = ("students", "student_transfers")

    @staticmethod
    def args(
        to_school: int,
        student_ids: list[int] | None,
        from_school: int | None,
        grade: int | None,
    ) -> dict[str, Any]:
        if (student_ids is None) == (from_school is None):
            raise ConfigError("give exactly one of --students FILE or --from-school ID")
        if grade is not None and (from_school is None or not 0 <= grade <= 12):
            raise ConfigError("--grade (0-12) goes with --from-school")
        if from_school == to_school:
            raise ConfigError("--from-school and --to-school are the same school")
        args: dict[str, Any] = {"to_school": to_school}
        if student_ids is not None:
            digest = hashlib.sha256(",".join(map(str, student_ids)).encode()).hexdigest()[:16]
            args |= {"students": len(student_ids), "students_sha256": digest}
        else:
            args |= {"from_school": from_school, "grade": grade}
        return args

    def plan(
        self,
        conn: Connection,
        args: dict[str, Any],
        student_ids: list[int] | None = None,
        reason: str | None = None,
    ) -> Plan:
        schools = [args["to_school"]] + ([args["from_school"]] if "from_school" in args else [])
        if unknown := missing_ids(conn, "schools", schools):
            raise ConfigError(f"unknown school id(s): {ids_sample(unknown)}; nothing written")
        if student_ids is not None:
            if unknown := missing_ids(conn, "students", student_ids):
                raise ConfigError(
                    f"{len(unknown)} of {len(student_ids)} student ids do not exist"
                    f" ({ids_sample(unknown)}); nothing written"
                )
            where, params = "id = any(%(ids)s)", {"ids": student_ids}
        else:
            where = "school_id = %(from)s and status = 'active'"
            params = {"from": args["from_school"], "grade": args["grade"]}
            if args["grade"] is not None:
                where += " and grade = %(grade)s"
        rows = conn.exec_driver_sql(
            f"select school_id, grade, count(*) from students where {where}"
            " group by 1, 2 order by 1, 2",
            params,
        ).fetchall()
        staying = sum(n for s, _, n in rows if s == args["to_school"])
        moving = [[s, g, n] for s, g, n in rows if s != args["to_school"]]
        plan = Plan(
            self.name,
            args,
            {"student_ids": student_ids, "reason": reason},
            sum(n for *_, n in moving),
            [Breakdown("by school and grade", ["from school", "grade", "students"], moving)],
        )
        if staying:
            plan.notes.append(f"{staying} students are already at school {args['to_school']}")
        return plan

    def _next_ids(self, conn: Connection, job: Job, limit: int | None) -> list[int]:
        last = int(job.checkpoint.get("last_id", 0))
        listed: list[int] | None = job.plan.get("student_ids")
        if listed is not None:
            start = bisect.bisect_right(listed, last)
            return listed[start : start + limit if limit else None]
        sql = (
            "select id from students where school_id = %(from)s and status = 'active'"
            " and id > %(last)s"
        )
        if job.args["grade"] is not None:
            sql += " and grade = %(grade)s"
        params = {"from": job.args["from_school"], "grade": job.args["grade"], "last": last}
        return [
            int(r[0])
            for r in conn.exec_driver_sql(sql + " order by id limit %(n)s", {**params, "n": limit})
        ]

    def batch(self, conn: Connection, job: Job, limit: int | None) -> BatchResult:
        ids = self._next_ids(conn, job, limit)
        if not ids:
            return BatchResult(0, {}, {}, done=True)
        moved = conn.exec_driver_sql(
            _MOVE,
            {
                "ids": ids,
                "to": job.args["to_school"],
                "job": job.id,
                "reason": job.plan.get("reason"),
            },
        ).scalar_one()
        return BatchResult(
            moved, {"last_id": ids[-1]}, {"moved": moved, "skipped": len(ids) - moved}, False
        )

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        step = self.batch(conn, job, None)
        return BatchResult(step.rows, step.checkpoint, step.counts, done=True)
