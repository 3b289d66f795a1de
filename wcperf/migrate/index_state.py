"""What the live database holds for each declared index: present (valid and
equivalent, under its name or another), missing, an INVALID leftover, or a valid index
of that name with another definition; and which of them wcperf built (its records)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql

from wcperf.platform import WCPERF_SCHEMA
from wcperf.platform.indexes import IndexSpec

BUILT_TABLE = sql.SQL("{}.built_indexes").format(sql.Identifier(WCPERF_SCHEMA))


class IndexStatus(StrEnum):
    """What the live database holds for one declared index (shown as these words)."""

    PRESENT = "present"  # valid and equivalent, under its name or another
    INVALID = "INVALID"  # what an interrupted concurrent build leaves
    MISSING = "missing"
    DIFFERS = "differs"  # valid, but not the definition declared


PRESENT, INVALID, MISSING, DIFFERS = IndexStatus


@dataclass(frozen=True)
class IndexState:
    name: str
    state: IndexStatus
    table: str | None = None
    definition: str = ""  # the live index as pg_get_indexdef prints it
    expected: str = ""  # what an equivalent one reads after USING
    found_as: str = ""  # an equivalent index under another name serves instead
    built: bool = False  # wcperf built it (recorded in its schema); else it was found
    size_bytes: int = 0
    scans: int = 0

    @property
    def origin(self) -> str:
        if self.state == MISSING:
            return "-"
        return "built by wcperf" if self.built else "found"


# Every index on the spec's table, and the one of the spec's name wherever it is.
_STATE_SQL = """
select c.relname, i.indisvalid, i.indisunique, t.relname, pg_relation_size(c.oid),
       coalesce(s.idx_scan, 0), pg_get_indexdef(c.oid),
       regexp_replace(pg_get_indexdef(c.oid), '^.*? USING ', 'USING ')
  from pg_index i
  join pg_class c on c.oid = i.indexrelid
  join pg_class t on t.oid = i.indrelid
  left join pg_stat_user_indexes s on s.indexrelid = c.oid
 where c.relnamespace = current_schema()::regnamespace
   and (t.relname = %(table)s or c.relname = %(name)s)
"""
_EXPECTED_SQL = """
select %(method)s || ' (' || (select string_agg(quote_ident(col), ', ' order by n)
                                from unnest(%(columns)s::text[]) with ordinality u(col, n)) || ')'
"""
_BUILT_SQL = sql.SQL(
    "select name, table_name, definition, replaced_definition from {} order by built_at, name"
).format(BUILT_TABLE)


def built_records(conn: psycopg.Connection) -> dict[str, tuple[str, str, str | None]]:
    """{name: (table, definition, replaced definition)} of what wcperf built; {} before 0001."""
    row = conn.execute(
        "select to_regclass(%s) is not null", (f"{WCPERF_SCHEMA}.built_indexes",)
    ).fetchone()
    if not row or not row[0]:
        return {}
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(_BUILT_SQL)}


def expected_tail(conn: psycopg.Connection, spec: IndexSpec) -> str:
    row = conn.execute(
        _EXPECTED_SQL, {"method": f"USING {spec.method}", "columns": list(spec.columns)}
    ).fetchone()
    assert row is not None
    return str(row[0])


def index_states(conn: psycopg.Connection, specs: Iterable[IndexSpec]) -> dict[str, IndexState]:
    """Each spec's live index, classified: present (valid and equivalent), missing, an
    INVALID leftover, or a valid index of that name with another definition."""
    built = built_records(conn)
    states: dict[str, IndexState] = {}
    for spec in specs:
        expected = expected_tail(conn, spec)
        rows = conn.execute(_STATE_SQL, {"table": spec.table, "name": spec.name}).fetchall()
        own = next((r for r in rows if r[0] == spec.name), None)

        def same(r: tuple[Any, ...], expected: str = expected, table: str = spec.table) -> bool:
            return bool(r[1]) and not r[2] and r[3] == table and r[7] == expected

        built_here = spec.name in built
        if own is not None:
            _name, valid, _, table, size, scans, definition, _ = own
            state = PRESENT if same(own) else DIFFERS if valid else INVALID
            states[spec.name] = IndexState(
                spec.name, state, table, definition, expected, built=built_here,
                size_bytes=size, scans=scans,
            )  # fmt: skip
            continue
        twin = next((r for r in rows if same(r)), None)
        if twin is not None:
            states[spec.name] = IndexState(
                spec.name, PRESENT, twin[3], twin[6], expected, found_as=twin[0],
                built=built_here, size_bytes=twin[4], scans=twin[5],
            )  # fmt: skip
        else:
            states[spec.name] = IndexState(
                spec.name, MISSING, spec.table, expected=expected, built=built_here
            )
    return states
