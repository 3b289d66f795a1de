"""The Snapshot as Prometheus metrics, rendered afresh on every scrape.

Labels are fingerprints, table names, sources and states: no statement text and no
value, so nothing a label carries can be PHI.
"""

from __future__ import annotations

import errno
import hmac
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from wcperf.errors import ConfigError
from wcperf.observe.snapshot import Snapshot
from wcperf.redact import shown

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SnapshotCollector:
    def __init__(self, fetch: Callable[[], Snapshot]) -> None:
        self._fetch = fetch

    def collect(self) -> Iterator[Metric]:
        snap = self._fetch()
        yield GaugeMetricFamily(
            "wcperf_publishers", "wcperf processes publishing snapshots", value=len(snap.sources)
        )
        used = GaugeMetricFamily(
            "wcperf_pool_connections", "Pool connections by state", labels=["source", "state"]
        )
        waiting = GaugeMetricFamily(
            "wcperf_pool_waiting_requests", "Requests waiting for a connection", labels=["source"]
        )
        util = GaugeMetricFamily(
            "wcperf_pool_utilisation_ratio", "In use / max size", labels=["source"]
        )
        timeouts = CounterMetricFamily(
            "wcperf_pool_timeouts", "Acquire timeouts", labels=["source"]
        )
        failures = GaugeMetricFamily(
            "wcperf_pool_health_failures", "Consecutive failed health checks", labels=["source"]
        )
        for p in snap.pools:
            used.add_metric([p.source, "in_use"], p.in_use)
            used.add_metric([p.source, "idle"], p.idle)
            waiting.add_metric([p.source], p.waiting)
            util.add_metric([p.source], p.utilisation_pct / 100)
            timeouts.add_metric([p.source], p.timeouts)
            failures.add_metric([p.source], p.consecutive_failures)
        yield from (used, waiting, util, timeouts, failures)

        labels = ["fingerprint", "table"]
        count = CounterMetricFamily("wcperf_queries", "Statements executed", labels=labels)
        errors = CounterMetricFamily("wcperf_query_errors", "Statements that failed", labels=labels)
        latency = GaugeMetricFamily(
            "wcperf_query_latency_seconds",
            "Latency percentiles (HDR, merged across processes)",
            labels=[*labels, "quantile"],
        )
        dist = HistogramMetricFamily(
            "wcperf_query_duration_seconds",
            "Duration buckets (fast < 0.1 s, medium < 0.5 s, slow <= 1 s)",
            labels=labels,
        )
        for q in snap.queries:
            key = [q.fingerprint, q.table or ""]
            count.add_metric(key, q.count)
            errors.add_metric(key, q.errors)
            for pct in (50, 95, 99):
                latency.add_metric([*key, f"0.{pct}"], q.p(pct) / 1000)
            b = q.buckets
            dist.add_metric(
                key,
                buckets=[
                    ("0.1", b.get("fast", 0)),
                    ("0.5", b.get("fast", 0) + b.get("medium", 0)),
                    ("1.0", b.get("fast", 0) + b.get("medium", 0) + b.get("slow", 0)),
                    ("+Inf", q.count),
                ],
                sum_value=q.total_us / 1e6,
            )
        yield from (count, errors, latency, dist)

        yield GaugeMetricFamily(
            "wcperf_slow_queries", "Slow queries kept (last 100)", value=len(snap.slow)
        )
        yield GaugeMetricFamily(
            "wcperf_n_plus_one_detections", "N+1 detections kept", value=len(snap.n_plus_one)
        )
        alerts = GaugeMetricFamily("wcperf_alerts", "Active alerts", labels=["severity", "code"])
        tally: dict[tuple[str, str], int] = {}
        for a in snap.alerts:
            tally[(a.severity, a.code)] = tally.get((a.severity, a.code), 0) + 1
        for (severity, code), n in sorted(tally.items()):
            alerts.add_metric([severity, code], n)
        yield alerts
        tiers = snap.cache.tiers if snap.cache else {}
        if tiers:
            hits = CounterMetricFamily("wcperf_cache_hits", "Cache hits", labels=["tier"])
            misses = CounterMetricFamily("wcperf_cache_misses", "Cache misses", labels=["tier"])
            for tier, c in tiers.items():
                hits.add_metric([tier], c.hits)
                misses.add_metric([tier], c.misses)
            yield from (hits, misses)
        if snap.database is not None:
            sessions = GaugeMetricFamily(
                "wcperf_db_sessions", "pg_stat_activity sessions", labels=["application", "state"]
            )
            for row in snap.database.activity:
                sessions.add_metric([row.application, row.state], row.sessions)
            yield sessions
            yield GaugeMetricFamily(
                "wcperf_db_waiting_on_locks",
                "Sessions waiting on a lock",
                value=snap.database.waiting_on_locks,
            )


def registry_for(fetch: Callable[[], Snapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(fetch))
    return registry


def exposition(fetch: Callable[[], Snapshot]) -> str:
    return generate_latest(registry_for(fetch)).decode()


def check_bind(host: str, token: str | None) -> None:
    if host not in LOCAL_HOSTS and not token:
        raise ConfigError(
            f"refusing to serve metrics on {shown(host)} without --token: "
            "bind 127.0.0.1 or require a bearer token"
        )


def _guarded(app: Any, token: str | None) -> Any:
    if not token:
        return app
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(given, expected):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")]
            )
            return [b"missing or wrong bearer token\n"]
        served: Iterable[bytes] = app(environ, start_response)
        return served

    return guarded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


def server(fetch: Callable[[], Snapshot], host: str, port: int, token: str | None) -> WSGIServer:
    """The exposition server; a host that does not resolve or a port in use is a ConfigError."""
    check_bind(host, token)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"--host {shown(host)}: no such address") from None
    app = _guarded(make_wsgi_app(registry_for(fetch)), token)
    server_class = _Server6 if family == socket.AF_INET6 else WSGIServer
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as exc:
        why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or "refused"
        raise ConfigError(f"cannot serve on {shown(host)} port {port}: {why}") from None
