"""Load a synthetic district into the platform's schema with COPY, in one transaction.

Into a database without the platform's tables, the seed creates them from the
project's copy of the platform's DDL (without the 14 performance indexes, as a
production database stands before `wcperf migrate`), in the same transaction as
the rows: tables, then COPY (frozen rows), then keys, indexes and foreign keys,
each validated once. Into the platform's existing, empty tables it only loads.
Data it did not write it never touches: `--append` and `--replace` act only on a
database whose district wcperf seeded (its marker in `wcperf.seeds`), and
`--replace` truncates without CASCADE, so a platform table that references the
district makes it refuse instead of emptying that table too. A seed that is
killed leaves nothing but wcperf's own (empty) schema and can be run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from wcperf.db import admin
from wcperf.errors import RefusedError
from wcperf.platform import PLATFORM_TABLES, WCPERF_SCHEMA
from wcperf.platform.ddl import missing_tables, platform_ddl
from wcperf.seed.district import District

Mode = Literal["new", "append", "replace"]
# (table or phase, rows just written, estimated total); phases after the load
# ("keys and indexes", "analyze") report 0 rows.
Progress = Callable[[str, int, int], None]
SEEDS = sql.SQL("{}.seeds").format(sql.Identifier(WCPERF_SCHEMA))


@dataclass(frozen=True)
class DistrictCounts:
    schools: int
    students: int


@dataclass
class SeedResult:
    mode: Mode
    students: int
    random_seed: int
    created_schema: bool = False
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def district_counts(conn: psycopg.Connection) -> DistrictCounts:
    if missing_tables(conn):
        return DistrictCounts(0, 0)
    row = conn.execute(
        "select (select count(*) from schools), (select count(*) from students)"
    ).fetchone()
    assert row is not None
    return DistrictCounts(int(row[0]), int(row[1]))


def has_rows(conn: psycopg.Connection) -> bool:
    parts = sql.SQL(" or ").join(
        sql.SQL("exists (select 1 from {})").format(sql.Identifier(t)) for t in PLATFORM_TABLES
    )
    row = conn.execute(sql.SQL("select ") + parts).fetchone()
    return bool(row and row[0])


def seeded_by_wcperf(conn: psycopg.Connection) -> int | None:
    """How many districts wcperf seeded here, or None when the data is not (only) its own."""
    found = conn.execute("select to_regclass(%s)", (f"{WCPERF_SCHEMA}.seeds",)).fetchone()
    if not found or found[0] is None:
        return None
    row = conn.execute(
        sql.SQL(
            "select count(*), bool_or(mode in ('new', 'replace')) from {}"
            " where id >= coalesce((select max(id) from {} where mode = 'replace'), 0)"
        ).format(SEEDS, SEEDS)
    ).fetchone()
    assert row is not None
    return int(row[0]) if row[1] else None


def _ensure_state_schema(url: str) -> None:
    """wcperf's own schema holds the seed's marker; the state revision creates it."""
    from wcperf.db.engine import Database
    from wcperf.migrate import alembic_driver
    from wcperf.settings import Settings

    with Database(url, Settings.from_env(command="seed")) as db:
        if not alembic_driver.status(db.engine).current:
            alembic_driver.upgrade(db.engine, alembic_driver.STATE_REVISION, platform=False)


def _plan(conn: psycopg.Connection, mode: Mode) -> tuple[bool, bool]:
    """(create the platform's schema, empty the tables first); refused when unsafe."""
    missing = missing_tables(conn)
    if len(missing) == len(PLATFORM_TABLES):
        return True, False
    if missing:
        raise RefusedError(
            f"the database has some of the platform's tables but not {', '.join(missing)}: "
            "not a platform database wcperf can seed; nothing written"
        )
    if not has_rows(conn):
        return False, False
    counts = district_counts(conn)
    ours = seeded_by_wcperf(conn)
    if ours is None:
        raise RefusedError(
            f"the database holds data wcperf did not seed ({counts.schools} schools, "
            f"{counts.students} students): `wcperf seed` writes only into an empty database "
            "or beside a district it seeded itself; nothing written"
        )
    if mode == "new":
        raise RefusedError(
            f"the database already holds a district wcperf seeded ({counts.schools} schools, "
            f"{counts.students} students): pass --append or --replace"
        )
    return False, mode == "replace"


def seed(
    url: str,
    students: int,
    random_seed: int = 42,
    *,
    mode: Mode = "new",
    progress: Progress | None = None,
    application_name: str = "wcperf:seed",
    performance_indexes: bool = False,
) -> SeedResult:
    """`performance_indexes`: create the schema as the platform's `sync()` leaves it (the 14
    present), instead of as a production database before the migration."""
    started = time.perf_counter()
    result = SeedResult(mode, students, random_seed)
    with admin.connect(url, application_name=application_name, autocommit=True) as conn:
        create, empty_first = _plan(conn, mode)  # refuses before anything is written
    _ensure_state_schema(url)
    with admin.connect(url, application_name=application_name, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local synchronous_commit = off")
            conn.execute("set local lock_timeout = '5s'")
            create, empty_first = _plan(conn, mode)  # again, now inside the transaction
            counted = conn.execute(sql.SQL("select count(*) from {}").format(SEEDS)).fetchone()
            number = int(counted[0]) if counted else 0
            has_medications = not create and conn.execute(
                "select exists (select 1 from medications)"
            ).fetchone() == (True,)
            district = District(
                students,
                random_seed,
                number=number,
                seed_medications=empty_first or not has_medications,
            )
            ddl = platform_ddl(performance_indexes=performance_indexes)
            if create:
                for stmt in ddl.pre_data:
                    conn.execute(stmt)
            if empty_first:
                try:
                    conn.execute(
                        sql.SQL("truncate {}").format(
                            sql.SQL(", ").join(map(sql.Identifier, PLATFORM_TABLES))
                        )
                    )
                except psycopg.errors.FeatureNotSupported:
                    raise RefusedError(
                        "--replace refused: another table references the district's tables "
                        "(truncating them would empty it too); nothing written"
                    ) from None
            for table in district.tables():
                copy = sql.SQL("copy {} ({}) from stdin{}").format(
                    sql.Identifier(table.name),
                    sql.SQL(", ").join(map(sql.Identifier, table.columns)),
                    sql.SQL(" with (freeze)") if create or empty_first else sql.SQL(""),
                )
                written = 0
                with conn.cursor().copy(copy) as cp:
                    for rows, text in table.chunks:
                        cp.write(text)
                        written += rows
                        if progress:
                            progress(table.name, rows, table.estimate)
                result.rows[table.name] = written
            if create:
                if progress:
                    progress("keys and indexes", 0, 0)
                for stmt in ddl.post_data:
                    conn.execute(stmt)
            conn.execute(
                sql.SQL(
                    "insert into {} (mode, created_schema, students, random_seed, rows)"
                    " values (%s, %s, %s, %s, %s)"
                ).format(SEEDS),
                (mode, create, students, random_seed, Jsonb(result.rows)),
            )
        if progress:
            progress("analyze", 0, 0)
        for name in PLATFORM_TABLES:
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(name)))
    result.created_schema = create
    result.seconds = time.perf_counter() - started
    return result
