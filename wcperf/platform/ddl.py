"""The platform's DDL, from the project's own copy of what its ORM creates.

Only `wcperf seed` (and the demo and tests through it) runs this, and only in a
database that has none of the platform's tables. It is split the way pg_dump
splits a restore: types and tables first, then (after the rows are loaded) keys,
indexes and foreign keys, so a seed validates each key once instead of per row.
A production database before the performance migration lacks the 14 indexes,
so that is what a seed builds unless asked for the `sync()` shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import psycopg

from wcperf.platform import PLATFORM_TABLES
from wcperf.platform.indexes import BY_NAME

_INDEX_NAME = re.compile(r"^CREATE (?:UNIQUE )?INDEX (\S+) ON ")


@dataclass(frozen=True)
class Ddl:
    pre_data: tuple[str, ...]  # CREATE TYPE, CREATE TABLE
    post_data: tuple[str, ...]  # keys, indexes, foreign keys


@cache
def _statements() -> tuple[str, ...]:
    text = files("wcperf.platform").joinpath("schema.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    parts = (p.strip() for p in body.split(";\n"))
    return tuple(p.rstrip(";") for p in parts if p and not p.startswith(("SET ", "SELECT ")))


def platform_ddl(*, performance_indexes: bool = False) -> Ddl:
    """The platform's schema; with `performance_indexes`, as `sync()` leaves it (all 14)."""
    pre: list[str] = []
    post: list[str] = []
    for stmt in _statements():
        if stmt.startswith(("CREATE TYPE", "CREATE TABLE")):
            pre.append(stmt)
            continue
        found = _INDEX_NAME.match(stmt)
        if found and found.group(1) in BY_NAME and not performance_indexes:
            continue
        post.append(stmt)
    return Ddl(tuple(pre), tuple(post))


def missing_tables(conn: psycopg.Connection) -> list[str]:
    """Which of the platform's tables this database lacks (all of them: not the platform's)."""
    rows = conn.execute(
        "select t from unnest(%s::text[]) t where to_regclass(quote_ident(t)) is null",
        (list(PLATFORM_TABLES),),
    ).fetchall()
    return [r[0] for r in rows]
