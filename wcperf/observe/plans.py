"""A statement's generic plan for the drill-down: `EXPLAIN (GENERIC_PLAN)` on the
normalised text, whose `$n` stand for any value (PostgreSQL 16 and newer).

The text is one statement wcperf normalised itself (never user input), checked
again here to be a single SELECT, INSERT, UPDATE or DELETE, and explained without
ANALYZE in a read-only transaction with a short timeout: nothing runs, nothing is
written, nothing waits long for a lock.
"""

from __future__ import annotations

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError

from wcperf.errors import WcperfError

EXPLAINABLE = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)
MIN_VERSION = 160000


class PlanUnavailable(WcperfError):
    pass


def explainable(normalized: str) -> None:
    """Refuse anything but one plain DML statement (PlanUnavailable says why)."""
    try:
        parsed = parse_sql(normalized)
    except ParseError:
        raise PlanUnavailable("the normalised text does not parse on its own") from None
    if len(parsed) != 1 or not isinstance(parsed[0].stmt, EXPLAINABLE):
        raise PlanUnavailable("only a single SELECT, INSERT, UPDATE or DELETE is explained")


def generic_plan(conn: psycopg.Connection, normalized: str, timeout_ms: int = 2_000) -> str:
    explainable(normalized)
    version = conn.info.server_version
    if version < MIN_VERSION:
        major = version // 10000
        raise PlanUnavailable(f"generic plans need PostgreSQL 16 or newer (this is {major})")
    with conn.transaction(force_rollback=True):
        conn.execute("set transaction read only")
        conn.execute("select set_config('statement_timeout', %s, true)", (str(timeout_ms),))
        conn.execute("select set_config('lock_timeout', %s, true)", (str(timeout_ms),))
        try:
            rows = conn.execute(f"explain (generic_plan) {normalized}").fetchall()
        except psycopg.Error as exc:
            reason = exc.diag.message_primary or type(exc).__name__
            raise PlanUnavailable(f"the server could not plan it: {reason}") from None
    return "\n".join(str(r[0]) for r in rows)
