"""Load replay against its floor, in one run, on the medium district (100 k students).

- a point-read scenario (one student by primary key, autocommit, no think time)
  through `wcperf loadtest` with 1, 2 and 4 processes (locust's master and its
  workers), against pgbench running the same query with the same number of
  clients (aim: at least 0.15x pgbench's rate with 2 processes, 0.3x with 4 on a
  machine with the cores); then with 2 processes at a quarter and 4x the users;
- school-day at 200 users sharing the workers' pools: P50/P95/P99;
- flu-season's writes at 20 users in one process: each write's P95 against its
  bound (twice the P95 of its own statements plus one commit), with where its
  time went (pool wait, statements, commit, cache bump, the rest).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.common import bench_database, save, student_keys
from wcperf.db import admin
from wcperf.load import scenario as scenarios
from wcperf.load.replay import replay
from wcperf.load.result import document
from wcperf.observe import phases

POINT = """
users = {clients}
spawn_rate = {clients}
duration = "{seconds}s"
warmup = "3s"
think_time_ms = [0, 0]
[[tasks]]
op = "point_read"
weight = 1
"""


def pgbench(url: str, clients: int, seconds: int, keys: int) -> float:
    """The same point read, a key picked by number from `bench_keys` in the same statement
    (no arithmetic on UUIDs; one more index probe in the server, no more round trips)."""
    exe = shutil.which("pgbench")
    if exe is None:
        raise SystemExit("pgbench is not installed: the floor cannot be measured")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(
            f"\\set n random(1, {keys})\n"
            'select s.id, s."schoolId", s.grade, s."isActive" from bench_keys k'
            " join students s on s.id = k.id where k.n = :n;\n"
        )
    run = subprocess.run(
        [exe, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
         "-f", script.name, admin.libpq_url(url)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    Path(script.name).unlink()
    match = re.search(r"tps = ([\d.]+)", run.stdout)
    assert match, run.stdout
    return float(match.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--write-users", type=int, default=20)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with bench_database("wcperf_bench_load", args.students, migrate=True) as url:
        floor = pgbench(url, args.clients, args.seconds, student_keys(url))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "point-read.toml"
            path.write_text(POINT.format(clients=args.clients, seconds=args.seconds))
            point = scenarios.load(path)
            ours = {(n, args.clients): document(replay(point, url, processes=n)) for n in (1, 2, 4)}
            for users in (args.clients // 4, args.clients * 4):
                more = point.with_overrides(users=users, spawn_rate=float(users))
                ours[(2, users)] = document(replay(more, url, processes=2))
        results["point_read"] = {
            "pgbench_tps": floor,
            "cores": os.cpu_count(),
            "runs": [
                {"processes": n, "users": u, "rps": r["overall"]["rps"],
                 "p50_ms": r["overall"]["p50_ms"], "p99_ms": r["overall"]["p99_ms"],
                 "x_pgbench": round(r["overall"]["rps"] / floor, 3)}
                for (n, u), r in ours.items()
            ],
        }  # fmt: skip
        print(
            f"point read, {args.seconds} s; pgbench with {args.clients} clients,"
            f" {os.cpu_count()} cores here:"
        )
        print(f"  pgbench (C, prepared)              {floor:10,.0f} transactions/s")
        for (n, users), r in ours.items():
            o = r["overall"]
            print(
                f"  wcperf loadtest {n} process{'es' if n > 1 else '  '} {users:3} users"
                f"  {o['rps']:10,.0f} req/s  → {o['rps'] / floor:.3f}x pgbench"
                f"   P50 {o['p50_ms']:.2f} ms  P99 {o['p99_ms']:.2f} ms"
            )
        day = scenarios.load(scenarios.resolve("school-day")).with_overrides(
            users=args.users, spawn_rate=50.0, duration_s=30.0
        )
        result = document(replay(day, url, processes=2))
        o, pool, cache = result["overall"], result["pool"], result["cache"]
        results["school_day"] = {k: v for k, v in o.items() if k != "hdr"} | {
            "pool": pool,
            "cache": cache,
        }
        print(f"school-day, {args.users} users, 2 processes, 30 s after a 10 s warm-up:")
        print(
            f"  {o['count']:,} operations, {o['rps']:,.0f}/s, errors {o['errors']}"
            f"  P50 {o['p50_ms']:.2f} ms  P95 {o['p95_ms']:.2f} ms  P99 {o['p99_ms']:.2f} ms"
        )
        print(
            f"  pool peak {pool['peak_in_use']}/{pool['max_size']} in use, peak waiting "
            f"{pool['peak_waiting']}, mean wait {pool['mean_wait_ms']} ms;"
            f" cache hit rate {cache['hit_rate_pct']} %"
        )
        flu = scenarios.load(scenarios.resolve("flu-season")).with_overrides(
            users=args.write_users, spawn_rate=float(args.write_users), duration_s=20.0
        )
        result = document(replay(flu, url, processes=1))
        lag = result["scheduling"]
        results["writes"] = {
            "users": args.write_users,
            "scheduling": lag,
            "operations": {
                name: {k: v for k, v in r.items() if k != "hdr"}
                for name, r in result["operations"].items()
            },
        }
        print(
            f"flu-season, {args.write_users} users, 1 process, 20 s: where each write's time went"
            f" (mean ms); a ready user waited P50 {lag['p50_ms']} / P95 {lag['p95_ms']} ms"
        )
        for name, r in sorted(result["operations"].items()):
            spent = r.get("phases") or {}
            if "bound" not in spent:
                continue
            b = spent["bound"]
            parts = "  ".join(f"{k} {spent[k]['mean_ms']:.2f}" for k in phases.ALL)
            print(
                f"  {name:<26} P95 {b['p95_ms']:7.2f} ms  bound {b['bound_ms']:7.2f} ms"
                f" ({'within' if b['within'] else 'OVER'})  {parts}"
            )
    print(f"results: {save('loadtest', results)}")


if __name__ == "__main__":
    main()
