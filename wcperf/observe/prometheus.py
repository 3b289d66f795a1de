"""The Snapshot as Prometheus metrics, rendered afresh on every scrape.

Names follow postgres_exporter's conventions: `wcperf_<subsystem>_<name>_<unit>`,
base units (seconds, bytes, ratios), `_total` on counters only. Counters are summed
over processes under stable labels (what the process is, never host:pid) and carried
past a process's exit (`wcperf.observe.carry`), so they never fall. Latency is a
histogram with buckets from 0.5 ms to 10 s, built from the HDR histograms, so
`histogram_quantile()` works across processes and over any range.

Labels are fingerprints, table and application names, process kinds and states: no
statement text and no value, so nothing a label carries can be PHI.
"""

from __future__ import annotations

import errno
import functools
import hmac
import platform
import socket
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from wcperf import __version__
from wcperf.errors import ConfigError
from wcperf.observe.carry import Carry
from wcperf.observe.snapshot import ServerLog, Snapshot, Timed
from wcperf.redact import shown

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
N_PLUS_ONE_RECENT_S = 300.0

# A counter sample: (family, label values, part), part "" for a plain counter and
# "sum", "count" or a bucket bound for a histogram.
Key = tuple[str, tuple[str, ...], str]

_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wcperf_pool_acquisitions": ("Connections handed out by the pool", ("process",)),
    "wcperf_pool_queued_acquisitions": (
        "Acquisitions that waited for a free connection",
        ("process",),
    ),
    "wcperf_pool_wait_seconds": ("Time acquisitions spent waiting, summed", ("process",)),
    "wcperf_pool_timeouts": ("Acquisitions that timed out", ("process",)),
    "wcperf_queries": ("Statements executed, by normalised fingerprint", ("fingerprint", "table")),
    "wcperf_query_errors": ("Statements that failed", ("fingerprint", "table")),
    "wcperf_cache_lookups": ("Query cache lookups, by result", ("result",)),
    "wcperf_cache_tier_hits": ("Hits per cache tier", ("tier",)),
    "wcperf_cache_tier_misses": ("Misses per cache tier", ("tier",)),
    "wcperf_server_statements": (
        "Executions in the server's log (estimated where it samples), every application",
        ("fingerprint", "application"),
    ),
}
_HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wcperf_query_duration_seconds": (
        "Statement latency as wcperf's processes timed it",
        ("fingerprint", "table"),
    ),
    "wcperf_server_statement_duration_seconds": (
        "Statement latency as the server's log timed it, every application",
        ("fingerprint", "application"),
    ),
}


@functools.cache
def _slot_buckets(counts_len: int, unit_magnitude: int, half_magnitude: int) -> Any:
    """For each slot of an HDR counts array, the first of BUCKETS_S at or above its
    lowest value (len(BUCKETS_S) for +Inf only): HdrHistogram's index -> value, for
    every index at once."""
    idx = np.arange(counts_len, dtype=np.int64)
    half = 1 << half_magnitude
    bucket = (idx >> half_magnitude) - 1
    sub = (idx & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + unit_magnitude)
    bounds_us = np.array([b * 1_000_000 for b in BUCKETS_S], dtype=np.float64)
    return np.searchsorted(bounds_us, lowest, side="left")


def bucket_counts(histogram: HdrHistogram) -> list[int]:
    """Cumulative counts at each of BUCKETS_S (values at or below the bound).

    Vectorised over the counts array: walking HdrHistogram's recorded iterator in
    Python costs about 30 ms a histogram, too slow for hundreds per scrape.
    """
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    slots = _slot_buckets(
        histogram.counts_len, histogram.unit_magnitude, histogram.sub_bucket_half_count_magnitude
    )
    per = np.bincount(slots, weights=counts, minlength=len(BUCKETS_S) + 1)
    return [int(n) for n in np.cumsum(per)[: len(BUCKETS_S)]]


def _timed(into: dict[Hashable, float], family: str, labels: tuple[str, ...], q: Timed) -> None:
    if not q.count or not q.histogram:
        buckets = [0] * len(BUCKETS_S)
    else:  # decoded as encoded: no copy into a fresh histogram first
        buckets = bucket_counts(HdrHistogram.decode(q.histogram.encode("ascii")))
    for bound, n in zip(BUCKETS_S, buckets, strict=True):
        _inc(into, (family, labels, str(bound)), n)
    _inc(into, (family, labels, "count"), q.count)
    _inc(into, (family, labels, "sum"), q.total_us / 1e6)


