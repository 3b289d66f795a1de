"""Student transfer: students move to another school, their nurse unassigned.

The set is either a CSV of student keys (every one must be an active, not deleted
student: checked in one query before anything is written) or the active students
of one school (optionally one grade). Each move sets the student's `"schoolId"`
(and `"districtId"` to the new school's), clears `"nurseId"`, sets `"updatedAt"`,
and records one `wcperf.student_moves` row with what it replaced and the move's
metadata, in the batch's transaction. The reason an operator types is free text
and may name a child: it is kept in those history rows only (and beside the
job's plan, to resume with), never in the job's arguments, the audit row, a log
or the screen.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from wcperf.errors import ConfigError
from wcperf.jobs.base import (
    MOVED,
    BatchResult,
    Breakdown,
    Plan,
    as_user,
    ids_sample,
    missing_ids,
    parse_uuid,
    placed_students,
)
from wcperf.jobs.claims import Claims
from wcperf.jobs.store import Job
from wcperf.jobs.undo import NIL, Undo
from wcperf.platform import GRADES

_ACTIVE = 't."isActive" and t."deletedAt" is null'

_MOVE = """
with target as (
  select id, "districtId" from schools where id = %(to)s
), old as (
  select s.id, s."schoolId", s."districtId", s."nurseId", s."updatedAt", s."updatedBy"
    from students s
   where s.id = any(%(ids)s::uuid[]) and s."schoolId" is distinct from %(to)s
     and s."isActive" and s."deletedAt" is null
   order by s.id for update
), moved as (
  update students s
     set "schoolId" = target.id, "districtId" = target."districtId", "nurseId" = null,
         "updatedAt" = now(), "updatedBy" = %(by)s
    from old, target where s.id = old.id
  returning s.id, s."nurseId", s."schoolId"
), history as (
  insert into wcperf.student_moves
         (job_id, student_id, from_school_id, to_school_id, from_district_id, to_district_id,
          from_nurse_id, to_nurse_id, applied_at, prev_updated_at, prev_updated_by, reason,
          metadata)
  select %(job)s, old.id, old."schoolId", target.id, old."districtId", target."districtId",
         old."nurseId", null, now(), old."updatedAt", old."updatedBy", %(reason)s,
         jsonb_build_object('job_id', %(job)s::bigint, 'kind', 'transfer')
    from old, target
  on conflict (job_id, student_id) do nothing
)
select count(*), {moved} from moved m join old o on o.id = m.id
""".replace("{moved}", MOVED.format(t="m", o="o"))
_HEADERS = ("id", "studentid", "student_id")


MAX_CSV_BYTES = 64 << 20  # a million ids with a name column each fit well within it


def read_ids(path: Path) -> list[uuid.UUID]:
    """Student keys from a CSV: one per line, or an `id`, `studentId` or `student_id` column.

    UTF-8 with or without a BOM, LF or CRLF. A bad line is reported by number only:
    the file may hold other columns, and they may be names.
    """
    try:
        with path.open("rb") as fh:  # bounded: /dev/zero or a wrong file must not fill memory
            raw = fh.read(MAX_CSV_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_CSV_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_CSV_BYTES >> 20} MiB, not a list of student ids;"
            " nothing written"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; nothing written") from None
    rows = [
        (n, r)
        for n, r in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
        if any(c.strip() for c in r)
    ]
    if not rows:
        raise ConfigError(f"{path}: no student ids")
    column, start = 0, 0
    first = [c.strip() for c in rows[0][1]]
    if not _is_uuid(first[0]):
        header = [h.lower() for h in first]
        names = [h for h in _HEADERS if h in header]
        if not names:
            raise ConfigError(
                f"{path}: line {rows[0][0]} is a header without an id, studentId or "
                "student_id column"
            )
        column, start = header.index(names[0]), 1
    ids: list[uuid.UUID] = []
    for number, row in rows[start:]:
        cell = row[column].strip() if column < len(row) else ""
        if not _is_uuid(cell):
            raise ConfigError(f"{path}: line {number} holds no valid student id; nothing written")
        ids.append(uuid.UUID(cell))
    if not ids:
        raise ConfigError(f"{path}: no student ids")
    return sorted(set(ids))


def _is_uuid(cell: str) -> bool:
    try:
        uuid.UUID(cell)
    except ValueError:
        return False
    return True


class Transfer:
    name = "transfer"
    tables: tuple[str, ...] = ("students",)
    changes = frozenset({"schoolId", "districtId", "nurseId", "updatedAt", "updatedBy"})
    undo = Undo(
        "wcperf.student_moves",
        '"schoolId" = b.from_school_id, "districtId" = b.from_district_id,'
        ' "nurseId" = b.from_nurse_id',
        's."schoolId" is not distinct from b.to_school_id and s."nurseId" is null',
    )

    @staticmethod
    def args(
        to_school: str | uuid.UUID,
        student_ids: list[uuid.UUID] | None,
        from_school: str | uuid.UUID | None,
        grade: str | None,
        user: str | uuid.UUID | None = None,
    ) -> dict[str, Any]:
        if (student_ids is None) == (from_school is None):
            raise ConfigError("give exactly one of --students FILE or --from-school ID")
        if grade is not None and (from_school is None or grade not in GRADES):
            raise ConfigError(f"--grade ({', '.join(GRADES)}) goes with --from-school")
        to = parse_uuid(to_school, "--to-school")
        source = parse_uuid(from_school, "--from-school") if from_school is not None else None
        if source == to:
            raise ConfigError("--from-school and --to-school are the same school")
        args: dict[str, Any] = {
            "to_school": str(to),
            "as_user": str(parse_uuid(user, "--as-user")) if user is not None else None,
        }
        if student_ids is not None:
            digest = hashlib.sha256(",".join(map(str, student_ids)).encode()).hexdigest()[:16]
            args |= {"students": len(student_ids), "students_sha256": digest}
        else:
            args |= {"from_school": str(source), "grade": grade}
        return args

    def plan(
        self,
        conn: Connection,
        args: dict[str, Any],
        student_ids: list[uuid.UUID] | None = None,
        reason: str | None = None,
    ) -> Plan:
        schools = [args["to_school"]] + ([args["from_school"]] if "from_school" in args else [])
        if unknown := missing_ids(conn, "schools", schools):
            raise ConfigError(f"unknown school(s): {ids_sample(unknown)}; nothing written")
        by = args.get("as_user")
        as_user(conn, uuid.UUID(by) if by else None)
        if student_ids is not None:
            if unknown := missing_ids(conn, "students", student_ids, _ACTIVE):
                raise ConfigError(
                    f"{len(unknown)} of {len(student_ids)} student ids are not active students"
                    f" ({ids_sample(unknown)}); nothing written"
                )
            where, params = "id = any(%(ids)s::uuid[])", {"ids": [str(i) for i in student_ids]}
        else:
            where = '"schoolId" = %(from)s'
            params = {"from": args["from_school"], "grade": args["grade"]}
            if args["grade"] is not None:
                where += " and grade = %(grade)s"
        rows = conn.exec_driver_sql(
            f'select "schoolId", grade, count(*) from students where {where}'
            ' and "isActive" and "deletedAt" is null group by 1, 2 order by 1, 2',
            params,
        ).fetchall()
        to = uuid.UUID(args["to_school"])
        staying = sum(n for s, _, n in rows if s == to)
        moving = [[str(s), g, n] for s, g, n in rows if s != to]
        plan = Plan(
            self.name,
            args,
            {
                "student_ids": [str(i) for i in student_ids] if student_ids else None,
                "reason": reason,
            },
            sum(n for *_, n in moving),
            [Breakdown("by school and grade", ["from school", "grade", "students"], moving)],
            claims=Claims.of(
                {f"student:{i}" for i in student_ids}, {f"school:{s}" for s, *_ in rows}
            )
            if student_ids is not None
            else Claims.of({f"school:{args['from_school']}"}),
        )
        if staying:
            plan.notes.append(f"{staying} students are already at school {args['to_school']}")
        return plan

    def _next_ids(self, conn: Connection, job: Job, limit: int | None) -> list[str]:
        last = job.checkpoint.get("last_id", NIL)
        listed: list[str] | None = job.plan.get("student_ids")
        if listed is not None:
            later = [i for i in listed if i > last]
            return later[:limit] if limit else later
        sql = (
            'select id from students where "schoolId" = %(from)s and "isActive"'
            ' and "deletedAt" is null and id > %(last)s'
        )
        if job.args["grade"] is not None:
            sql += " and grade = %(grade)s"
        params = {"from": job.args["from_school"], "grade": job.args["grade"], "last": last}
        return [
            str(r[0])
            for r in conn.exec_driver_sql(sql + " order by id limit %(n)s", {**params, "n": limit})
        ]

    def batch(self, conn: Connection, job: Job, limit: int | None) -> BatchResult:
        ids = self._next_ids(conn, job, limit)
        if not ids:
            return BatchResult(0, {}, {}, done=True)
        moved, placed = conn.exec_driver_sql(
            _MOVE,
            {
                "ids": ids,
                "to": job.args["to_school"],
                "job": job.id,
                "by": job.args.get("as_user"),
                "reason": job.plan.get("reason"),
            },
        ).one()
        return BatchResult(
            moved,
            {"last_id": ids[-1]},
            {"moved": moved, "skipped": len(ids) - moved},
            False,
            placed=placed_students(placed),
        )

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        step = self.batch(conn, job, None)
        return BatchResult(step.rows, step.checkpoint, step.counts, done=True)


def _claims(args: dict[str, Any], listed: list[uuid.UUID] | None, schools: list[str]) -> Claims:
    """A school emptied is owned; listed students are owned, and their schools touched."""
    if listed is None:
        return Claims.of({f"school:{args['from_school']}"})
    return Claims.of({f"student:{i}" for i in listed}, {f"school:{s}" for s in schools})
