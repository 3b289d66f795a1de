"""Nurse reassignment: a nurse's active students move to one nurse, or are balanced.

Balancing gives each student, in turn, to the target nurse with the fewest
active students (ties to the lower id), never above a nurse's maximum workload
(`users.max_workload`, or `--max-workload` for every target). The quotas are
fixed when the job starts and kept in the job row, so a resumed job hands out
exactly what a clean run would. Too few free places: refused before anything is
written, saying by how many.
"""

from __future__ import annotations

import heapq
from typing import Any

from sqlalchemy import Connection

from wcperf.errors import ConfigError, RefusedError
from wcperf.jobs.base import BatchResult, Breakdown, Plan, one
from wcperf.jobs.store import Job

_NURSE = "select id, school_id, role, is_active, max_workload from users where id = %(id)s"


def balance(
    moving: int, loads: dict[int, int], caps: dict[int, int | None]
) -> list[tuple[int, int]]:
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
    tables = ("students",)

    @staticmethod
    def args(
        from_nurse: int, to_nurse: int | None, balance_: bool, max_workload: int | None
    ) -> dict[str, Any]:
        if (to_nurse is None) == (not balance_):
            raise ConfigError("give exactly one of --to NURSE or --balance")
        if to_nurse == from_nurse:
            raise ConfigError("--to names the nurse the students are leaving")
        if max_workload is not None and max_workload < 1:
            raise ConfigError("--max-workload must be at least 1")
        return {
            "from_nurse": from_nurse,
            "to_nurse": to_nurse,
            "balance": balance_,
            "max_workload": max_workload,
        }

    def _nurse(self, conn: Connection, nurse_id: int, what: str) -> Any:
        row = conn.exec_driver_sql(_NURSE, {"id": nurse_id}).one_or_none()
        if row is None or row.role != "nurse":
            raise ConfigError(f"{what} {nurse_id} is not a nurse")
        return row

    def plan(self, conn: Connection, args: dict[str, Any]) -> Plan:
        source = self._nurse(conn, args["from_nurse"], "--from")
        if args["to_nurse"] is not None:
            target = self._nurse(conn, args["to_nurse"], "--to")
            if not target.is_active:
                raise ConfigError(f"--to nurse {target.id} is not active")
            targets = [target]
        else:
            targets = conn.exec_driver_sql(
                "select id, school_id, role, is_active, max_workload from users"
                " where role = 'nurse' and is_active and school_id = %(school)s and id <> %(from)s"
                " order by id",
                {"school": source.school_id, "from": source.id},
            ).fetchall()
            if not targets:
                raise ConfigError(
                    f"no other active nurse at school {source.school_id} to balance onto"
                )
        moving = int(
            one(
                conn,
                "select count(*) from students where nurse_id = %(id)s and status = 'active'",
                {"id": source.id},
            )
        )
        loads = dict.fromkeys((t.id for t in targets), 0) | {
            int(n): int(c)
            for n, c in conn.exec_driver_sql(
                "select nurse_id, count(*) from students"
                " where nurse_id = any(%(ids)s) and status = 'active' group by 1",
                {"ids": [t.id for t in targets]},
            ).fetchall()
        }
        cap_all = args["max_workload"]
        caps = {t.id: cap_all if cap_all is not None else t.max_workload for t in targets}
        room = [None if caps[n] is None else max(caps[n] - loads[n], 0) for n in loads]
        if None not in room and moving > sum(r or 0 for r in room):
            over = moving - sum(r or 0 for r in room)
            who = (
                f"nurse {targets[0].id} has room for {room[0]}"
                if len(targets) == 1
                else f"the {len(targets)} other nurses of school {source.school_id} have room"
                f" for {sum(r or 0 for r in room)}"
            )
            raise RefusedError(
                f"refused: {moving} students to move but {who}: {over} over the maximum"
                " workload; nothing written"
            )
        quotas = balance(moving, loads, caps)
        given = dict(quotas)
        return Plan(
            self.name,
            args,
            {"quotas": [[n, q] for n, q in quotas]},
            moving,
            [
                Breakdown(
                    "by nurse",
                    ["nurse", "students now", "receives", "after", "max workload"],
                    [
                        [n, loads[n], given.get(n, 0), loads[n] + given.get(n, 0), caps[n]]
                        for n in loads
                    ],
                )
            ],
        )

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult:
        assigned: dict[str, int] = dict(job.checkpoint.get("assigned", {}))
        slots: list[int] = []
        for nurse, quota in job.plan["quotas"]:
            slots += [nurse] * (quota - assigned.get(str(nurse), 0))
            if len(slots) >= limit:
                break
        slots = slots[:limit]
        last = int(job.checkpoint.get("last_id", 0))
        ids = [
            int(r[0])
            for r in conn.exec_driver_sql(
                "select id from students where nurse_id = %(from)s and status = 'active'"
                " and id > %(last)s order by id limit %(n)s for update",
                {"from": job.args["from_nurse"], "last": last, "n": len(slots)},
            ).fetchall()
        ]
        if not ids:
            return BatchResult(0, {}, {}, done=True)
        nurses = slots[: len(ids)]
        conn.exec_driver_sql(
            "update students s set nurse_id = m.nurse, updated_at = now()"
            " from unnest(%(ids)s::bigint[], %(nurses)s::bigint[]) as m(id, nurse)"
            " where s.id = m.id",
            {"ids": ids, "nurses": nurses},
        )
        for n in nurses:
            assigned[str(n)] = assigned.get(str(n), 0) + 1
        return BatchResult(
            len(ids), {"last_id": ids[-1], "assigned": assigned}, {"moved": len(ids)}, done=False
        )

    def apply_all(self, conn: Connection, job: Job) -> BatchResult:
        """Every remaining quota in one batch: one SELECT and one UPDATE."""
        step = self.batch(conn, job, sum(quota for _, quota in job.plan["quotas"]))
        return BatchResult(step.rows, step.checkpoint, {"moved": step.rows}, done=True)
