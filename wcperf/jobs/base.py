"""What every bulk job provides: a plan (exact counts, no writes) and an apply step.

A job kind validates the user's arguments and counts exactly what it would change
(`plan`), then changes it either in keyset batches (`batch`: the next rows after
the checkpoint, one transaction each, run by the runner) or all at once
(`apply_all`, for `--atomic`). Arguments are ids and numbers only: they go into
the job row and the audit row as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

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


class JobKind(Protocol):
    name: str
    tables: tuple[str, ...]  # what it writes: lock-wait and vacuum signals, cache bumps

    def plan(self, conn: Connection, args: dict[str, Any]) -> Plan: ...

    def batch(self, conn: Connection, job: Job, limit: int) -> BatchResult: ...

    def apply_all(self, conn: Connection, job: Job) -> BatchResult: ...


def one(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    row = conn.exec_driver_sql(sql, params or {}).fetchone()
    return None if row is None else row[0]


def missing_ids(conn: Connection, table: str, ids: list[int]) -> list[int]:
    """Which of `ids` have no row in `table`: one query, however many ids."""
    assert table in ("schools", "users", "students")  # identifiers come from our code only
    rows = conn.exec_driver_sql(
        f"select i from unnest(%(ids)s::bigint[]) as i"
        f" where not exists (select 1 from {table} t where t.id = i) order by i",
        {"ids": ids},
    ).fetchall()
    return [int(r[0]) for r in rows]


def ids_sample(ids: list[int], n: int = 5) -> str:
    shown = ", ".join(str(i) for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def add_counts(into: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    out = dict(into)
    for k, v in more.items():
        out[k] = out.get(k, 0) + v
    return out
