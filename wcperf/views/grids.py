"""The full-screen monitor's tables as plain rows: a pure function of a Snapshot.

Each grid has columns with a kind (text or a number with its format) and rows of raw
values, so the screen sorts numbers as numbers and formats them only when drawn.
Rows that stand for a statement carry its fingerprint, which opens its drill-down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wcperf.observe.snapshot import QueryStats, ServerQuery, Snapshot

SINCE_START, LAST_MINUTE = "since start", "last minute"


@dataclass(frozen=True)
class Column:
    label: str
    fmt: str = ""  # "" text; else a format spec for a number: ",", ".2f", ".0f"

    @property
    def numeric(self) -> bool:
        return bool(self.fmt)

    def show(self, value: Any) -> str:
        if value is None:
            return "-"
        return format(value, self.fmt) if self.fmt else str(value)


@dataclass
class Row:
    key: str
    values: list[Any]
    fingerprint: str | None = None  # a statement's: Enter opens its drill-down
    application: str | None = None


@dataclass
class Grid:
    name: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    note: str = ""

    def filtered(self, needle: str) -> list[Row]:
        if not needle:
            return self.rows
        needle = needle.lower()
        return [r for r in self.rows if any(needle in str(v).lower() for v in r.values)]


def _n(label: str) -> Column:
    return Column(label, ",")


def _ms(label: str) -> Column:
    return Column(label, ".2f")


def pools(snap: Snapshot, mode: str) -> Grid:
    g = Grid("pools", "Connection pools of wcperf's processes", [
        Column("process"), Column("pid"), _n("in use"), _n("max"), _n("idle"),
        _n("waiting"), Column("util %", ".0f"), _ms("mean wait ms"), _n("timeouts"),
        Column("health"),
    ])  # fmt: skip
    for p in snap.pools:
        pid = p.source.rpartition(":")[2]
        g.rows.append(Row(p.source, [
            p.role or p.source, pid, p.in_use, p.max_size, p.idle, p.waiting,
            p.utilisation_pct, p.mean_wait_ms, p.timeouts, p.health,
        ]))  # fmt: skip
    if not snap.pools:
        g.note = "no wcperf process is publishing: only the server's side is shown"
    return g


def _recent_by_fp(rows: Sequence[QueryStats]) -> dict[str, QueryStats]:
    return {q.fingerprint: q for q in rows}


def queries(snap: Snapshot, mode: str) -> Grid:
    recent = mode == LAST_MINUTE and snap.recent is not None
    window = f"last {snap.recent.window_s:.0f} s" if recent and snap.recent else "since start"
    g = Grid("queries", f"wcperf's statements ({window})", [
        Column("fingerprint"), Column("table"), _n("count"), _n("errors"), _ms("mean ms"),
        _ms("p50 ms"), _ms("p95 ms"), _ms("p99 ms"), _ms("max ms"), Column("statement"),
    ])  # fmt: skip
    rows: Sequence[QueryStats] = snap.recent.queries if recent and snap.recent else snap.queries
    for q in rows:
        if recent and not q.count:
            continue
        g.rows.append(Row(q.fingerprint, [
            q.fingerprint, q.table or "", q.count, q.errors, q.mean_ms, q.p(50), q.p(95),
            q.p(99), q.max_us / 1000, q.normalized,
        ], fingerprint=q.fingerprint))  # fmt: skip
    g.rows.sort(key=lambda r: r.values[6], reverse=True)  # slowest P95 first
    return g


def server_log(snap: Snapshot, mode: str) -> Grid:
    log = snap.server_log
    recent = mode == LAST_MINUTE and snap.recent is not None
    g = Grid("server", "Every application's statements, from the server's log", [
        Column("application"), Column("fingerprint"), _n("count"), _ms("mean ms"),
        _ms("p50 ms"), _ms("p95 ms"), _ms("p99 ms"), Column("statement"),
    ])  # fmt: skip
    if log is None:
        g.note = "not followed: start with --server-log PATH|auto"
        return g
    rows: Sequence[ServerQuery] = (
        snap.recent.server_queries if recent and snap.recent else log.queries
    )
    for q in rows:
        if recent and not q.count:
            continue
        g.rows.append(Row(f"{q.fingerprint} {q.application}", [
            q.application, q.fingerprint, q.count, q.mean_ms, q.p(50), q.p(95), q.p(99),
            q.normalized,
        ], fingerprint=q.fingerprint, application=q.application))  # fmt: skip
    g.rows.sort(key=lambda r: r.values[5], reverse=True)
    g.note = f"{log.source or 'no file'} · {log.format} · {log.statements:,} executions"
    return g


def sessions(snap: Snapshot, mode: str) -> Grid:
    g = Grid("sessions", "Connections as the server sees them", [
        Column("application"), Column("client"), _n("sessions"), _n("active"), _n("idle"),
        _n("idle in xact"), Column("longest idle in xact s", ".1f"), _n("waiting on locks"),
    ])  # fmt: skip
    db = snap.database
    if db is None:
        g.note = "the database is not read"
        return g
    for c in db.clients:
        g.rows.append(Row(f"{c.application} {c.client}", [
            c.application, c.client, c.sessions, c.active, c.idle, c.idle_in_transaction,
            c.longest_idle_in_transaction_s, c.waiting_on_locks,
        ]))  # fmt: skip
    headroom = db.headroom
    g.note = (
        f"{db.connections:,} of {db.max_connections:,} connections on the server"
        + (f", {headroom:,} left for ordinary roles" if headroom is not None else "")
        + f" · {db.waiting_on_locks:,} waiting on locks"
        + f" · oldest transaction {db.longest_transaction_s:.1f} s"
    )
    return g


def statements(snap: Snapshot, mode: str) -> Grid:
    g = Grid("statements", "pg_stat_statements, between the last two readings", [
        Column("fingerprint"), Column("calls/s", ",.1f"), _n("calls"), _ms("mean ms"),
        _ms("total ms"), _n("rows"), _n("blocks hit"), _n("blocks read"), Column("statement"),
    ])  # fmt: skip
    db = snap.database
    if db is None:
        return g
    for s in db.statements:
        g.rows.append(Row(str(s.query_id or s.fingerprint or s.query[:40]), [
            s.fingerprint, s.calls_per_s, s.calls, s.window_mean_ms or s.mean_ms,
            s.window_total_ms if s.window_total_ms is not None else s.total_ms,
            s.window_rows if s.window_rows is not None else s.rows,
            s.window_blks_hit, s.window_blks_read, s.query,
        ], fingerprint=s.fingerprint or None))  # fmt: skip
    g.note = db.statements_note
    return g


def cache_and_jobs(snap: Snapshot, mode: str) -> Grid:
    g = Grid("cache", "Query cache tiers and bulk jobs", [
        Column("what"), _n("hits"), _n("misses"), Column("hit %", ".1f"), _n("entries"),
        _n("errors"), Column("state"), Column("progress"), Column("reason"),
    ])  # fmt: skip
    cache = snap.cache
    if cache is not None:
        rate = cache.hit_rate_pct
        if mode == LAST_MINUTE and snap.recent is not None:
            rate = snap.recent.cache_hit_rate_pct
        g.rows.append(Row("cache", [
            f"cache ({cache.mode or 'all tiers'})", cache.hits, cache.misses, rate, None,
            None, "", "", "",
        ]))  # fmt: skip
        for tier, t in sorted(cache.tiers.items()):
            lookups = t.hits + t.misses
            g.rows.append(Row(f"tier {tier}", [
                f"  tier {tier}", t.hits, t.misses,
                100 * t.hits / lookups if lookups else None, t.entries, t.errors, "", "", "",
            ]))  # fmt: skip
    for name, job in sorted(snap.throttle.items()):
        done = f"{job.rows_done:,}/{job.rows_total:,}"
        g.rows.append(Row(name, [
            f"bulk {name} {job.kind}", None, None, None, None, None, job.state, done,
            job.reason,
        ]))  # fmt: skip
    if not g.rows:
        g.note = "no cache or bulk job is publishing"
    return g


def alerts(snap: Snapshot, mode: str) -> Grid:
    g = Grid("alerts", "Alerts on the targets", [
        Column("severity"), Column("code"), Column("value", ",.1f"),
        Column("threshold", ",.1f"), Column("what"), Column("process"),
    ])  # fmt: skip
    for i, a in enumerate(snap.alerts):
        g.rows.append(Row(f"{i}", [a.severity, a.code, a.value, a.threshold, a.message,
                                   a.source or ""]))  # fmt: skip
    if not snap.alerts:
        g.note = "every target met"
    return g


GRIDS: tuple[Callable[[Snapshot, str], Grid], ...] = (
    pools,
    queries,
    server_log,
    sessions,
    statements,
    cache_and_jobs,
    alerts,
)
