"""Replaying a scenario: worker processes, their results merged exactly, figures, verdict.

The load runs in worker processes (`wcperf.load.worker`), never in the caller:
gevent must patch before psycopg is imported, and the caller has imported it.
Users are split across `processes`; each worker's HDR histograms (per operation
and per SQL fingerprint) are merged bucket by bucket, so percentiles over all
processes are exact, not averages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from wcperf.errors import WcperfError
from wcperf.load.scenario import Scenario
from wcperf.observe import histogram as hdr

PERCENTILES = (50, 95, 99)


def _figures(h: HdrHistogram, count: int, errors: int, seconds: float) -> dict[str, Any]:
    return {
        "count": count,
        "errors": errors,
        "rps": round(count / seconds, 1) if seconds else 0.0,
        **{f"p{p}_ms": hdr.percentile_ms(h, p) for p in PERCENTILES},
        "max_ms": h.get_max_value() / 1000 if count else 0.0,
        "hdr": hdr.encode(h),
    }


def merge(parts: list[dict[str, Any]], scenario: Scenario, processes: int) -> dict[str, Any]:
    """The workers' results as one: histograms merged exactly, counts and peaks added."""
    seconds = max(p["seconds"] for p in parts)
    ops: dict[str, tuple[HdrHistogram, int]] = {}
    for part in parts:
        for op, r in part["operations"].items():
            h, errs = ops.get(op, (hdr.new_histogram(), 0))
            h.add(hdr.decode(r["hdr"]))
            ops[op] = (h, errs + r["errors"])
    operations = {
        op: _figures(h, h.get_total_count(), errs, seconds) for op, (h, errs) in ops.items()
    }
    overall = hdr.new_histogram()
    for h, _ in ops.values():
        overall.add(h)
    total_errors = sum(e for _, e in ops.values())
    queries: dict[str, dict[str, Any]] = {}
    for part in parts:
        for q in part["queries"]:
            into = queries.setdefault(
                q["fingerprint"],
                {"normalized": q["normalized"], "count": 0, "errors": 0, "h": hdr.new_histogram()},
            )
            into["count"] += q["count"]
            into["errors"] += q["errors"]
            into["h"].add(hdr.decode(q["hdr"]))
    cache = {"hits": 0, "misses": 0}
    for part in parts:
        for k in cache:
            cache[k] += int((part.get("cache") or {}).get(k, 0))
    lookups = cache["hits"] + cache["misses"]
    pool = {
        "processes": processes,
        "max_size": sum(p["pool"]["max_size"] for p in parts),
        "peak_in_use": sum(p["pool"]["peak_in_use"] for p in parts),
        "peak_waiting": sum(p["pool"]["peak_waiting"] for p in parts),
        "requests_queued": sum(p["pool"]["requests_queued"] for p in parts),
        "timeouts": sum(p["pool"]["timeouts"] for p in parts),
    }
    queued = pool["requests_queued"]
    pool["mean_wait_ms"] = (
        round(sum(p["pool"]["wait_ms_total"] for p in parts) / queued, 1) if queued else 0.0
    )
    pool["peak_utilisation_pct"] = round(100 * pool["peak_in_use"] / pool["max_size"], 1)
    count = overall.get_total_count()
    return {
        "scenario": scenario.name,
        "users": sum(p["users"] for p in parts),
        "processes": processes,
        "seconds": seconds,
        "warmup_s": scenario.warmup_s,
        "overall": {
            **_figures(overall, count, total_errors, seconds),
            "error_pct": round(100 * total_errors / count, 3) if count else 0.0,
        },
        "operations": operations,
        "queries": sorted(
            (
                {"fingerprint": fp, "normalized": q["normalized"]}
                | _figures(q["h"], q["count"], q["errors"], seconds)
                for fp, q in queries.items()
            ),
            key=lambda q: q["count"],
            reverse=True,
        ),
        "cache": {
            **cache,
            "hit_rate_pct": round(100 * cache["hits"] / lookups, 1) if lookups else None,
        },
        "pool": pool,
        "n_plus_one": [n for p in parts for n in p["n_plus_one"]],
    }


def replay(
    scenario: Scenario,
    database_url: str,
    *,
    processes: int = 1,
    seed: int = 1,
    env: dict[str, str] | None = None,
    tick: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run the scenario in `processes` workers and return the merged result."""
    if scenario.path is None:
        raise WcperfError("a scenario to replay must come from a file")
    if processes < 1 or processes > scenario.users:
        raise WcperfError(f"--processes must be between 1 and the {scenario.users} users")
    shares = [
        scenario.users // processes + (i < scenario.users % processes) for i in range(processes)
    ]
    child_env = {**os.environ, **(env or {}), "WCPERF_DATABASE_URL": database_url}
    with tempfile.TemporaryDirectory(prefix="wcperf-load-") as tmp:
        outs = [Path(tmp) / f"worker-{i}.json" for i in range(processes)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wcperf.load.worker",
                    str(scenario.path),
                    str(out),
                    str(n),
                    str(scenario.spawn_rate * n / scenario.users),
                    str(scenario.duration_s),
                    str(scenario.warmup_s),
                    str(seed * 1000 + i),
                ],
                env=child_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, (n, out) in enumerate(zip(shares, outs, strict=True))
        ]
        started = time.monotonic()
        try:
            while any(p.poll() is None for p in procs):
                if tick is not None:
                    tick(time.monotonic() - started)
                time.sleep(0.5)
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            raise
        failed = [p for p in procs if p.returncode != 0]
        if failed:
            last = (failed[0].stderr.read() if failed[0].stderr else "").strip().splitlines()
            raise WcperfError(
                f"a load worker failed (exit {failed[0].returncode}): "
                + (last[-1] if last else "no message")
            )
        parts = [json.loads(out.read_text()) for out in outs]
    return merge(parts, scenario, processes)
