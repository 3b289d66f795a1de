"""Seed throughput against the server-side floor, in one run.

Ours: `wcperf seed` (Python generates every row, COPY loads it, keys re-validated,
ANALYZE). Floor: `INSERT ... SELECT ... FROM generate_series` of the same row counts
into same-shaped tables (same columns, defaults and primary keys) in a scratch schema:
PostgreSQL writing rows it made itself, with no client in the way. Goal: at most 2x.
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
    "bigint": "g",
    "smallint": "(g %% 13)::smallint",
    "text": "'w' || (g %% 1000)",
    "date": "date '2020-01-01' + (g %% 1500)::int",
    "timestamp with time zone": "timestamptz '2026-08-17' + g * interval '1 minute'",
    "boolean": "g %% 10 = 0",
    "uuid": "null",
    "jsonb": "null",
}


def floor(url: str, rows: dict[str, int]) -> float:
    with admin.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists floor cascade")
        conn.execute("create schema floor")
        started = time.perf_counter()
        with conn.transaction():
            conn.execute("set local synchronous_commit = off")
            for table, count in rows.items():
                cols = conn.execute(
                    """select column_name, data_type from information_schema.columns
                        where table_schema = current_schema() and table_name = %s
                          and column_name not in ('created_at', 'updated_at')
                        order by ordinal_position""",
                    (table,),
                ).fetchall()
                conn.execute(
                    sql.SQL("create table floor.{t} (like {t} including all)").format(
                        t=sql.Identifier(table)
                    )
                )
                conn.execute(
                    sql.SQL(
                        "insert into floor.{t} ({cols}) select {exprs} "
                        "from generate_series(1, %s) g"
                    ).format(
                        t=sql.Identifier(table),
                        cols=sql.SQL(", ").join(sql.Identifier(c) for c, _ in cols),
                        exprs=sql.SQL(", ").join(sql.SQL(_EXPR[t]) for _, t in cols),
                    ),
                    (count,),
                )
        elapsed = time.perf_counter() - started
        conn.execute("drop schema floor cascade")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with bench_database("wcperf_bench_seed") as url:
        result = seed(url, District(args.students, 42))
        floor_s = floor(url, result.rows)
    ratio = result.seconds / floor_s
    print(
        f"rows: {result.total_rows:,}  " + ", ".join(f"{k} {v:,}" for k, v in result.rows.items())
    )
    rate = result.total_rows / result.seconds
    print(f"wcperf seed      {result.seconds:8.1f} s  {rate:>10,.0f} rows/s")
    print(f"server floor     {floor_s:8.1f} s  {result.total_rows / floor_s:>10,.0f} rows/s")
    print(f"ratio            {ratio:8.2f} x   (goal <= 2.00 x) {'OK' if ratio <= 2 else 'MISSED'}")
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
