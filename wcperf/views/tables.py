"""The monitor's tables, each a pure function of a Snapshot."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wcperf.observe import histogram as hdr
from wcperf.observe.snapshot import BUCKETS, QueryStats, ServerQuery, Snapshot
from wcperf.redact import text

_SEVERITY = {"critical": "bold red", "warning": "yellow"}


class _InertTable(Table):
    """A table whose text cells are shown as given: controls escaped, never markup.

    Cells carry what the database and other processes report (application names,
    statements, notes), so nothing in them may style, move or clear the terminal.
    """

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(text(r) if isinstance(r, str) else r for r in renderables), **kwargs)


def _table(title: str, *columns: str) -> Table:
    t = _InertTable(
        title=title,
        title_justify="left",
        title_style="bold",
        show_edge=False,
        pad_edge=False,
        expand=False,
    )
    for i, col in enumerate(columns):
        t.add_column(
            col,
            justify="left" if i == 0 else "right",
            overflow="fold",
            min_width=24 if i == 0 else None,
        )
    return t


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def header(snap: Snapshot) -> RenderableType:
    when = time.strftime("%H:%M:%S", time.localtime(snap.taken_at))
    commands = ", ".join(sorted({s.label for s in snap.sources})) or "none"
    line = text(f"wcperf monitor · {when} · {len(snap.sources)} publishing process(es): {commands}")
    notes = [text(f"note: {n}", style="yellow") for n in dict.fromkeys(snap.notes)]
    return Group(line, *notes)


def pool_table(snap: Snapshot) -> Table:
    t = _table(
        "connection pools",
        "process",
        "in use",
        "idle",
        "waiting",
        "util %",
        "mean wait ms",
        "timeouts",
        "health",
        "failed checks",
    )
    for p in snap.pools:
        util_style = (
            "bold red" if p.utilisation_pct > 95 else "yellow" if p.utilisation_pct > 80 else ""
        )
        t.add_row(
            f"{p.role} ({p.source})" if p.role else p.source,
            f"{p.in_use}/{p.max_size}",
            str(p.idle),
            str(p.waiting),
            Text(f"{p.utilisation_pct:.0f}", style=util_style),
            f"{p.mean_wait_ms:.1f}",
            str(p.timeouts),
            p.health,
            str(p.consecutive_failures),
        )
    if not snap.pools:
        t.add_row("(no publishing process)", *[""] * 8)
    return t


_LATENCY = ("count", "mean", "p50", "p95", "p99", "max")


def _latency_cells(q: QueryStats | ServerQuery) -> list[str]:
    return [
        f"{q.count:,}",
        f"{q.mean_ms:.2f}",
        *(f"{q.p(pct):.2f}" for pct in (50, 95, 99)),
        f"{q.max_us / 1000:.2f}",
    ]


def _recent_cells(q: QueryStats | ServerQuery | None, shown: bool) -> list[str]:
    if not shown:
        return []
    if q is None:
        return ["0", "-", "-"]
    return [f"{q.count:,}", f"{q.p(95):.2f}", f"{q.p(99):.2f}"]


def _recent_title(snap: Snapshot) -> list[str]:
    if snap.recent is None:
        return []
    w = f"{snap.recent.window_s:.0f}s"
    return [f"count {w}", f"p95 {w}", f"p99 {w}"]


def percentile_table(snap: Snapshot, limit: int = 12, buckets: bool = True) -> Table:
    """Since start, and beside it the monitor's last window where it has one."""
    shown = BUCKETS if buckets else ()
    recent = {q.fingerprint: q for q in snap.recent.queries} if snap.recent else {}
    t = _table(
        "query percentiles (ms)",
        "pattern",
        "table",
        *_LATENCY,
        *_recent_title(snap),
        *shown,
    )
    for q in snap.top_frequent(limit):
        t.add_row(
            _short(q.normalized),
            q.table or "-",
            *_latency_cells(q),
            *_recent_cells(recent.get(q.fingerprint), snap.recent is not None),
            *(f"{q.buckets.get(b, 0):,}" for b in shown),
        )
    if snap.queries:
        overall = snap.overall()
        in_window: list[str] = []
        if snap.recent is not None:
            o = snap.recent.overall()
            in_window = [
                f"{o.get_total_count():,}",
                *(f"{hdr.percentile_ms(o, p):.2f}" for p in (95, 99)),
            ]
        t.add_row(
            Text("all queries", style="bold"),
            "",
            f"{overall.get_total_count():,}",
            "",
            *(f"{hdr.percentile_ms(overall, p):.2f}" for p in (50, 95, 99)),
            f"{overall.get_max_value() / 1000:.2f}",
            *in_window,
            *[""] * len(shown),
        )
    return t


