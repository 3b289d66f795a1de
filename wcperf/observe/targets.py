"""Targets from SPEC.md and the alerts raised when a snapshot breaches them.

Messages hold figures, sources and normalised statements only: never a value.
"""

from __future__ import annotations

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
    overall = recent.overall() if recent is not None else snap.overall()
    within = f" in the last {recent.window_s:g} s" if recent is not None else ""
    if overall.get_total_count():
        for pct, limit in ((50, t.p50_ms), (95, t.p95_ms), (99, t.p99_ms)):
            value = hdr.percentile_ms(overall, pct)
            if value > limit:
                critical = pct == 99 or value > 2 * limit
                alerts.append(
                    Alert(
                        "critical" if critical else "warning",
                        f"p{pct}",
                        f"P{pct} {value:.1f} ms{within} is over the {limit:g} ms target",
                        value,
                        limit,
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
    loops = snap.n_plus_one
    if recent is not None:
        loops = [d for d in loops if d.at >= snap.taken_at - recent.window_s]
    if len(loops) > t.n_plus_one:
        for d in loops[-5:]:
            alerts.append(
                Alert(
                    "warning",
                    "n_plus_one",
                    f"N+1: {d.count} x `{d.normalized}` from {d.call_site} within {d.window_s:g} s",
                    d.count,
                    t.n_plus_one,
                    d.source,
                )
            )
    return alerts
