"""Targets from SPEC.md and the alerts raised when a snapshot breaches them.

Messages hold figures, sources and normalised statements only: never a value.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from wcperf.observe import histogram as hdr
from wcperf.observe.snapshot import Alert, Snapshot
from wcperf.settings import Targets

__all__ = ["Targets", "evaluate"]


def evaluate(snap: Snapshot, t: Targets) -> list[Alert]:
    """Alerts on the monitor's last window where it has one, else since start.

    A P99 over its target is critical (the platform's rule); a P50 or P95 over its
    target is a warning, critical at twice the target.
    """
    alerts: list[Alert] = []
    recent = snap.recent
    within = f" in the last {recent.window_s:g} s" if recent is not None else ""
    overall = recent.overall() if recent is not None else snap.overall()
    alerts += _latency(overall, t, "", "", within)
    if snap.server_log is not None:  # every application, from the server's log
        rows = recent.server_queries if recent is not None else snap.server_log.queries
        logged = hdr.merge([q.histogram for q in rows])
        alerts += _latency(logged, t, "server_", "server-logged ", within)
    db = snap.database
    if db is not None and db.max_connections:
        usable = db.max_connections - db.reserved_connections
        used = 100.0 * db.connections / usable if usable > 0 else 100.0
        limit = t.pool_critical_pct if used > t.pool_critical_pct else t.pool_utilisation_pct
        if used > t.pool_utilisation_pct:
            alerts.append(
                Alert(
                    "critical" if used > t.pool_critical_pct else "warning",
                    "server_connections",
                    f"{db.connections} of {usable} usable server connections in use ({used:.0f} %)",
                    round(used, 1),
                    limit,
                )
            )
        if db.waiting_on_locks > t.pool_waiting:
            alerts.append(
                Alert(
                    "warning",
                    "lock_waits",
                    f"{db.waiting_on_locks} sessions waiting on locks",
                    db.waiting_on_locks,
                    t.pool_waiting,
                )
            )
    for pool in snap.pools:
        util = pool.utilisation_pct
        if util > t.pool_critical_pct:
            alerts.append(
                Alert(
                    "critical",
                    "pool_utilisation",
                    f"pool {pool.source} at {util:.0f} % of {pool.max_size}",
                    util,
                    t.pool_critical_pct,
                    pool.source,
                )
            )
        elif util > t.pool_utilisation_pct:
            alerts.append(
                Alert(
                    "warning",
                    "pool_utilisation",
                    f"pool {pool.source} at {util:.0f} % of {pool.max_size}",
                    util,
                    t.pool_utilisation_pct,
                    pool.source,
                )
            )
        if pool.waiting > t.pool_waiting:
            alerts.append(
                Alert(
                    "warning",
                    "pool_wait_queue",
                    f"high wait queue: {pool.waiting} requests waiting on pool {pool.source}",
                    pool.waiting,
                    t.pool_waiting,
                    pool.source,
                )
            )
        if pool.health == "failing":
            alerts.append(
                Alert(
                    "critical",
                    "pool_health",
                    f"pool {pool.source}: "
                    f"{pool.consecutive_failures} failed health checks in a row",
                    pool.consecutive_failures,
                    0,
                    pool.source,
                )
            )
    rate = snap.cache.hit_rate_pct if snap.cache else None
    if recent is not None and recent.cache_hit_rate_pct is not None:
        rate = recent.cache_hit_rate_pct
    if rate is not None and rate < t.cache_hit_pct:
        alerts.append(
            Alert(
                "warning",
                "cache_hit_rate",
                f"cache hit rate {rate:.0f} %{within} is under the {t.cache_hit_pct:g} % target",
                rate,
                t.cache_hit_pct,
            )
        )
    loops = snap.n_plus_one + (snap.server_log.n_plus_one if snap.server_log else [])
    if recent is not None:
        loops = [d for d in loops if d.at >= snap.taken_at - recent.window_s]
    if len(loops) > t.n_plus_one:
        for d in loops[-5:]:
            alerts.append(
                Alert(
                    "warning",
                    "n_plus_one",
                    f"N+1: {d.count} x `{d.normalized}` from "
                    f"{d.application + ' ' if d.application else ''}{d.call_site} "
                    f"within {d.window_s:g} s",
                    d.count,
                    t.n_plus_one,
                    d.source,
                )
            )
    return alerts


def _latency(overall: HdrHistogram, t: Targets, code: str, what: str, within: str) -> list[Alert]:
    alerts = []
    if overall.get_total_count():
        for pct, limit in ((50, t.p50_ms), (95, t.p95_ms), (99, t.p99_ms)):
            value = hdr.percentile_ms(overall, pct)
            if value > limit:
                critical = pct == 99 or value > 2 * limit
                alerts.append(
                    Alert(
                        "critical" if critical else "warning",
                        f"{code}p{pct}",
                        f"{what}P{pct} {value:.1f} ms{within} is over the {limit:g} ms target",
                        value,
                        limit,
                    )
                )
    return alerts
