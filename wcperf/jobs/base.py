"""What every bulk job provides: a plan (exact counts, no writes) and an apply step.

A job kind validates the user's arguments and counts exactly what it would change
(`plan`), then changes it either in keyset batches (`batch`: the next rows after
the checkpoint, one transaction each, run by the runner) or all at once
(`apply_all`, for `--atomic`). Arguments are keys and numbers only: they go into
the job row and the audit row as they are.

Every job records, in wcperf's schema, what each row was before it changed it
(a ledger or a history table), so `revert` can put exactly that back; and every
write sets `"updatedAt"` as the platform's ORM would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from wcperf.errors import ConfigError
from wcperf.jobs.claims import Claims
from wcperf.jobs.store import Job


@dataclass
class Breakdown:
    """One table of a plan: e.g. students per school and grade."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Plan:
    kind: str
    args: dict[str, Any]  # the identity of the job: the same command again resumes it
    fixed: dict[str, Any]  # decided now, kept for a resume (dates, nurse quotas, id lists)
    total: int
    breakdowns: list[Breakdown] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    claims: Claims = field(default_factory=Claims)  # what no other unfinished job may own

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "args": self.args,
            "total": self.total,
            "breakdowns": {
                b.title: [dict(zip(b.columns, r, strict=True)) for r in b.rows]
                for b in self.breakdowns
            },
            "notes": self.notes,
        }


@dataclass
class BatchResult:
    rows: int  # rows changed
    checkpoint: dict[str, Any]  # where the next batch starts (merged into the job's)
    counts: dict[str, int]  # added to the job's counts
    done: bool
    scanned: int | None = None  # what the batch size measures, when not rows changed
    # Per table written, the scoped columns' values of each row changed (before and
    # after): what the cache bumps (`scopes.written`). A table absent is bumped whole.
    placed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class JobKind(Protocol):
    name: str
    tables: tuple[str, ...]  # what it writes: lock-wait and vacuum signals, cache bumps
    changes: frozenset[str]  # every column it may change: a cache facet of others is spared

    def plan(self, conn: Connection, args: dict[str, Any]) -> Plan: ...

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult: ...

    def apply_all(self, conn: Connection, job: Job) -> BatchResult: ...


# What a batch returns of each student it changed, for the cache: `array_agg` of this
# over its changed rows, `t` as they are now, `o` (when given) as they were.
PLACED = 'array_agg(array[{t}.id, {t}."nurseId", {t}."schoolId"])'
MOVED = 'array_agg(array[{t}.id, {t}."nurseId", {t}."schoolId", {o}."nurseId", {o}."schoolId"])'


def placed_students(rows: list[list[Any]] | None) -> dict[str, list[dict[str, Any]]]:
    """The cache's view of a batch (`PLACED` or `MOVED`): the students it changed, by id,
    nurse and school, where they were and where they are."""
    out: list[dict[str, Any]] = []
    for r in rows or ():
        out.append({"id": r[0], "nurseId": r[1], "schoolId": r[2]})
        if len(r) == 5 and (r[3], r[4]) != (r[1], r[2]):
            out.append({"id": r[0], "nurseId": r[3], "schoolId": r[4]})
    return {"students": out}


def on_calendars(conn: Connection, placed: dict[str, list[dict[str, Any]]]) -> None:
    """Each changed student's rows, once per nurse whose calendar may show them (the
    nurses of their appointments), so a nurse's calendar outlives a batch that changed
    none of hers. Read after the batch's commit: an appointment booked while the batch
    ran is seen, so no calendar built in between keeps the student as they were."""
    rows = placed.get("students")
    if not rows:
        return
    nurses: dict[Any, set[Any]] = {}
    for student, nurse in conn.exec_driver_sql(
        'select distinct "studentId", "nurseId" from appointments'
        ' where "studentId" = any(%(ids)s::uuid[])',
        {"ids": list({r["id"] for r in rows})},
    ):
        nurses.setdefault(student, set()).add(nurse)
    placed["students"] = [
        r | {"appointmentNurseId": n} for r in rows for n in nurses.get(r["id"]) or {None}
    ]


def one(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    row = conn.exec_driver_sql(sql, params or {}).fetchone()
    return None if row is None else row[0]


def parse_uuid(raw: str | uuid.UUID, what: str) -> uuid.UUID:
    """The platform's keys are UUIDs; a number or a typo is refused before anything runs."""
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(raw.strip())
    except (AttributeError, ValueError):
        raise ConfigError(f"{what} must be a UUID (the platform's keys are UUIDs)") from None


# Which rows count as existing: a soft-deleted row is gone as far as the platform knows.
_LIVE = {
    "schools": 't."deletedAt" is null',
    "users": 't."deletedAt" is null',
    "students": 't."deletedAt" is null',
}


def missing_ids(
    conn: Connection, table: str, ids: list[uuid.UUID], where: str | None = None
) -> list[uuid.UUID]:
    """Which of `ids` have no live row in `table` (and `where`): one query, however many."""
    condition = where or _LIVE[table]  # identifiers and conditions come from our code only
    rows = conn.exec_driver_sql(
        f"select i from unnest(%(ids)s::uuid[]) as i"
        f" where not exists (select 1 from {table} t where t.id = i and {condition}) order by i",
        {"ids": ids},
    ).fetchall()
    return [r[0] for r in rows]


def ids_sample(ids: list[uuid.UUID], n: int = 3) -> str:
    shown = ", ".join(str(i) for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def as_user(conn: Connection, user: uuid.UUID | None) -> uuid.UUID | None:
    """`--as-user`: the UUID a bulk write puts in `"updatedBy"` (an existing, live user)."""
    if user is not None and missing_ids(conn, "users", [user]):
        raise ConfigError(f"--as-user {user} is not an existing user; nothing written")
    return user


def add_counts(into: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    out = dict(into)
    for k, v in more.items():
        out[k] = out.get(k, 0) + v
    return out
