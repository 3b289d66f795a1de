"""Load a synthetic district with COPY, in one transaction.

One transaction means a seed that is killed leaves nothing behind and can simply
be run again. Into an empty (or replaced) district the tables are truncated in that
same transaction, which lets COPY write frozen rows, and the foreign keys are
dropped for the load and re-added after it: one validating join per key instead of
a locking lookup per row. Appending keeps the keys and checks every row.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import psycopg
from psycopg import sql

from wcperf.db import admin
from wcperf.db.schema import DISTRICT_TABLES
from wcperf.errors import RefusedError, WcperfError
from wcperf.seed.district import District, Offsets

Mode = Literal["new", "append", "replace"]
# (table or phase, rows just written, estimated total); phases after the load
# ("foreign keys", "analyze") report 0 rows.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DistrictCounts:
    schools: int
    students: int


@dataclass
class SeedResult:
    mode: Mode
    students: int
    random_seed: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def require_schema(conn: psycopg.Connection) -> None:
    row = conn.execute("select to_regclass('students') is not null").fetchone()
    if not row or not row[0]:
        raise WcperfError("the database has no wcperf schema yet: run `wcperf migrate` first")


def district_counts(conn: psycopg.Connection) -> DistrictCounts:
    row = conn.execute(
        "select (select count(*) from schools), (select count(*) from students)"
    ).fetchone()
    assert row is not None
    return DistrictCounts(int(row[0]), int(row[1]))


def _offsets(conn: psycopg.Connection) -> Offsets:
    parts = sql.SQL(", ").join(
        sql.SQL("(select coalesce(max(id), 0) from {})").format(sql.Identifier(t))
        for t in DISTRICT_TABLES
    )
    row = conn.execute(sql.SQL("select ") + parts).fetchone()
    assert row is not None
    return Offsets(**dict(zip(DISTRICT_TABLES, map(int, row), strict=True)))


def _foreign_keys(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of every foreign key on a district table."""
    return [
        (t, c, d)
        for t, c, d in conn.execute(
            """select cl.relname, co.conname, pg_get_constraintdef(co.oid)
                 from pg_constraint co join pg_class cl on cl.oid = co.conrelid
                where co.contype = 'f' and cl.relname = any(%s)
                  and cl.relnamespace = current_schema()::regnamespace
                order by cl.relname, co.conname""",
            (list(DISTRICT_TABLES),),
        ).fetchall()
    ]


def seed(
    url: str,
    district: District,
    *,
    mode: Mode = "new",
    progress: Progress | None = None,
    application_name: str = "wcperf:seed",
) -> SeedResult:
    started = time.perf_counter()
    result = SeedResult(mode, district.students, district.seed)
    with admin.connect(url, application_name=application_name, autocommit=True) as conn:
        require_schema(conn)
        existing = district_counts(conn)
        if existing.schools and mode == "new":
            raise RefusedError(
                f"the database already holds a district ({existing.schools} schools, "
                f"{existing.students} students): pass --append or --replace"
            )
        fresh = mode == "replace" or not existing.schools
        with conn.transaction():
            conn.execute("set local synchronous_commit = off")
            fkeys: list[tuple[str, str, str]] = []
            if fresh:
                conn.execute(
                    sql.SQL("truncate {} restart identity cascade").format(
                        sql.SQL(", ").join(map(sql.Identifier, DISTRICT_TABLES))
                    )
                )
                fkeys = _foreign_keys(conn)
                for table, name, _ in fkeys:
                    conn.execute(
                        sql.SQL("alter table {} drop constraint {}").format(
                            sql.Identifier(table), sql.Identifier(name)
                        )
                    )
            else:
                district = replace(district, offsets=_offsets(conn), seed_medications=False)
            for table in district.tables():
                copy = sql.SQL("copy {} ({}) from stdin{}").format(
                    sql.Identifier(table.name),
                    sql.SQL(", ").join(map(sql.Identifier, table.columns)),
                    sql.SQL(" with (freeze)") if fresh else sql.SQL(""),
                )
                written = 0
                with conn.cursor().copy(copy) as cp:
                    for rows, text in table.chunks:
                        cp.write(text)
                        written += rows
                        if progress:
                            progress(table.name, rows, table.estimate)
                result.rows[table.name] = written
            if progress and fkeys:
                progress("foreign keys", 0, 0)
            for table, name, definition in fkeys:
                conn.execute(
                    sql.SQL("alter table {} add constraint {} {}").format(
                        sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
                    )
                )
            for table in DISTRICT_TABLES:
                conn.execute(
                    sql.SQL(
                        "select setval(pg_get_serial_sequence({t}, 'id'), "
                        "coalesce((select max(id) from {i}), 0) + 1, false)"
                    ).format(t=sql.Literal(table), i=sql.Identifier(table))
                )
            conn.execute(
                "insert into audit_log (actor, action, counts, details) values (%s, %s, %s, %s)",
                (
                    getpass.getuser(),
                    "seed",
                    json.dumps(result.rows),
                    json.dumps(
                        {"mode": mode, "students": district.students, "random_seed": district.seed}
                    ),
                ),
            )
        if progress:
            progress("analyze", 0, 0)
        for table in DISTRICT_TABLES:
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(table)))
    result.seconds = time.perf_counter() - started
    return result
