"""Gather every live publisher's Snapshot and what PostgreSQL and Redis say themselves."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from wcperf.cache.inventory import glob_escape
from wcperf.observe.history import RULE, History, trends
from wcperf.observe.observer import snapshot_key
from wcperf.observe.server_watch import LogWatch
from wcperf.observe.snapshot import (
    ClientSessions,
    DatabaseView,
    IndexBuild,
    MinutePoint,
    RedisServer,
    Sessions,
    Snapshot,
    merge,
)
from wcperf.observe.statements import StatementRates
from wcperf.observe.targets import Targets, evaluate
from wcperf.observe.windows import Windows


def published(client: Any, prefix: str) -> list[Snapshot]:
    keys = sorted(client.scan_iter(match=glob_escape(snapshot_key(prefix, "")) + "*", count=500))
    if not keys:
        return []
    return [Snapshot.from_json(raw) for raw in client.mget(keys) if raw]


_ACTIVITY = """
select coalesce(nullif(application_name, ''), '(none)') as application,
       case when wait_event_type = 'Lock' then 'waiting on a lock' else state end as state,
       count(*) as sessions,
       coalesce(max(extract(epoch from now() - query_start))
                filter (where state = 'active'), 0) as longest_query_s
  from pg_stat_activity
 where datname = current_database() and backend_type = 'client backend'
   and pid <> pg_backend_pid()
 group by 1, 2 order by 1, 2
"""
_CLIENTS = """
select coalesce(nullif(application_name, ''), '(none)') as application,
       coalesce(host(client_addr), 'local') as client,
       count(*) as sessions,
       count(*) filter (where state = 'active' and wait_event_type is distinct from 'Lock'),
       count(*) filter (where state = 'idle'),
       count(*) filter (where state like 'idle in transaction%'),
       coalesce(max(extract(epoch from now() - state_change))
                filter (where state like 'idle in transaction%'), 0),
       count(*) filter (where wait_event_type = 'Lock')
  from pg_stat_activity
 where datname = current_database() and backend_type = 'client backend'
   and pid <> pg_backend_pid()
 group by 1, 2 order by 3 desc, 1, 2
"""
_CAPACITY = """
select (select count(*) from pg_stat_activity where backend_type = 'client backend'),
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0)
"""
_LONGEST = """
select coalesce(max(extract(epoch from now() - query_start)) filter (where state = 'active'), 0),
       coalesce(max(extract(epoch from now() - xact_start)), 0),
       count(*) filter (where wait_event_type = 'Lock')
  from pg_stat_activity
 where datname = current_database() and backend_type = 'client backend'
   and pid <> pg_backend_pid()
"""
_BUILDS = """
select c.relname as index, t.relname as "table", p.phase,
       case when p.blocks_total > 0 then round(100.0 * p.blocks_done / p.blocks_total, 1) end
         as blocks_pct
  from pg_stat_progress_create_index p
  left join pg_class c on c.oid = p.index_relid
  left join pg_class t on t.oid = p.relid
 where p.datid = (select oid from pg_database where datname = current_database())
"""


def database_view(
    conn: psycopg.Connection, statements: StatementRates | None = None
) -> DatabaseView:
    """pg_stat_activity, pg_stat_statements and index builds; never any query's text."""
    view = DatabaseView()
    conn.autocommit = True
    for app, state, sessions, longest in conn.execute(_ACTIVITY):
        view.activity.append(Sessions(app, state or "unknown", int(sessions), float(longest)))
    for app, client, sessions, active, idle, in_xact, in_xact_s, locked in conn.execute(_CLIENTS):
        view.clients.append(
            ClientSessions(
                app,
                client,
                sessions=int(sessions),
                active=int(active),
                idle=int(idle),
                idle_in_transaction=int(in_xact),
                longest_idle_in_transaction_s=float(in_xact_s),
                waiting_on_locks=int(locked),
            )
        )
    view.connections, view.max_connections, view.reserved_connections = (
        int(n)
        for n in conn.execute(_CAPACITY).fetchone()  # type: ignore[union-attr]
    )
    longest_q, longest_x, waiting = conn.execute(_LONGEST).fetchone()  # type: ignore[misc]
    view.longest_query_s, view.longest_transaction_s = float(longest_q), float(longest_x)
    view.waiting_on_locks = int(waiting)
    view.statements, view.statements_note = (statements or StatementRates()).read(conn)
    view.index_builds = [
        IndexBuild(index, table, str(phase), None if pct is None else float(pct))
        for index, table, phase, pct in conn.execute(_BUILDS)
    ]
    return view


