"""Seed throughput against the server-side floor, in one run.

Ours: `wcperf seed` into an empty database (the platform's tables created, Python
generates every row and its UUID, COPY loads it, then the platform's keys, its model
indexes and foreign keys, ANALYZE). Floor: `INSERT ... SELECT ... FROM generate_series`
of the same row counts and columns into same-shaped tables (`LIKE ... INCLUDING
DEFAULTS`) in a scratch schema, then the same keys and model indexes built on them:
PostgreSQL writing rows it made itself, with no client in the way, doing the same
index work in the same order. Goal: at most 1.5x.
"""

from __future__ import annotations

import argparse
import time

from psycopg import sql

from tests.bench.common import bench_database, save
from wcperf.db import admin
from wcperf.seed.district import District
from wcperf.seed.load import seed

_EXPR = {
    "integer": "15 + g %% 3 * 15",
    "text": "'w' || g",
    "character varying": "'w' || g",
    "date": "date '2010-01-01' + (g %% 1500)::int",
    "timestamp with time zone": "timestamptz '2026-08-17' + g * interval '1 minute'",
    "boolean": "g %% 10 = 0",
    "uuid": "md5(g::text || {salt})::uuid",
}


def _expr(column: str, data_type: str, udt: str) -> sql.Composable:
    if data_type == "USER-DEFINED":  # one of the platform's enums
        return sql.SQL("(enum_range(null::{}))[1]").format(sql.Identifier(udt))
    if column == "deletedAt":
        return sql.SQL("null")
    return sql.SQL(_EXPR[data_type]).format(salt=sql.Literal(column))


def floor(url: str, rows: dict[str, int]) -> float:
    with admin.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists floor cascade")
        conn.execute("create schema floor")
        started = time.perf_counter()
        with conn.transaction():
            conn.execute("set local synchronous_commit = off")
            written = {t.name: t.columns for t in District(1).tables()}
            for table, count in rows.items():
                types = {
                    c: (d, u)
                    for c, d, u in conn.execute(
                        """select column_name, data_type, udt_name from information_schema.columns
                            where table_schema = 'public' and table_name = %s""",
                        (table,),
                    )
                }
                cols = [(c, *types[c]) for c in written[table]]
                conn.execute(
                    sql.SQL("create table floor.{t} (like {t} including defaults)").format(
                        t=sql.Identifier(table)
                    )
                )
                conn.execute(
                    sql.SQL(
                        "insert into floor.{t} ({cols}) select {exprs} "
                        "from generate_series(1, %s) g"
                    ).format(
                        t=sql.Identifier(table),
                        cols=sql.SQL(", ").join(sql.Identifier(c) for c, _, _ in cols),
                        exprs=sql.SQL(", ").join(_expr(c, d, u) for c, d, u in cols),
                    ),
                    (count,),
                )
            # The platform's keys and model indexes, as the seed builds them after its load.
            for (definition,) in conn.execute(
                "select pg_get_indexdef(i.indexrelid) from pg_index i"
                " join pg_class t on t.oid = i.indrelid"
                " where t.relnamespace = 'public'::regnamespace and t.relname = any(%s)",
                (list(rows),),
            ).fetchall():
                conn.execute(definition.replace(" ON public.", " ON floor.", 1))
        elapsed = time.perf_counter() - started
        conn.execute("drop schema floor cascade")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with bench_database("wcperf_bench_seed") as url:
        result = seed(url, args.students, 42)
        floor_s = floor(url, result.rows)
    ratio = result.seconds / floor_s
    print(
        f"rows: {result.total_rows:,}  " + ", ".join(f"{k} {v:,}" for k, v in result.rows.items())
    )
    rate = result.total_rows / result.seconds
    print(f"wcperf seed      {result.seconds:8.1f} s  {rate:>10,.0f} rows/s")
    print(f"server floor     {floor_s:8.1f} s  {result.total_rows / floor_s:>10,.0f} rows/s")
    print(
        f"ratio            {ratio:8.2f} x   (goal <= 1.50 x) {'OK' if ratio <= 1.5 else 'MISSED'}"
    )
    save(
        "seed",
        {
            "students": args.students,
            "rows": result.rows,
            "seed_s": result.seconds,
            "floor_s": floor_s,
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