def slow_table(snap: Snapshot, limit: int = 8) -> Table:
    t = _table("slow queries and N+1", "pattern", "table", "ms / count", "when", "where")
    for s in reversed(snap.slow[-limit:]):
        t.add_row(
            _short(s.normalized),
            s.table or "-",
            f"{s.duration_ms:.1f} ms",
            time.strftime("%H:%M:%S", time.localtime(s.at)),
            "params: " + (", ".join(s.param_types) or "none"),
        )
    for n in snap.n_plus_one[-limit:]:
        t.add_row(
            Text("N+1 ", style="bold yellow") + text(_short(n.normalized, 60)),
            n.table or "-",
            f"{n.count} in {n.window_s:g} s",
            time.strftime("%H:%M:%S", time.localtime(n.at)),
            f"{n.call_site}: {n.suggestion}",
        )
    if not snap.slow and not snap.n_plus_one:
        t.add_row("(none)", "", "", "", "")
    return t


def cache_table(snap: Snapshot) -> Table:
    t = _table(
        "query cache",
        "tier",
        "hits",
        "misses",
        "hit rate",
        "entries",
        "bytes",
        "evictions",
        "errors",
    )
    tiers = snap.cache.tiers if snap.cache else {}
    for name, c in tiers.items():
        lookups = c.hits + c.misses
        rate = f"{100 * c.hits / lookups:.0f} %" if lookups else "-"
        t.add_row(
            name,
            f"{c.hits:,}",
            f"{c.misses:,}",
            rate,
            *("-" if v is None else f"{v:,}" for v in (c.entries, c.bytes, c.evictions, c.errors)),
        )
    redis = snap.database.redis if snap.database else None
    if redis:
        rate = f"{redis.hit_rate_pct:.0f} %" if redis.hit_rate_pct is not None else "-"
        t.add_row(
            "redis server",
            f"{redis.keyspace_hits:,}",
            f"{redis.keyspace_misses:,}",
            rate,
            f"{redis.keys:,}",
            str(redis.used_memory_human or "-"),
            "-",
            "-",
        )
    if not tiers and not redis:
        note = snap.database.redis_note if snap.database else ""
        t.add_row(note or "(no cache figures published yet)", *[""] * 7)
    return t


def throttle_table(snap: Snapshot) -> Table | Text:
    """Bulk jobs at work: how far, how fast they may go, and why they are held back."""
    if not snap.throttle:
        return Text("")
    t = _table("bulk jobs", "job", "kind", "rows", "batch", "state", "why")
    for name, job in sorted(snap.throttle.items()):
        style = {"paused": "yellow", "aborted": "bold red", "slowed": "yellow"}.get(job.state, "")
        t.add_row(
            name,
            job.kind,
            f"{job.rows_done:,}/{job.rows_total:,}",
            f"{job.batch_size:,}",
            Text(job.state, style=style),
            _short(job.reason or "-", 90),
        )
    return t


def alerts_table(snap: Snapshot) -> Table:
    t = _table("alerts", "severity", "what", "source")
    for a in snap.alerts:
        t.add_row(Text(a.severity, style=_SEVERITY.get(a.severity, "")), a.message, a.source or "-")
    if not snap.alerts:
        t.add_row(Text("ok", style="green"), "every target met", "")
    return t


