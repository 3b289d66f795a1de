"""A load run's Snapshot as the document `loadtest --json` writes, the HTML report and
`loadtest compare` read: figures derived once, here, from the merged Snapshot."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from wcperf.errors import WcperfError
from wcperf.load.verdict import Verdict, error_pct
from wcperf.observe import histogram as hdr
from wcperf.observe.snapshot import OperationStats, Snapshot
from wcperf.observe.timeline import points

PERCENTILES = (50, 95, 99)


def _figures(h: HdrHistogram, errors: int, seconds: float) -> dict[str, Any]:
    count = int(h.get_total_count())
    return {
        "count": count,
        "errors": errors,
        "rps": round(count / seconds, 1) if seconds else 0.0,
        **{f"p{p}_ms": hdr.percentile_ms(h, p) for p in PERCENTILES},
        "max_ms": h.get_max_value() / 1000 if count else 0.0,
        "hdr": hdr.encode(h),
    }


def phases(op: OperationStats) -> dict[str, Any]:
    """Where an operation's time went: per phase (observe.phases, then the rest) its mean
    and share of the operation's time, and for writes P50/P95. A write also gets the
    bound it is held to: twice the P95 of its own statements plus one commit (its
    commit's P50); over it, the time went somewhere other than the server's work."""
    count = op.count
    total = sum(op.phase_ns.values())
    if not count or not total:
        return {}
    out: dict[str, Any] = {
        name: {
            "mean_ms": round(ns / count / 1e6, 3),
            "share_pct": round(100 * ns / total, 1),
        }
        for name, ns in op.phase_ns.items()
    }
    hists = {name: hdr.decode(text) for name, text in op.phases.items()}
    for name, h in hists.items():
        out[name] |= {f"p{p}_ms": hdr.percentile_ms(h, p) for p in (50, 95)}
    if "statements" in hists and "commit" in hists:
        bound = 2 * (
            hdr.percentile_ms(hists["statements"], 95) + hdr.percentile_ms(hists["commit"], 50)
        )
        p95 = hdr.percentile_ms(op.hdr, 95)
        out["bound"] = {"p95_ms": p95, "bound_ms": round(bound, 3), "within": p95 <= bound}
    return out


def document(
    snap: Snapshot, verdict: Verdict | None = None, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's figures as plain JSON: what the run was (`meta`), overall and per
    operation, over time, errors by kind, per SQL fingerprint, cache, pool, N+1,
    faults, and the verdict when there is one."""
    run = snap.load
    if run is None:
        raise WcperfError("this Snapshot holds no load run")
    seconds = run.seconds
    operations = {
        name: _figures(op.hdr, op.errors, seconds)
        | ({"first_error": op.first_error} if op.first_error else {})
        | ({"phases": spent} if (spent := phases(op)) else {})
        for name, op in run.operations.items()
    }
    lag = hdr.decode(run.scheduling)
    pool = run.pool
    cache = snap.cache
    doc: dict[str, Any] = {
        "meta": meta or {},
        "scenario": run.scenario,
        "users": run.users,
        "processes": run.processes,
        "seconds": seconds,
        "warmup_s": run.warmup_s,
        "overall": _figures(run.overall(), run.errors, seconds)
        | {"error_pct": error_pct(snap) or 0.0},
        "operations": operations,
        "timeline": points(run.timeline, run.timeline_errors, run.step_s, run.started_at),
        "timeline_step_s": run.step_s,
        "errors": sorted(
            (
                {"operation": name, "kind": kind, "count": n}
                for name, op in run.operations.items()
                for kind, n in op.error_kinds.items()
            ),
            key=lambda e: (-e["count"], e["operation"], e["kind"]),
        ),
        "queries": [
            {"fingerprint": q.fingerprint, "normalized": q.normalized}
            | _figures(q.hdr, q.errors, seconds)
            for q in sorted(snap.queries, key=lambda q: q.count, reverse=True)
        ],
        "cache": {
            "hits": cache.hits if cache else 0,
            "misses": cache.misses if cache else 0,
            "hit_rate_pct": cache.hit_rate_pct if cache else None,
            "reads": cache.read_rates() if cache else {},
        },
        "pool": {
            "processes": run.processes,
            "max_size": pool.max_size,
            "peak_in_use": pool.peak_in_use,
            "peak_waiting": pool.peak_waiting,
            "requests_queued": pool.requests_queued,
            "timeouts": pool.timeouts,
            "mean_wait_ms": pool.mean_wait_ms,
            "peak_utilisation_pct": pool.peak_utilisation_pct,
        },
        "n_plus_one": [
            {"normalized": n.normalized, "call_site": n.call_site, "count": n.count}
            for n in snap.n_plus_one
        ],
        "scheduling": {  # how long a ready user waited for its process's CPU
            "probes": int(lag.get_total_count()),
            **{f"p{p}_ms": hdr.percentile_ms(lag, p) for p in PERCENTILES},
        },
        "faults": {
            "redis_outages": run.faults.redis_outages,
            "redis_outage_s": round(run.faults.redis_outage_s, 3),
            "db_connections_lost": run.faults.db_connections_lost,
            "db_connection_errors": run.faults.db_connection_errors,
        },
    }
    if verdict is not None:
        doc["verdict"] = verdict.serialize()
    return doc
