"""Prometheus alerting rules from wcperf's targets, over the metrics `monitor serve`
exposes (wcperf.observe.prometheus).

The same `Targets` that judge `monitor check` and a load run's verdict set every
threshold, so `WCPERF_TARGETS=p95_ms=300 wcperf monitor rules` writes rules that
fire where wcperf's own alerts do. `deploy/prometheus/wcperf-rules.yml` is this
module's output for the default targets; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import yaml

from wcperf.settings import Targets

WINDOW = "5m"  # rate() range: at least four scrapes at Prometheus's default 1 m interval

_LATENCY = (
    # (figure, histogram, what it times)
    ("query", "wcperf_query_duration_seconds", "wcperf's statements"),
    (
        "server_statement",
        "wcperf_server_statement_duration_seconds",
        "the server-logged statements",
    ),
)


def _alert(
    name: str, expr: str, severity: str, summary: str, for_: str = "1m", **extra: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, **extra},
    }


def _ms(ms: float) -> str:
    return f"{ms:g} ms"


def rules(t: Targets) -> dict[str, Any]:
    """The rule file as data: recording rules for the percentiles, then the alerts."""
    warn, crit = t.pool_utilisation_pct / 100, t.pool_critical_pct / 100
    pool = [
        _alert(
            "WcperfPoolBusy",
            f"max by (process) (wcperf_pool_utilisation_ratio) > {warn:g}",
            "warning",
            f"{{{{ $labels.process }}}}: pool at {{{{ $value | humanizePercentage }}}} "
            f"(target under {t.pool_utilisation_pct:g} %)",
            "2m",
        ),
        _alert(
            "WcperfPoolExhausted",
            f"max by (process) (wcperf_pool_utilisation_ratio) > {crit:g}",
            "critical",
            f"{{{{ $labels.process }}}}: pool at {{{{ $value | humanizePercentage }}}} "
            f"(critical above {t.pool_critical_pct:g} %)",
        ),
        _alert(
            "WcperfPoolWaitQueue",
            f"sum by (process) (wcperf_pool_waiting_requests) > {t.pool_waiting:g}",
            "warning",
            f"{{{{ $labels.process }}}}: {{{{ $value }}}} requests waiting for a connection "
            f"(more than {t.pool_waiting:g})",
        ),
        _alert(
            "WcperfServerConnectionsBusy",
            "wcperf_db_connections / (wcperf_db_max_connections - wcperf_db_reserved_connections)"
            f" > {warn:g}",
            "warning",
            "the server's usable connections are {{ $value | humanizePercentage }} used",
            "2m",
        ),
        _alert(
            "WcperfServerConnectionsExhausted",
            "wcperf_db_connections / (wcperf_db_max_connections - wcperf_db_reserved_connections)"
            f" > {crit:g}",
            "critical",
            "the server's usable connections are {{ $value | humanizePercentage }} used",
        ),
        _alert(
            "WcperfLockWaits",
            f"wcperf_db_waiting_on_locks > {t.pool_waiting:g}",
            "warning",
            "{{ $value }} sessions waiting on locks",
        ),
    ]
    recording: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    for figure, histogram, what in _LATENCY:
        for pct, target in ((50, t.p50_ms), (95, t.p95_ms), (99, t.p99_ms)):
            record = f"wcperf:{figure}_duration_seconds:p{pct}_rate{WINDOW}"
            recording.append(
                {
                    "record": record,
                    "expr": f"histogram_quantile(0.{pct}, sum by (le) "
                    f"(rate({histogram}_bucket[{WINDOW}])))",
                }
            )
            # the platform's reviews: a P99 over target is critical, P50/P95 degraded
            severity = "critical" if pct == 99 else "warning"
            name = "Wcperf" + "".join(w.title() for w in figure.split("_")) + f"P{pct}Slow"
            latency.append(
                _alert(
                    name,
                    f"{record} > {target / 1000:g}",
                    severity,
                    f"P{pct} of {what} is {{{{ $value | humanizeDuration }}}} over {WINDOW} "
                    f"(target {_ms(target)})",
                    "5m",
                )
            )
    cache = [
        _alert(
            "WcperfCacheHitRateLow",
            f'sum(rate(wcperf_cache_lookups_total{{result="hit"}}[{WINDOW}])) '
            f"/ sum(rate(wcperf_cache_lookups_total[{WINDOW}])) < {t.cache_hit_pct / 100:g}",
            "warning",
            f"query cache hit rate {{{{ $value | humanizePercentage }}}} "
            f"(target over {t.cache_hit_pct:g} %)",
            "5m",
        ),
        _alert(
            "WcperfNPlusOne",
            f"sum by (side, table) (wcperf_n_plus_one_patterns) > {t.n_plus_one:g}",
            "warning",
            "N+1 pattern on {{ $labels.table }} ({{ $labels.side }} side): "
            "{{ $value }} in the last 5 minutes",
            "0m",
            description="Load the related rows eagerly or in one batch query; "
            "`wcperf monitor live` names the statement and its call site.",
        ),
    ]
    jobs = [
        _alert(
            "WcperfBulkJobPaused",
            'max by (job, kind) (wcperf_job_state{state="paused"}) == 1',
            "warning",
            "bulk job {{ $labels.job }} ({{ $labels.kind }}) has been paused by backpressure "
            "or an operator for 5 minutes",
            "5m",
        ),
        _alert(
            "WcperfBulkJobAborted",
            'time() - wcperf_bulk_job_last_change_timestamp_seconds{status="aborted"} < 900',
            "warning",
            "a bulk job was aborted in the last 15 minutes (`wcperf bulk list`)",
            "0m",
        ),
        _alert(
            "WcperfExporterBlind",
            "wcperf_up == 0",
            "warning",
            "wcperf's exporter cannot read the database or Redis",
            "2m",
        ),
    ]
    return {
        "groups": [
            {"name": "wcperf-recording", "rules": recording},
            {"name": "wcperf-pool", "rules": pool},
            {"name": "wcperf-latency", "rules": latency},
            {"name": "wcperf-cache", "rules": cache},
            {"name": "wcperf-jobs", "rules": jobs},
        ]
    }


HEADER = (
    "# wcperf's Prometheus alerting rules, written by `wcperf monitor rules`\n"
    "# from the targets: {given}.\n"
    "# Load them with `rule_files:` in prometheus.yml; the metrics come from\n"
    "# `wcperf monitor serve`. Their unit tests: promtool test rules wcperf-rules.test.yml\n"
)


def render(t: Targets) -> str:
    default = Targets()
    changed = [
        f"{f.name}={getattr(t, f.name):g}"
        for f in fields(t)
        if getattr(t, f.name) != getattr(default, f.name)
    ]
    given = ", ".join(changed) + " (the rest SPEC.md's)" if changed else "SPEC.md's"
    header = HEADER.format(given=given)
    body = yaml.safe_dump(rules(t), sort_keys=False, width=100, allow_unicode=True)
    return header + body