def database_table(snap: Snapshot) -> RenderableType:
    db = snap.database
    if db is None:
        return Text("")
    t = _table(
        "connections as the server sees them (this database)",
        "application",
        "client",
        "sessions",
        "active",
        "idle",
        "idle in xact",
        "longest idle in xact s",
        "waiting on locks",
    )
    for c in db.clients:
        t.add_row(
            c.application,
            c.client,
            str(c.sessions),
            str(c.active),
            str(c.idle),
            str(c.idle_in_transaction),
            f"{c.longest_idle_in_transaction_s:.1f}",
            str(c.waiting_on_locks),
        )
    capacity = (
        f"{db.connections} of {db.max_connections} connections on the server "
        f"({db.reserved_connections} reserved) · headroom {db.headroom} · "
        if db.max_connections
        else ""
    )
    summary = Text(
        f"{capacity}waiting on locks: {db.waiting_on_locks} · longest query "
        f"{db.longest_query_s:.1f} s · longest transaction "
        f"{db.longest_transaction_s:.1f} s"
    )
    parts: list[RenderableType] = [t, summary]
    if db.statements and db.statements[0].window_s is not None:
        s = _table(
            f"pg_stat_statements, last {db.statements[0].window_s:.1f} s (top by time)",
            "statement",
            "calls/s",
            "mean ms",
            "time ms",
            "rows",
            "blocks hit",
            "blocks read",
        )
        for st in db.statements[:8]:
            s.add_row(
                _short(st.query),
                f"{st.calls_per_s or 0:,.1f}",
                "-" if st.window_mean_ms is None else f"{st.window_mean_ms:.2f}",
                f"{st.window_total_ms or 0:,.1f}",
                f"{st.window_rows or 0:,}",
                f"{st.window_blks_hit or 0:,}",
                f"{st.window_blks_read or 0:,}",
            )
        parts.append(s)
    elif db.statements:
        s = _table(
            "pg_stat_statements since its reset (rates from the next refresh)",
            "statement",
            "calls",
            "mean ms",
            "total ms",
        )
        for st in db.statements[:6]:
            s.add_row(_short(st.query), f"{st.calls:,}", f"{st.mean_ms:.2f}", f"{st.total_ms:,.0f}")
        parts.append(s)
    elif db.statements_note:
        parts.append(text(db.statements_note, style="dim"))
    if db.index_builds:
        b = _table("index builds in progress", "index", "table", "phase", "blocks %")
        for build in db.index_builds:
            b.add_row(
                str(build.index),
                str(build.table),
                build.phase,
                "-" if build.blocks_pct is None else f"{build.blocks_pct}",
            )
        parts.append(b)
    return Group(*parts)


def server_log_table(snap: Snapshot, limit: int = 12) -> RenderableType:
    """Every application's statements as the server's log timed them."""
    log = snap.server_log
    if log is None:
        return Text("")
    title = "every application's queries (ms, from the server log"
    if 0 < log.sample_rate < 1:
        title += f", sampled at {log.sample_rate:g}: counts estimated"
    recent = (
        {(q.fingerprint, q.application): q for q in snap.recent.server_queries}
        if snap.recent
        else {}
    )
    t = _table(
        title + ")",
        "application",
        "pattern",
        *_LATENCY,
        *_recent_title(snap),
    )
    for q in log.queries[:limit]:
        t.add_row(
            q.application,
            _short(q.normalized),
            *_latency_cells(q),
            *_recent_cells(recent.get((q.fingerprint, q.application)), snap.recent is not None),
        )
    where = log.source or "not followed"
    summary = Text(
        f"{where} · {log.statements:,} statements in {log.lines:,} lines"
        + (f" · {log.rotations} rotations" if log.rotations else ""),
        style="dim",
    )
    parts: list[RenderableType] = [t, summary] if log.queries else [summary]
    if log.n_plus_one:
        loops = _table(
            "N+1 in one session (server log)", "application", "pattern", "count", "within s"
        )
        for n in log.n_plus_one[-8:]:
            loops.add_row(n.application, _short(n.normalized), f"{n.count:,}", f"{n.window_s:g}")
        parts.append(loops)
    parts += [text(note, style="yellow") for note in log.notes]
    return Group(*parts)


def trends_table(snap: Snapshot) -> RenderableType:
    """Each figure's trend over the shared minute history, and the rule behind it."""
    if not snap.trend_rule:
        return Text("")
    known = [t for t in snap.trends.values() if t.trend != "unknown"]
    if not known:
        return text(
            f"trends: {len(snap.history)} minute(s) of history so far; a trend needs 10",
            style="dim",
        )
    t = _table("trends (1-minute history)", "figure", "last 5 min", "15 min before", "trend")
    style = {"degrading": "bold red", "improving": "green"}
    for tr in known:
        t.add_row(
            tr.figure,
            f"{tr.now:g}",
            f"{tr.before:g}",
            Text(tr.trend, style=style.get(tr.trend, "")),
        )
    return Group(t, text(f"rule: {snap.trend_rule}", style="dim"))


def frame(snap: Snapshot) -> Group:
    return Group(
        header(snap),
        pool_table(snap),
        percentile_table(snap),
        slow_table(snap),
        cache_table(snap),
        throttle_table(snap),
        alerts_table(snap),
        trends_table(snap),
        database_table(snap),
        server_log_table(snap),
    )
