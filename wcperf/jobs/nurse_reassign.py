"""Nurse reassignment: a nurse's students move to one nurse, or are balanced.

Nurses are live users with `role = 'NURSE'`; the students that move are the
source nurse's active, not soft-deleted ones (the source may have left: inactive
or deleted). Balancing gives each student, in turn, to the target nurse with the
fewest active students (ties to the lower key), never above the workload limit.
The platform keeps no such limit, so it is `--max-workload` or the setting
(`WCPERF_MAX_WORKLOAD`). The quotas are fixed when the job starts and kept in the
job row, so a resumed job hands out exactly what a clean run would. Too few free
places: refused before anything is written, saying by how many. Every move is
recorded with what it replaced (`wcperf.student_moves`), for `bulk revert`.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from wcperf.errors import ConfigError, RefusedError
from wcperf.jobs.base import (
    MOVED,
    BatchResult,
    Breakdown,
    Plan,
    as_user,
    one,
    parse_uuid,
    placed_students,
)
from wcperf.jobs.claims import Claims
from wcperf.jobs.store import Job
from wcperf.jobs.undo import NIL, Undo
from wcperf.settings import BulkSettings

_BULK = BulkSettings()  # the settings tree's defaults

_NURSE = (
    'select id, "schoolId", role, "isActive", "deletedAt" is null as live from users'
    " where id = %(id)s"
)
_ACTIVE = 's."isActive" and s."deletedAt" is null'

_MOVE = """
with old as (  -- locked by the batch's SELECT ... FOR UPDATE already
  select id, "nurseId", "schoolId", "updatedAt", "updatedBy" from students
   where id = any(%(ids)s::uuid[])
), moved as (
  update students s set "nurseId" = m.nurse, "updatedAt" = now(), "updatedBy" = %(by)s
    from old o join unnest(%(ids)s::uuid[], %(nurses)s::uuid[]) as m(id, nurse) on m.id = o.id
   where s.id = o.id
  returning s.id, m.nurse, s."nurseId", s."schoolId"
), history as (
  insert into wcperf.student_moves (job_id, student_id, from_nurse_id, to_nurse_id,
                                    applied_at, prev_updated_at, prev_updated_by)
  select %(job)s, o.id, o."nurseId", m.nurse, now(), o."updatedAt", o."updatedBy"
    from old o join moved m on m.id = o.id
  on conflict (job_id, student_id) do nothing
)
select count(*), {moved} from moved m join old o on o.id = m.id
""".replace("{moved}", MOVED.format(t="m", o="o"))


def balance(
    moving: int, loads: dict[str, int], caps: dict[str, int | None]
) -> list[tuple[str, int]]:
    """(nurse, students given) for each target, by least current load first."""
    heap = [(load, nurse) for nurse, load in loads.items()]
    heapq.heapify(heap)
    given = dict.fromkeys(loads, 0)
    for _ in range(moving):
        while heap:
            load, nurse = heapq.heappop(heap)
            cap = caps[nurse]
            if cap is None or load < cap:
                break
        else:  # the caller checked capacity first
            raise RefusedError("no nurse has room left")
        given[nurse] += 1
        heapq.heappush(heap, (load + 1, nurse))
    return [(n, g) for n, g in sorted(given.items()) if g]


class NurseReassign:
    name = "nurse-reassign"
    tables: tuple[str, ...] = ("students",)
    changes = frozenset({"nurseId", "updatedAt", "updatedBy"})
    undo = Undo(
        "wcperf.student_moves",
        '"nurseId" = b.from_nurse_id',
        's."nurseId" is not distinct from b.to_nurse_id',
    )

    @staticmethod
    def args(
        from_nurse: str | uuid.UUID,
        to_nurse: str | uuid.UUID | None,
        balance_: bool,
        max_workload: int | None,
        user: str | uuid.UUID | None = None,
    ) -> dict[str, Any]:
        if (to_nurse is None) == (not balance_):
            raise ConfigError("give exactly one of --to NURSE or --balance")
        source = parse_uuid(from_nurse, "--from")
        target = parse_uuid(to_nurse, "--to") if to_nurse is not None else None
        if target == source:
            raise ConfigError("--to names the nurse the students are leaving")
        if max_workload is not None and max_workload < 1:
            raise ConfigError("--max-workload must be at least 1")
        return {
            "from_nurse": str(source),
            "to_nurse": str(target) if target else None,
            "balance": balance_,
            "max_workload": max_workload,
            "as_user": str(parse_uuid(user, "--as-user")) if user is not None else None,
        }

    def _nurse(self, conn: Connection, nurse_id: str, what: str) -> Any:
        row = conn.exec_driver_sql(_NURSE, {"id": nurse_id}).one_or_none()
        if row is None or row.role != "NURSE":
            raise ConfigError(f"{what} {nurse_id} is not a nurse (a user with role NURSE)")
        return row

    def plan(
        self, conn: Connection, args: dict[str, Any], default_max: int = _BULK.max_workload
    ) -> Plan:
        by = args.get("as_user")
        as_user(conn, uuid.UUID(by) if by else None)
        source = self._nurse(conn, args["from_nurse"], "--from")
        if args["to_nurse"] is not None:
            target = self._nurse(conn, args["to_nurse"], "--to")
            if not (target.isActive and target.live):
                raise ConfigError(f"--to nurse {target.id} is not active")
            targets: Sequence[Any] = [target]
        else:
            targets = conn.exec_driver_sql(
                "select id from users where role = 'NURSE' and \"isActive\""
                ' and "deletedAt" is null and "schoolId" = %(school)s and id <> %(from)s'
                " order by id",
                {"school": source.schoolId, "from": source.id},
            ).fetchall()
            if not targets:
                raise ConfigError(
                    f"no other active nurse at school {source.schoolId} to balance onto"
                )
        ids = [str(t.id) for t in targets]
        moving = int(
            one(
                conn,
                f'select count(*) from students s where s."nurseId" = %(id)s and {_ACTIVE}',
                {"id": source.id},
            )
        )
        loads = dict.fromkeys(ids, 0) | {
            str(n): int(c)
            for n, c in conn.exec_driver_sql(
                f'select s."nurseId", count(*) from students s'
                f' where s."nurseId" = any(%(ids)s::uuid[]) and {_ACTIVE} group by 1',
                {"ids": ids},
            ).fetchall()
        }
        cap = args["max_workload"] or default_max
        caps: dict[str, int | None] = dict.fromkeys(ids, cap)
        room = sum(max(cap - loads[n], 0) for n in ids)
        if moving > room:
            who = (
                f"nurse {ids[0]} has room for {room}"
                if len(ids) == 1
                else f"the {len(ids)} other nurses of school {source.schoolId} have room for {room}"
            )
            raise RefusedError(
                f"refused: {moving} students to move but {who} under a workload of {cap}: "
                f"{moving - room} over the maximum workload; nothing written"
            )
        quotas = balance(moving, loads, caps)
        given = dict(quotas)
        return Plan(
            self.name,
            args,
            {"quotas": [[n, q] for n, q in quotas], "max_workload": cap},
            moving,
            [
                Breakdown(
                    "by nurse",
                    ["nurse", "students now", "receives", "after", "max workload"],
                    [[n, loads[n], given.get(n, 0), loads[n] + given.get(n, 0), cap] for n in ids],
                )
            ],
            claims=Claims.of({f"nurse:{source.id}", *(f"nurse:{n}" for n in ids)}),
        )

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult:
        assigned: dict[str, int] = dict(job.checkpoint.get("assigned", {}))
        slots: list[str] = []
        for nurse, quota in job.plan["quotas"]:
            slots += [nurse] * (quota - assigned.get(nurse, 0))
            if len(slots) >= limit:
                break
        slots = slots[:limit]
        last = job.checkpoint.get("last_id", NIL)
        ids = [
            str(r[0])
            for r in conn.exec_driver_sql(
                f'select s.id from students s where s."nurseId" = %(from)s and {_ACTIVE}'
                " and s.id > %(last)s order by s.id limit %(n)s for update",
                {"from": job.args["from_nurse"], "last": last, "n": len(slots)},
            ).fetchall()
        ]
        if not ids:
            return BatchResult(0, {}, {}, done=True)
        nurses = slots[: len(ids)]
        moved, placed = conn.exec_driver_sql(
            _MOVE,
            {"ids": ids, "nurses": nurses, "by": job.args.get("as_user"), "job": job.id},
        ).one()
        for n in nurses:
            assigned[n] = assigned.get(n, 0) + 1
        return BatchResult(
            moved,
            {"last_id": ids[-1], "assigned": assigned},
            {"moved": moved},
            done=False,
            placed=placed_students(placed),
        )

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        """Every remaining quota in one batch: one SELECT and one UPDATE."""
        step = self.batch(conn, job, max(1, sum(quota for _, quota in job.plan["quotas"])))
        return BatchResult(step.rows, step.checkpoint, {"moved": step.rows}, done=True)