def redis_view(client: Any) -> RedisServer:
    info = client.info()
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    return RedisServer(
        version=info.get("redis_version"),
        used_memory=info.get("used_memory"),
        used_memory_human=info.get("used_memory_human"),
        keyspace_hits=hits,
        keyspace_misses=misses,
        hit_rate_pct=round(100.0 * hits / (hits + misses), 1) if hits + misses else None,
        connected_clients=info.get("connected_clients"),
        keys=sum(
            int(v.get("keys", 0))
            for k, v in info.items()
            if k.startswith("db") and isinstance(v, dict)
        ),
    )


_JOBS = """
select status, count(*), extract(epoch from max(updated_at))
  from wcperf.bulk_jobs group by 1 order by 1
"""


def job_counts(conn: psycopg.Connection) -> tuple[dict[str, int], dict[str, float]]:
    """wcperf's own job rows by status, and when one last changed into each; empty
    where wcperf's schema was never created."""
    try:
        row = conn.execute("select to_regclass('wcperf.bulk_jobs')").fetchone()
        if row is None or row[0] is None:
            return {}, {}
        rows = conn.execute(_JOBS).fetchall()
    except psycopg.errors.InsufficientPrivilege:  # a monitoring role without wcperf's schema
        return {}, {}
    counts, changed = {}, {}
    for status, n, at in rows:
        counts[str(status)], changed[str(status)] = int(n), float(at)
    return counts, changed


@dataclass
class Collector:
    """The monitor's side of collection: the connections it reads and the state that
    lives across readings (the log it follows, rates, windows, history)."""

    conn: psycopg.Connection | None
    redis: Any
    prefix: str
    targets: Targets
    redis_note: str = ""
    server_log: LogWatch | None = None
    statements: StatementRates | None = None
    windows: Windows | None = None
    history: History | None = None
    published: list[Snapshot] = field(default_factory=list)  # the last reading's, unmerged

    def points(self) -> list[MinutePoint]:
        """The shared history with each minute's statements (a Snapshot holds figures)."""
        return self.history.points() if self.history is not None else []

    def collect(self) -> Snapshot:
        """One merged Snapshot: every live publisher, plus the servers' own view."""
        snaps: list[Snapshot] = []
        redis_info: RedisServer | None = None
        redis_note = self.redis_note
        if self.redis is not None:
            try:
                snaps = published(self.redis, self.prefix)
                redis_info = redis_view(self.redis)
            except Exception as exc:  # Redis down: still show the database side
                redis_note = f"Redis unreachable ({type(exc).__name__}): no published snapshots"
        self.published = snaps
        merged = merge(snaps, time.time())
        merged.notes = []
        if self.conn is not None:
            merged.database = database_view(self.conn, self.statements)
            merged.database.redis = redis_info
            merged.database.redis_note = redis_note
            merged.database.jobs, merged.database.jobs_changed_at = job_counts(self.conn)
        if self.server_log is not None:
            merged.server_log = self.server_log.poll()
        if self.windows is not None:
            merged.recent = self.windows.add(merged)
        if redis_note:
            merged.notes.append(redis_note)
        elif not snaps:
            merged.notes.append("no wcperf process is publishing right now")
        merged.alerts = evaluate(merged, self.targets)
        if self.history is not None:
            self.history.record(merged)
            points = self.history.points()
            merged.history = [MinutePoint(p.minute, p.figures) for p in points]
            merged.trends, merged.trend_rule = trends(points), RULE
            if self.history.note:
                merged.notes.append(self.history.note)
        return merged


def collect(
    conn: psycopg.Connection | None, redis_client: Any, prefix: str, targets: Targets
) -> Snapshot:
    """One reading without state carried between readings (tests, benchmarks)."""
    return Collector(conn, redis_client, prefix, targets).collect()
