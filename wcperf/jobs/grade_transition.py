"""Year-end grade transition: `Pre-K -> K -> 1 ... 12 -> Graduate`, once per school year.

Only active, not soft-deleted students whose grade is on that ladder move, and only
those who have no promotion for the year in wcperf's ledger (`wcperf.promotions`,
never a column on `students`: the platform's `sync({alter: true})` would drop it).
Each batch writes the students and their ledger rows in one statement, so a re-run,
a resume after a kill, or a second job over overlapping schools changes nobody
twice. Students created after the job was planned are next year's business.
The ledger keeps what each row was, so `bulk revert` can put it back.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

from wcperf.errors import ConfigError
from wcperf.jobs.base import (
    PLACED,
    BatchResult,
    Breakdown,
    Plan,
    as_user,
    ids_sample,
    missing_ids,
    one,
    parse_uuid,
    placed_students,
)
from wcperf.jobs.claims import Claims
from wcperf.jobs.store import Job
from wcperf.jobs.undo import NIL, Undo
from wcperf.platform import GRADES, NEXT_GRADE

LADDER = {"from": list(NEXT_GRADE), "to": list(NEXT_GRADE.values())}
_NO_SCHOOL, _END = "no school", "end"  # where a batch stands past the last school
GRADUATE = GRADES[-1]


def _eligible(schools: list[str], keyset: bool = False) -> str:
    """Who moves. With `keyset` (one school's next students), the ledger is probed once per
    student: `offset 0` keeps the NOT EXISTS a per-row subplan. As a join, the planner
    walks the ledger's index from its first key to the school's last (its ids span every
    key) on every batch, and the job slows quadratically as the ledger fills."""
    where = (
        's."isActive" and s."deletedAt" is null and s.grade = any(%(from)s)'
        " and coalesce(s.\"createdAt\", '-infinity') <= %(cutoff)s"
        " and not exists (select 1 from wcperf.promotions p where p.student_id = s.id"
        " and p.school_year = %(year)s and p.reverted_by is null"
        + (" offset 0)" if keyset else ")")
    )
    if schools:
        where += ' and s."schoolId" = any(%(schools)s::uuid[])'
    return where


# One statement per school a batch reaches: lock its next students, move them up,
# write their ledger.
_BATCH = """
with batch as (
  select s.id, s.grade, s."updatedAt", s."updatedBy" from students s
   where {school} and s.id > %(last)s and {eligible}
   order by s.id limit %(n)s for update
), ladder as (
  select * from unnest(%(from)s::text[], %(to)s::text[]) as l(grade, next)
), moved as (
  update students s set grade = l.next, "updatedAt" = now(), "updatedBy" = %(by)s
    from batch b join ladder l on l.grade = b.grade
   where s.id = b.id
  returning s.id, s."nurseId", s."schoolId", b.grade as from_grade, l.next as to_grade,
            b."updatedAt" as prev_at, b."updatedBy" as prev_by
), ledger as (
  insert into wcperf.promotions (student_id, school_year, job_id, from_grade, to_grade,
                                 applied_at, prev_updated_at, prev_updated_by)
  select id, %(year)s, %(job)s, from_grade, to_grade, now(), prev_at, prev_by from moved
)
select (select id from batch order by id desc limit 1),
       count(*), count(*) filter (where to_grade = %(graduate)s), {placed} from moved
""".replace("{placed}", PLACED.format(t="moved"))
_ALL = """
with ladder as (
  select * from unnest(%(from)s::text[], %(to)s::text[]) as l(grade, next)
), moved as (
  update students t set grade = b.next, "updatedAt" = now(), "updatedBy" = %(by)s
    from (select s.id, s.grade, l.next, s."updatedAt" as prev_at, s."updatedBy" as prev_by
            from students s join ladder l on l.grade = s.grade where {eligible}) b
   where t.id = b.id
  returning t.id, b.grade as from_grade, b.next as to_grade, b.prev_at, b.prev_by
), ledger as (
  insert into wcperf.promotions (student_id, school_year, job_id, from_grade, to_grade,
                                 applied_at, prev_updated_at, prev_updated_by)
  select id, %(year)s, %(job)s, from_grade, to_grade, now(), prev_at, prev_by from moved
)
select count(*), count(*) filter (where to_grade = %(graduate)s) from moved
"""


class GradeTransition:
    name = "grade-transition"
    tables: tuple[str, ...] = ("students",)
    changes = frozenset({"grade", "updatedAt", "updatedBy"})
    undo = Undo("wcperf.promotions", "grade = b.from_grade", "s.grade = b.to_grade")

    @staticmethod
    def args(
        school_year: int,
        schools: list[str] | list[uuid.UUID] | None = None,
        user: str | uuid.UUID | None = None,
        confirmed: bool = False,
    ) -> dict[str, Any]:
        """A year outside the last ten is refused; one before last year (a late catch-up,
        or a typo of this one) needs `confirmed` (`--yes`)."""
        this_year = date.today().year
        if not this_year - 10 <= school_year <= this_year + 1:
            raise ConfigError(
                f"--school-year {school_year} is not a school year near now "
                f"({this_year - 10}-{this_year + 1}); nothing planned"
            )
        if school_year < this_year - 1 and not confirmed:
            raise ConfigError(
                f"--school-year {school_year} ended {this_year - school_year} years ago: "
                "pass --yes if that is the year you mean; nothing planned"
            )
        ids = sorted({str(parse_uuid(s, "--school")) for s in schools or []})
        by = str(parse_uuid(user, "--as-user")) if user is not None else None
        return {"school_year": school_year, "schools": ids, "as_user": by}

    def _params(self, args: dict[str, Any], cutoff: str) -> dict[str, Any]:
        return {
            **LADDER,
            "year": args["school_year"],
            "schools": args["schools"],
            "by": args.get("as_user"),
            "cutoff": cutoff,
            "graduate": GRADUATE,
        }

    def plan(self, conn: Connection, args: dict[str, Any]) -> Plan:
        schools = args["schools"]
        if schools and (unknown := missing_ids(conn, "schools", schools)):
            raise ConfigError(f"unknown school(s): {ids_sample(unknown)}; nothing written")
        by = args.get("as_user")
        as_user(conn, uuid.UUID(by) if by else None)
        cutoff = datetime.now(UTC).isoformat()
        params = self._params(args, cutoff)
        rows = conn.exec_driver_sql(
            f'select s."schoolId", s.grade, count(*) from students s where {_eligible(schools)}'
            " group by 1, 2 order by 1, 2",
            params,
        ).fetchall()
        by_grade: dict[str, int] = {}
        by_school: dict[str, list[int]] = {}
        for school, grade, n in rows:
            by_grade[grade] = by_grade.get(grade, 0) + n
            counts = by_school.setdefault(str(school), [0, 0])
            counts[1 if NEXT_GRADE[grade] == GRADUATE else 0] += n
        off_ladder = conn.exec_driver_sql(
            'select count(*) from students s where s."isActive" and s."deletedAt" is null'
            " and not (s.grade = any(%(all)s))"
            + (' and s."schoolId" = any(%(schools)s::uuid[])' if schools else ""),
            {"all": list(GRADES), "schools": schools},
        ).scalar_one()
        total = sum(by_grade.values())
        plan = Plan(
            self.name,
            args,
            {"cutoff": cutoff},
            total,
            [
                Breakdown(
                    "by grade",
                    ["grade", "students", "becomes"],
                    [[g, by_grade[g], NEXT_GRADE[g]] for g in GRADES if g in by_grade],
                ),
                Breakdown(
                    "by school",
                    ["school", "promoted", "graduated"],
                    [[s, p, g] for s, (p, g) in sorted(by_school.items())],
                ),
            ],
            claims=Claims.of({f"school:{s}" for s in schools}),  # none named: the district
        )
        if off_ladder:
            plan.notes.append(
                f"{off_ladder} active students have a grade outside Pre-K..12 and are left alone"
            )
        if total == 0:
            plan.notes.append(
                f"nothing to do: every eligible student has had the {args['school_year']}"
                " transition"
            )
        return plan

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult:
        """The next `limit` eligible students after the checkpoint, school by school and
        by key within each: a batch changes the students of one school or a few, so the
        cache loses those schools' and nurses' pages, not a page of every nurse's.

        A checkpoint without a school (none yet, or a job begun in key order by an
        earlier wcperf) starts from the first school; the ledger skips whoever moved.
        """
        school = job.checkpoint.get("school") or self._next_school(conn, job.args, None)
        last = job.checkpoint.get("last_id", NIL) if job.checkpoint.get("school") else NIL
        if school == _END:
            return BatchResult(0, {}, {}, done=True)
        params = {**self._params(job.args, job.plan["cutoff"]), "job": job.id}
        eligible = _eligible(job.args["schools"], keyset=True)
        changed = graduated = 0
        placed: list[list[Any]] = []
        while changed < limit and school != _END:
            where = (
                's."schoolId" is null'
                if school == _NO_SCHOOL
                else 's."schoolId" = %(school)s::uuid'
            )
            top, moved, up, rows = conn.exec_driver_sql(
                _BATCH.format(school=where, eligible=eligible),
                {**params, "school": school, "last": last, "n": limit - changed},
            ).one()
            if top is None:  # this school is done: the next one, from its first key
                school, last = self._next_school(conn, job.args, school), NIL
                continue
            changed, graduated, last = changed + moved, graduated + up, str(top)
            placed += rows or []
        return BatchResult(
            changed,
            {"school": school, "last_id": last},
            {"promoted": changed - graduated, "graduated": graduated},
            done=False,
            placed=placed_students(placed),
        )

    @staticmethod
    def _next_school(conn: Connection, args: dict[str, Any], after: str | None) -> str:
        """The school after `after` in key order (the named ones, or every school that has
        students), then the students of no school (a district-wide run), then the end."""
        if after == _NO_SCHOOL:
            return _END
        if args["schools"]:
            later = [s for s in args["schools"] if after is None or s > after]
            return later[0] if later else _END
        found = one(  # an index probe (there is no min(uuid)); ordered by the uuid itself
            conn,
            'select s."schoolId" from students s where s."schoolId" is not null'
            + (' and s."schoolId" > %(after)s::uuid' if after else "")
            + ' order by s."schoolId" limit 1',
            {"after": after},
        )
        return str(found) if found else _NO_SCHOOL

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        """One statement: every eligible student and its ledger row."""
        params = {**self._params(job.args, job.plan["cutoff"]), "job": job.id}
        changed, graduated = conn.exec_driver_sql(
            _ALL.format(eligible=_eligible(job.args["schools"])), params
        ).one()
        return BatchResult(
            changed, {}, {"promoted": changed - graduated, "graduated": graduated}, done=True
        )
