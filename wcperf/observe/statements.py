"""pg_stat_statements as rates: each reading minus the one before, per queryid.

The view's counters run from its last reset, so a top-by-total-time list shows
what was slow last month. The monitor keeps its previous reading and shows what
each statement did in the interval since: calls per second, time, rows, shared
blocks hit and read. Texts are fetched once per queryid and normalised again by
wcperf (pg_stat_statements keeps constants as `$n`, but not in every utility
statement), so its fingerprint joins the app side and the server log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from wcperf.observe.fingerprint import Fingerprint, fingerprint_logged
from wcperf.observe.snapshot import ServerStatement

_READING = """
select queryid, sum(calls)::bigint, sum(total_exec_time), sum(rows)::bigint,
       sum(shared_blks_hit)::bigint, sum(shared_blks_read)::bigint
  from pg_stat_statements(false)
 where dbid = (select oid from pg_database where datname = current_database())
   and queryid is not null
 group by queryid
"""
_TEXTS = """
select distinct on (queryid) queryid, query from pg_stat_statements
 where dbid = (select oid from pg_database where datname = current_database())
   and queryid = any(%s)
"""
MISSING = (
    "pg_stat_statements is not installed in this database: CREATE EXTENSION "
    "pg_stat_statements (it needs shared_preload_libraries = 'pg_stat_statements' and a "
    "restart)"
)
NOT_LOADED = (
    "pg_stat_statements is installed but not loaded: add it to shared_preload_libraries "
    "and restart the server"
)
_TEXTS_KEPT = 20_000


@dataclass(frozen=True)
class _Reading:
    calls: int
    total_ms: float
    rows: int
    hit: int
    read: int


class StatementRates:
    """One monitor's readings of pg_stat_statements, for rates between refreshes."""

    def __init__(self, top: int = 10) -> None:
        self.top = top
        self._before: dict[int, _Reading] = {}
        self._before_at: float | None = None
        self._texts: dict[int, Fingerprint] = {}

    def read(self, conn: Any) -> tuple[list[ServerStatement], str]:
        """The top statements (by time in the window once there is one), or a note."""
        import psycopg

        try:
            rows = conn.execute(_READING).fetchall()
        except psycopg.errors.UndefinedTable:
            return [], MISSING
        except psycopg.errors.UndefinedFunction:
            return [], MISSING
        except psycopg.errors.ObjectNotInPrerequisiteState:
            return [], NOT_LOADED
        except psycopg.Error as exc:
            primary = getattr(exc.diag, "message_primary", None) or type(exc).__name__
            return [], f"pg_stat_statements could not be read: {primary}"
        now = time.monotonic()
        window = None if self._before_at is None else now - self._before_at
        readings = {
            int(q): _Reading(int(c), float(t), int(r), int(h), int(b)) for q, c, t, r, h, b in rows
        }
        found: list[ServerStatement] = []
        for query_id, now_r in readings.items():
            before = self._before.get(query_id) if window is not None else None
            if window is not None and before is not None and now_r.calls < before.calls:
                before = _Reading(0, 0.0, 0, 0, 0)  # reset since: all of it is new
            found.append(_statement(query_id, now_r, before, window, window is not None))
        self._before, self._before_at = readings, now
        if window is not None:
            found.sort(key=lambda s: (s.window_total_ms or 0.0, s.total_ms), reverse=True)
        else:
            found.sort(key=lambda s: s.total_ms, reverse=True)
        shown = found[: self.top]
        self._name(conn, [s.query_id for s in shown if s.query_id is not None])
        for s in shown:
            fp = self._texts.get(s.query_id or 0)
            if fp is not None:
                s.query, s.fingerprint = fp.normalized, fp.id
        return shown, ""

    def _name(self, conn: Any, ids: list[int]) -> None:
        unknown = [i for i in ids if i not in self._texts]
        if not unknown:
            return
        if len(self._texts) > _TEXTS_KEPT:
            self._texts.clear()
        for query_id, text in conn.execute(_TEXTS, (unknown,)):
            self._texts[int(query_id)] = fingerprint_logged(str(text or ""))


def _statement(
    query_id: int, now: _Reading, before: _Reading | None, window: float | None, windowed: bool
) -> ServerStatement:
    s = ServerStatement(
        query="(text not read)",
        calls=now.calls,
        mean_ms=round(now.total_ms / now.calls, 3) if now.calls else 0.0,
        total_ms=round(now.total_ms, 1),
        query_id=query_id,
        rows=now.rows,
    )
    if windowed:
        b = before or _Reading(0, 0.0, 0, 0, 0)  # new since the last reading
        s.window_s = round(window or 0.0, 3)
        s.window_calls = now.calls - b.calls
        s.window_total_ms = round(now.total_ms - b.total_ms, 3)
        s.window_rows = now.rows - b.rows
        s.window_blks_hit = now.hit - b.hit
        s.window_blks_read = now.read - b.read
    return s
