"""Generation names: what a cached read depends on, and what a write invalidates.

A whole-table generation makes every write kill every entry that read the table:
one new health record and every cached timeline of the district is gone, and a
year-end job's batch of students every cached page that shows a student. So a
few tables are also scoped by a column or a pair of columns (a student's
records; a day's appointments; one nurse's appointments that day; one student,
one nurse's students, one school's students, the students on one nurse's
calendar), in buckets of those columns' values: 65,536 for one student's rows,
4,096 for the others.

For a read of the rows of `table` where the scope's columns equal given values,
the entry depends on two names: `table!scope` (a write whose rows we could not
place) and `table.scope.<bucket of the values>` (a write that placed its rows
there). A read that is not scoped depends on `table` itself, which every write
bumps.

A write is placed only when it provably touches rows of known values: an INSERT
whose rows give the columns values, or an UPDATE/DELETE whose WHERE pins the
columns to one value each and whose SET leaves them alone (`placing`), or a bulk
job's batch, which returns every scoped column's values (before and after) of
each row it changed. Anything else (raw SQL, INSERT ... SELECT, an UPDATE that
moves rows between values) bumps every scope of the table, so a wrong guess can
only cost hits, never serve a stale entry. Buckets hold ids and days, never PHI,
and bound the number of generation keys in Redis.
"""

from __future__ import annotations

import functools
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

BUCKETS = 4096
# One student's rows: a bucket per ~15 students of a 1 M district, so a year-end batch
# of a thousand students bumps 1.5 % of them, not the quarter 4,096 buckets would.
STUDENT_BUCKETS = 65536
# A write over more buckets of one scope than this bumps the scope's unplaced name
# instead: one INCR in place of thousands, for the few entries that would survive.
MAX_PLACED = 4096
UNPLACED = object()


def _day(value: Any) -> Any:
    """A naive timestamp's day is the day readers ask for (`placing` turns aware ones into
    the session's wall clock)."""
    if isinstance(value, datetime):
        return value.date() if value.tzinfo is None else UNPLACED
    return value if isinstance(value, date) else UNPLACED


def _id(value: Any) -> Any:
    """The platform's keys are UUIDs; anything else cannot be placed."""
    if value is None:  # a row with no nurse: placed, and no `"nurseId" = v` read asks for it
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return UNPLACED


@dataclass(frozen=True)
class Scope:
    table: str
    columns: tuple[tuple[str, Callable[[Any], Any]], ...]  # (column, how a value is reduced)
    buckets: int = BUCKETS
    # A facet reads only some columns of those rows (`watches`): a write known to change
    # none of them leaves it alone, e.g. a timeline needs its student to exist, not their
    # grade. No facet: every column counts.
    facet: str = ""
    watches: frozenset[str] | None = None

    @functools.cached_property
    def _columns(self) -> str:
        return "+".join(col for col, _ in self.columns) + (f"@{self.facet}" if self.facet else "")

    @functools.cached_property
    def name(self) -> str:
        return f"{self.table}.{self._columns}"

    @functools.cached_property
    def unplaced(self) -> str:
        return f"{self.table}!{self._columns}"

    def bucket(self, row: Mapping[str, Any]) -> str | None:
        parts = []
        for col, reduce in self.columns:
            if col not in row:
                return None
            value = reduce(row[col])
            if value is UNPLACED:
                return None
            parts.append(value.isoformat() if isinstance(value, date) else str(value))
        return f"{self.name}.{zlib.crc32(chr(31).join(parts).encode()) % self.buckets}"


SCOPED: dict[str, tuple[Scope, ...]] = {
    "students": (
        Scope("students", (("id", _id),), STUDENT_BUCKETS),
        # That a student is live, for reads that show their records, not them.
        Scope(
            "students",
            (("id", _id),),
            STUDENT_BUCKETS,
            "live",
            frozenset({"id", "deletedAt", "isActive"}),
        ),
        Scope("students", (("nurseId", _id),)),
        Scope("students", (("schoolId", _id),)),
        # A student as one nurse's calendar shows them: by their appointments' nurses,
        # which only a bulk job's batch supplies (`jobs.base.on_calendars`).
        Scope("students", (("appointmentNurseId", _id),)),
    ),
    "health_records": (Scope("health_records", (("studentId", _id),), STUDENT_BUCKETS),),
    "appointments": (
        Scope("appointments", (("scheduledAt", _day),)),
        Scope("appointments", (("scheduledAt", _day), ("nurseId", _id))),
    ),
}
_BY_COLUMNS = {
    (scope.table, frozenset(col for col, _ in scope.columns), scope.facet): scope
    for scopes in SCOPED.values()
    for scope in scopes
}


def scoped_columns(table: str) -> set[str]:
    return {col for scope in SCOPED.get(table, ()) for col, _ in scope.columns}


@functools.lru_cache(maxsize=8192)  # a read asks per call; the same rows come back often
def rows(table: str, facet: str = "", **values: Any) -> tuple[str, ...]:
    """What a read of `table` restricted to `column = value` for each given pair depends on
    (of those rows, only the `facet`'s columns when one is named)."""
    scope = _BY_COLUMNS.get((table, frozenset(values), facet))
    if scope is None:
        raise ValueError(f"{table} has no cache scope on {', '.join(sorted(values))}")
    name = scope.bucket(values)
    if name is None:  # a value no write could be placed at: depend on the whole table
        return (table,)
    return (scope.unplaced, name)


def written(
    table: str,
    placed: Iterable[Mapping[str, Any]] | None = None,
    changed: Collection[str] | None = None,
) -> set[str]:
    """What a committed write to `table` bumps. `placed` holds, for each row (or row set)
    written, the scoped columns' values it is known to hold; None places nothing.
    `changed` is every column the write may have changed, when that is known."""
    names = {table}
    placed = list(placed or ())
    for scope in SCOPED.get(table, ()):
        if changed is not None and scope.watches is not None and not scope.watches & set(changed):
            continue
        buckets = {scope.bucket(row) for row in placed} or {None}
        if None in buckets or len(buckets) > MAX_PLACED:
            names.add(scope.unplaced)
        else:
            names.update(b for b in buckets if b)
    return names