def _inc(into: dict[Hashable, float], key: Key, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def counted(snap: Snapshot) -> dict[Hashable, float]:
    """One process's cumulative counters, under the labels they are exposed with."""
    into: dict[Hashable, float] = {}
    for p in snap.pools:
        process = (p.role or "unnamed",)
        _inc(into, ("wcperf_pool_acquisitions", process, ""), p.requests)
        _inc(into, ("wcperf_pool_queued_acquisitions", process, ""), p.requests_queued)
        _inc(into, ("wcperf_pool_wait_seconds", process, ""), p.wait_ms_total / 1000)
        _inc(into, ("wcperf_pool_timeouts", process, ""), p.timeouts)
    for q in snap.queries:
        labels = (q.fingerprint, q.table or "")
        _inc(into, ("wcperf_queries", labels, ""), q.count)
        _inc(into, ("wcperf_query_errors", labels, ""), q.errors)
        _timed(into, "wcperf_query_duration_seconds", labels, q)
    if snap.cache is not None:
        _inc(into, ("wcperf_cache_lookups", ("hit",), ""), snap.cache.hits)
        _inc(into, ("wcperf_cache_lookups", ("miss",), ""), snap.cache.misses)
        for tier, c in snap.cache.tiers.items():
            _inc(into, ("wcperf_cache_tier_hits", (tier,), ""), c.hits)
            _inc(into, ("wcperf_cache_tier_misses", (tier,), ""), c.misses)
    return into


def counted_log(log: ServerLog) -> dict[Hashable, float]:
    into: dict[Hashable, float] = {}
    for q in log.queries:
        labels = (q.fingerprint, q.application)
        _inc(into, ("wcperf_server_statements", labels, ""), q.count)
        _timed(into, "wcperf_server_statement_duration_seconds", labels, q)
    return into


class Exporter:
    """What `monitor serve` exposes: the merged Snapshot's gauges and every process's
    counters, carried past their exits.

    `fetch` reads a merged Snapshot; `published` gives the per-process Snapshots that
    reading merged (a Collector's), or None to take the merged one as one process.
    """

    def __init__(
        self,
        fetch: Callable[[], Snapshot],
        published: Callable[[], list[Snapshot]] | None = None,
        *,
        carry: Carry | None = None,
    ) -> None:
        self._fetch = fetch
        self._published = published
        self.carry = carry or Carry()

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        yield _build_info()
        try:
            snap = self._fetch()
        except Exception as exc:  # the servers are away: say so, and expose nothing stale
            yield _gauge("wcperf_up", "1 when the last reading of the servers succeeded", 0)
            yield _error(type(exc).__name__)
            return
        yield _gauge("wcperf_up", "1 when the last reading of the servers succeeded", 1)
        yield from self._counters(snap)
        yield from _gauges(snap)
        yield _gauge(
            "wcperf_scrape_duration_seconds",
            "Time this scrape took to read the servers",
            time.perf_counter() - started,
        )

    def _counters(self, snap: Snapshot) -> Iterator[Metric]:
        sources = self._published() if self._published is not None else [snap]
        by_source = {
            (s.sources[0].name if s.sources else f"#{i}"): counted(s) for i, s in enumerate(sources)
        }
        if snap.server_log is not None:
            by_source["monitor: server log"] = counted_log(snap.server_log)
        totals = self.carry.update(by_source)
        counters = {
            name: CounterMetricFamily(name, text, labels=list(labels))
            for name, (text, labels) in _COUNTERS.items()
        }
        hists: dict[str, dict[tuple[str, ...], dict[str, float]]] = {n: {} for n in _HISTOGRAMS}
        for key in sorted(totals, key=str):
            name, labels, part = cast(Key, key)
            if name in counters:
                counters[name].add_metric(list(labels), totals[key])
            else:
                hists[name].setdefault(labels, {})[part] = totals[key]
        yield from counters.values()
        for name, (text, labels) in _HISTOGRAMS.items():
            family = HistogramMetricFamily(name, text, labels=list(labels))
            for values, parts in hists[name].items():
                buckets = [(_le(b), parts.get(str(b), 0.0)) for b in BUCKETS_S]
                family.add_metric(
                    list(values),
                    buckets=[*buckets, ("+Inf", parts.get("count", 0.0))],
                    sum_value=parts.get("sum", 0.0),
                )
            yield family


def _le(bound: float) -> str:
    return repr(float(bound))


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _build_info() -> GaugeMetricFamily:
    info = GaugeMetricFamily(
        "wcperf_build_info",
        "The wcperf that exposes these metrics (always 1)",
        labels=["version", "python_version"],
    )
    info.add_metric([__version__, platform.python_version()], 1)
    return info


def _error(kind: str) -> GaugeMetricFamily:
    error = GaugeMetricFamily(
        "wcperf_scrape_error", "The last reading's failure, by exception class", labels=["kind"]
    )
    error.add_metric([kind], 1)
    return error


def _gauges(snap: Snapshot) -> Iterator[Metric]:
    yield from _pool_gauges(snap)
    yield from _cache_gauges(snap)
    yield from _job_gauges(snap)
    yield from _database_gauges(snap)
    recent = snap.taken_at - N_PLUS_ONE_RECENT_S
    n_plus_one = GaugeMetricFamily(
        "wcperf_n_plus_one_patterns",
        f"N+1 patterns detected in the last {N_PLUS_ONE_RECENT_S:g} s (side: app or server)",
        labels=["side", "table"],
    )
    tally: dict[tuple[str, str], int] = {}
    for side, found in (
        ("app", snap.n_plus_one),
        ("server", snap.server_log.n_plus_one if snap.server_log else []),
    ):
        for found_one in found:
            if found_one.at >= recent:
                key = (side, found_one.table or "")
                tally[key] = tally.get(key, 0) + 1
    for (side, table), n in sorted(tally.items()):
        n_plus_one.add_metric([side, table], n)
    yield n_plus_one
    alerts = GaugeMetricFamily(
        "wcperf_alerts",
        "wcperf's own alerts on its targets, active now",
        labels=["severity", "code"],
    )
    counts: dict[tuple[str, str], int] = {}
    for a in snap.alerts:
        counts[(a.severity, a.code)] = counts.get((a.severity, a.code), 0) + 1
    for (severity, code), n in sorted(counts.items()):
        alerts.add_metric([severity, code], n)
    yield alerts


def _pool_gauges(snap: Snapshot) -> Iterator[Metric]:
    publishers = GaugeMetricFamily(
        "wcperf_publishers", "wcperf processes publishing figures, by kind", labels=["process"]
    )
    kinds: dict[str, int] = {}
    for s in snap.sources:
        kinds[s.label] = kinds.get(s.label, 0) + 1
    for kind, n in sorted(kinds.items()):
        publishers.add_metric([kind], n)
    yield publishers
    # processes of one kind (a load test's workers) add up to one pool of that kind
    by_role: dict[str, list[Any]] = {}
    for p in snap.pools:
        by_role.setdefault(p.role or "unnamed", []).append(p)
    conns = GaugeMetricFamily(
        "wcperf_pool_connections", "Pool connections by state", labels=["process", "state"]
    )
    size = GaugeMetricFamily(
        "wcperf_pool_max_connections", "The pools' maximum size", labels=["process"]
    )
    waiting = GaugeMetricFamily(
        "wcperf_pool_waiting_requests", "Requests waiting for a connection", labels=["process"]
    )
    util = GaugeMetricFamily(
        "wcperf_pool_utilisation_ratio", "Connections in use / maximum size", labels=["process"]
    )
    failing = GaugeMetricFamily(
        "wcperf_pool_health_failures", "Consecutive failed health checks", labels=["process"]
    )
    for role, pools in sorted(by_role.items()):
        in_use, idle = sum(p.in_use for p in pools), sum(p.idle for p in pools)
        most = sum(p.max_size for p in pools)
        conns.add_metric([role, "in_use"], in_use)
        conns.add_metric([role, "idle"], idle)
        size.add_metric([role], most)
        waiting.add_metric([role], sum(p.waiting for p in pools))
        util.add_metric([role], in_use / most if most else 0.0)
        failing.add_metric([role], max(p.consecutive_failures for p in pools))
    yield from (conns, size, waiting, util, failing)


def _cache_gauges(snap: Snapshot) -> Iterator[Metric]:
    tiers = snap.cache.tiers if snap.cache else {}
    entries = GaugeMetricFamily("wcperf_cache_entries", "Entries held", labels=["tier"])
    held = GaugeMetricFamily("wcperf_cache_bytes", "Bytes held", labels=["tier"])
    for tier, c in sorted(tiers.items()):
        if c.entries is not None:
            entries.add_metric([tier], c.entries)
        if c.bytes is not None:
            held.add_metric([tier], c.bytes)
    yield from (entries, held)
    redis = snap.database.redis if snap.database else None
    if redis is not None and redis.used_memory is not None:
        yield _gauge("wcperf_redis_memory_bytes", "Redis's used_memory", redis.used_memory)
        yield _gauge("wcperf_redis_keys", "Keys in every Redis database", redis.keys)


def _job_gauges(snap: Snapshot) -> Iterator[Metric]:
    labels = ["job", "kind"]
    done = GaugeMetricFamily("wcperf_job_rows_done", "Rows a running job has done", labels=labels)
    total = GaugeMetricFamily("wcperf_job_rows", "Rows a running job will do", labels=labels)
    batch = GaugeMetricFamily("wcperf_job_batch_rows", "Rows per batch just now", labels=labels)
    pressure = GaugeMetricFamily(
        "wcperf_job_pressure_ratio", "Backpressure, 0 (none) to 1 (pause)", labels=labels
    )
    state = GaugeMetricFamily(
        "wcperf_job_state",
        "A running job's state (1 for the current one)",
        labels=[*labels, "state"],
    )
    for name, job in sorted(snap.throttle.items()):
        key = [name.removeprefix("job "), job.kind]
        done.add_metric(key, job.rows_done)
        total.add_metric(key, job.rows_total)
        batch.add_metric(key, job.batch_size)
        pressure.add_metric(key, job.pressure)
        state.add_metric([*key, job.state], 1)
    yield from (done, total, batch, pressure, state)
    db = snap.database
    if db is None:
        return
    rows = GaugeMetricFamily(
        "wcperf_bulk_jobs", "wcperf's bulk job rows, by status", labels=["status"]
    )
    changed = GaugeMetricFamily(
        "wcperf_bulk_job_last_change_timestamp_seconds",
        "When a job row of this status last changed (Unix time)",
        labels=["status"],
    )
    for status, n in sorted(db.jobs.items()):
        rows.add_metric([status], n)
        changed.add_metric([status], db.jobs_changed_at.get(status, 0.0))
    yield from (rows, changed)


def _database_gauges(snap: Snapshot) -> Iterator[Metric]:
    db = snap.database
    if db is None:
        return
    sessions = GaugeMetricFamily(
        "wcperf_db_sessions",
        "This database's client sessions by application and state",
        labels=["application", "state"],
    )
    for row in db.activity:
        sessions.add_metric([row.application, row.state], row.sessions)
    yield sessions
    yield _gauge("wcperf_db_connections", "Client backends on the server", db.connections)
    yield _gauge("wcperf_db_max_connections", "The server's max_connections", db.max_connections)
    yield _gauge(
        "wcperf_db_reserved_connections",
        "Connections reserved for superusers and reserved roles",
        db.reserved_connections,
    )
    yield _gauge("wcperf_db_waiting_on_locks", "Sessions waiting on a lock", db.waiting_on_locks)
    yield _gauge(
        "wcperf_db_longest_transaction_seconds",
        "Age of the oldest open transaction",
        db.longest_transaction_s,
    )
    yield _gauge(
        "wcperf_db_longest_query_seconds",
        "Age of the longest running statement",
        db.longest_query_s,
    )


def registry_for(exporter: Exporter) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    return registry


def exposition(fetch: Callable[[], Snapshot] | Exporter) -> str:
    exporter = fetch if isinstance(fetch, Exporter) else Exporter(fetch)
    return generate_latest(registry_for(exporter)).decode()


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


def server(
    exporter: Exporter | Callable[[], Snapshot], host: str, port: int, token: str | None
) -> WSGIServer:
    """The exposition server; a host that does not resolve or a port in use is a ConfigError."""
    check_bind(host, token)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"--host {shown(host)}: no such address") from None
    if not isinstance(exporter, Exporter):
        exporter = Exporter(exporter)
    app = _guarded(make_wsgi_app(registry_for(exporter)), token)
    server_class = _Server6 if family == socket.AF_INET6 else WSGIServer
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as exc:
        why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or "refused"
        raise ConfigError(f"cannot serve on {shown(host)} port {port}: {why}") from None
