"""Year-end grade transition: active students move up a grade, grade 12 graduates.

Exactly once per student and school year: each student changed gets
`last_promoted_year`, and only active students below the year qualify. A re-run,
a resume after a kill, or a second job over overlapping schools therefore
changes nobody twice; the checkpoint only saves re-scanning.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection

from wcperf.errors import ConfigError
from wcperf.jobs.base import BatchResult, Breakdown, Plan, ids_sample, missing_ids, one
from wcperf.jobs.store import Job

SENIOR = 12
_SET = f"""
    grade = case when s.grade >= {SENIOR} then s.grade else s.grade + 1 end,
    status = case when s.grade >= {SENIOR} then 'graduated' else s.status end,
    graduation_date = case when s.grade >= {SENIOR} then %(graduation)s::date
                           else s.graduation_date end,
    last_promoted_year = %(year)s,
    updated_at = now()
"""


def _eligible(alias: str, schools: list[int]) -> str:
    where = f"{alias}.status = 'active' and coalesce({alias}.last_promoted_year, 0) < %(year)s"
    if schools:
        where += f" and {alias}.school_id = any(%(schools)s)"
    return where


class GradeTransition:
    name = "grade-transition"
    tables = ("students",)

    @staticmethod
    def args(school_year: int, schools: list[int] | None = None) -> dict[str, Any]:
        if not 1900 < school_year < 3000:
            raise ConfigError(f"--school-year must be a year like 2026, not {school_year}")
        return {"school_year": school_year, "schools": sorted(set(schools or []))}

    def plan(
        self, conn: Connection, args: dict[str, Any], graduation_date: date | None = None
    ) -> Plan:
        schools = args["schools"]
        if schools and (unknown := missing_ids(conn, "schools", schools)):
            raise ConfigError(f"unknown school id(s): {ids_sample(unknown)}; nothing written")
        rows = conn.exec_driver_sql(
            f"select school_id, grade, count(*) from students s where {_eligible('s', schools)}"
            " group by 1, 2 order by 1, 2",
            {"year": args["school_year"], "schools": schools},
        ).fetchall()
        by_grade: dict[int, int] = {}
        by_school: dict[int, list[int]] = {}
        for school, grade, n in rows:
            by_grade[grade] = by_grade.get(grade, 0) + n
            counts = by_school.setdefault(school, [0, 0])
            counts[1 if grade >= SENIOR else 0] += n
        total = sum(by_grade.values())
        plan = Plan(
            self.name,
            args,
            {
                "graduation_date": (graduation_date or date.today()).isoformat(),
                # Students enrolled after the job starts are next year's business.
                "max_id": int(one(conn, "select coalesce(max(id), 0) from students")),
            },
            total,
            [
                Breakdown(
                    "by grade",
                    ["grade", "students", "becomes"],
                    [
                        [g, n, "graduated" if g >= SENIOR else f"grade {g + 1}"]
                        for g, n in sorted(by_grade.items())
                    ],
                ),
                Breakdown(
                    "by school",
                    ["school", "promoted", "graduated"],
                    [[s, p, g] for s, (p, g) in sorted(by_school.items())],
                ),
            ],
        )
        if total == 0:
            plan.notes.append(
                f"nothing to do: every eligible student has had the {args['school_year']}"
                " transition"
            )
        return plan

    def _params(self, job: Job) -> dict[str, Any]:
        return {
            "year": job.args["school_year"],
            "schools": job.args["schools"],
            "graduation": job.plan["graduation_date"],
        }

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult:
        """The next `limit` ids after the checkpoint: one range scan, one statement.

        Batches are spans of ids, not counts of rows: a span needs no separate scan
        to find its rows (a LIMIT would, and then a join back to update them).
        """
        schools = job.args["schools"]
        last = int(job.checkpoint.get("last_id", 0))
        end = int(job.plan["max_id"])
        if last >= end:
            return BatchResult(0, {}, {}, done=True)
        upper = min(last + limit, end)
        changed, graduated = conn.exec_driver_sql(
            f"""
            with moved as (
              update students s set {_SET}
               where s.id > %(last)s and s.id <= %(upper)s and {_eligible("s", schools)}
              returning s.status
            )
            select count(*), count(*) filter (where status = 'graduated') from moved
            """,
            {**self._params(job), "last": last, "upper": upper},
        ).one()
        return BatchResult(
            changed,
            {"last_id": upper},
            {"promoted": changed - graduated, "graduated": graduated},
            done=upper >= end,  # the last span finishes the job in its own transaction
            scanned=upper - last,
        )

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        """Two plain UPDATEs, graduates first: their row counts are the job's counts.

        (One UPDATE with RETURNING would have to hold every changed row to count
        the graduates; the second scan costs less.)
        """
        schools = job.args["schools"]
        params = {**self._params(job), "end": job.plan["max_id"]}
        counts = {}
        for name, grades in (("graduated", f">= {SENIOR}"), ("promoted", f"< {SENIOR}")):
            counts[name] = conn.exec_driver_sql(
                f"update students s set {_SET} where s.id <= %(end)s"
                f" and s.grade {grades} and {_eligible('s', schools)}",
                params,
            ).rowcount
        return BatchResult(
            counts["graduated"] + counts["promoted"],
            {"last_id": int(job.plan["max_id"])},
            {"promoted": counts["promoted"], "graduated": counts["graduated"]},
            done=True,
        )
