"""`wcperf loadtest`: replay a scenario, judge it against its targets, compare two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from wcperf import limits
from wcperf.cli.context import announce, err, out, postgres, redis_endpoint, state
from wcperf.cli.render import emit_json, table
from wcperf.errors import ConfigError
from wcperf.load import launch
from wcperf.load import scenario as scenarios
from wcperf.load.compare import compare, regressions
from wcperf.load.guard import check_writes
from wcperf.load.replay import DEFAULT_PORT, Master
from wcperf.observe import phases
from wcperf.redact import shown
from wcperf.settings import parse_address

EXIT_MISSED = 1


class _RunByDefault(TyperGroup):
    """`wcperf loadtest SCENARIO ...` is `wcperf loadtest run SCENARIO ...`: anything that
    is not a subcommand's name (or the group's --help) goes to `run`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(  # its help: wcperf.cli.commands
    cls=_RunByDefault,
    no_args_is_help=True,
)


@app.command("run")
def run(
    ctx: typer.Context,
    name: str = typer.Argument(
        ..., metavar="SCENARIO", help="A bundled scenario's name (see `list`) or a TOML file."
    ),
    users: int | None = typer.Option(None, "--users", min=1, help="Simulated users."),
    spawn_rate: float | None = typer.Option(None, "--spawn-rate", min=0.001, help="Users/s."),
    duration: str | None = typer.Option(
        None, "--duration", help="Measured time: 60s, 2m, or seconds."
    ),
    warmup: str | None = typer.Option(
        None, "--warmup", help="Run first, unmeasured (default: the scenario's; 0 for none)."
    ),
    processes: int = typer.Option(
        1,
        "--processes",
        min=1,
        max=limits.MAX_PROCESSES,
        help="Worker processes here; 2 or more run under a locust master, merged exactly.",
    ),
    master: str | None = typer.Option(
        None,
        "--master",
        metavar="BIND[:PORT]",
        help="Run no users here: wait for --expect-workers started elsewhere with --worker, "
        "then judge their merged result (e.g. --master 0.0.0.0:5557).",
    ),
    expect_workers: int = typer.Option(
        1,
        "--expect-workers",
        min=1,
        max=limits.MAX_PROCESSES * 16,
        help="With --master: worker processes to wait for.",
    ),
    worker: str | None = typer.Option(
        None,
        "--worker",
        metavar="HOST[:PORT]",
        help="Run --processes workers for the master at HOST; it judges, this exits 0 when done.",
    ),
    json_path: Path | None = typer.Option(None, "--json", help="Write the whole result here."),
    html_path: Path | None = typer.Option(
        None, "--html", help="Write an HTML report here: metadata, charts over time, errors."
    ),
    csv_prefix: Path | None = typer.Option(
        None,
        "--csv",
        metavar="PREFIX",
        help="Write PREFIX_stats.csv, PREFIX_history.csv (per second) and PREFIX_failures.csv.",
    ),
    seed: int = typer.Option(1, "--seed", help="Seed of the users' random choices."),
    allow_writes: bool = typer.Option(
        False,
        "--allow-writes",
        help="Let the scenario's writes (synthetic appointments and records) run on a "
        "database that wcperf did not seed. Without it they run only on a seeded district.",
    ),
) -> None:
    """Replay a load scenario against the database and judge it against its targets.

    SCENARIO is a bundled name (`wcperf loadtest list`) or a TOML file. Each
    operation is timed at microsecond resolution (HDR, merged exactly across
    processes); the result has per-operation and per-SQL-fingerprint P50/P95/P99,
    cache hit rate, pool use and N+1 detections.

    Exit 0 when every target is met, 1 when one is missed, 2 on error or when a
    scenario that writes meets a database wcperf did not seed (see --allow-writes).
    While it runs it publishes Snapshots: `wcperf monitor live` in another terminal
    shows it.
    """
    scenario = scenarios.load(scenarios.resolve(name)).with_overrides(
        users=None if users is None else limits.whole("--users", users, 1, limits.MAX_USERS),
        spawn_rate=None
        if spawn_rate is None
        else limits.number("--spawn-rate", spawn_rate, 0.001, limits.MAX_SPAWN_RATE),
        duration_s=scenarios.parse_duration(duration, "--duration") if duration else None,
        warmup_s=_warmup(warmup),
    )
    if master and worker:
        raise ConfigError("--master and --worker are two ends: give one")
    for flag, path in (("--json", json_path), ("--html", html_path), ("--csv", csv_prefix)):
        launch.writable(flag, path)  # before any user runs or any synthetic row is written
    leader = None
    if master:
        host, port = parse_address("--master", master, DEFAULT_PORT)
        leader = Master(host, port, expect_workers)
    url, settings = postgres(ctx, f"loadtest:{scenario.name}")
    writes = check_writes(scenario, url, allow_writes)
    if writes and not state(ctx).quiet:
        err.print(
            f"{shown(scenario.name)} writes synthetic rows: {', '.join(writes)}", markup=False
        )
    endpoint = redis_endpoint(ctx, "loadtest")
    announce(ctx, endpoint)
    if worker:
        master_at = parse_address("--worker", worker, DEFAULT_PORT)
        err.print(
            f"{processes} worker(s) joining the master at {shown(worker)}; it starts the users",
            markup=False,
        )
        launch.join(
            scenario, url, master_at, processes=processes, seed=seed, redis_url=endpoint.url
        )
        err.print(
            f"{processes} worker(s) done; the master at {shown(worker)} has the result",
            markup=False,
        )
        return
    quiet = state(ctx).quiet
    outcome = launch.run(
        scenario,
        url,
        processes=processes,
        seed=seed,
        master=leader,
        redis_url=endpoint.url,
        redis_prefix=settings.redis_prefix,
        progress=None if quiet else lambda line: err.print(line, markup=False, highlight=False),
    )
    launch.write_reports(outcome, json_path, html_path, csv_prefix)
    _summary(outcome.document, outcome.faults)
    if not outcome.verdict.passed:
        raise typer.Exit(EXIT_MISSED)


def _warmup(raw: str | None) -> float | None:
    if raw is None:
        return None
    return 0.0 if raw.strip() in ("0", "0s") else scenarios.parse_duration(raw, "--warmup")


@app.command("list")
def list_scenarios() -> None:
    """The bundled scenarios: users, measured time and task weights."""
    rows = []
    for path in scenarios.available():
        s = scenarios.load(path)
        ops = ", ".join(f"{t.op} {t.weight}" for t in s.tasks)
        rows.append([s.name, s.users, f"{s.duration_s:g} s", ops])
    out.print(table("load scenarios", ["scenario", "users", "duration", "tasks"], rows))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read result {shown(path)}: {exc.strerror}") from None
    except ValueError:  # UnicodeDecodeError too
        raise ConfigError(f"{shown(path)}: not a wcperf loadtest result (JSON)") from None
    if not isinstance(data, dict) or "operations" not in data or "overall" not in data:
        raise ConfigError(f"{path} is not a wcperf loadtest --json result")
    return data


@app.command("compare")
def compare_results(
    before_path: Path = typer.Argument(..., metavar="BEFORE.json", show_default=False),
    after_path: Path = typer.Argument(..., metavar="AFTER.json", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    fail_on_regression: float | None = typer.Option(
        None,
        "--fail-on-regression",
        metavar="PCT",
        min=0.0,
        help="Exit 1 when any P50/P95/P99 rose, or throughput fell, by more than PCT %, "
        "overall or for one operation.",
    ),
) -> None:
    """Two `run --json` results side by side: P50, P95, P99 and throughput per operation.

    Warns (on stderr, and under "warnings" in --json) when the two runs are not alike:
    another scenario or its tasks changed, other users, processes or duration, another
    PostgreSQL, or datasets more than 5 % apart in any platform table. Exit 0, or 1
    with --fail-on-regression past its threshold, or 2 when a file is not a result.
    """
    if fail_on_regression is not None:
        fail_on_regression = limits.number("--fail-on-regression", fail_on_regression, 0, 1e9)
    comparison = compare(_read(before_path), _read(after_path))
    found = regressions(comparison, fail_on_regression) if fail_on_regression is not None else []
    if json_out:
        emit_json(comparison | {"threshold_pct": fail_on_regression, "regressions": found})
    else:

        def cell(d: dict[str, Any]) -> str:
            if d["before"] is None or d["after"] is None:
                return "-"
            change = f" ({d['change_pct']:+.1f} %)" if d["change_pct"] is not None else ""
            return f"{d['before']:.2f} → {d['after']:.2f}{change}"

        out.print(
            table(
                f"{before_path.name} → {after_path.name} (ms; throughput per s)",
                ["operation", "P50", "P95", "P99", "throughput"],
                [
                    [r["operation"], *(cell(r[f]) for f in ("p50_ms", "p95_ms", "p99_ms", "rps"))]
                    for r in comparison["rows"]
                ],
            )
        )
    for warning in comparison["warnings"]:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if found:
        if not json_out:
            err.print(f"regressions past {fail_on_regression:g} %:", markup=False, highlight=False)
            for line in found:
                err.print(f"  {line}", markup=False, highlight=False)
        raise typer.Exit(EXIT_MISSED)


def _summary(result: dict[str, Any], faults: str | None) -> None:
    o = result["overall"]
    out.print(
        table(
            f"{result['scenario']}: {result['users']} users, {result['processes']} process(es), "
            f"{result['seconds']:.1f} s",
            ["operation", "count", "errors", "per s", "P50 ms", "P95 ms", "P99 ms", "max ms"],
            [
                [
                    name,
                    f"{r['count']:,}",
                    r["errors"],
                    r["rps"],
                    r["p50_ms"],
                    r["p95_ms"],
                    r["p99_ms"],
                    r["max_ms"],
                ]
                for name, r in [("overall", o), *sorted(result["operations"].items())]
            ],
        )
    )
    _writes(result)
    for name, r in sorted(result["operations"].items()):
        if r.get("first_error"):
            out.print(
                f"{name}: {r['errors']} errors, first: {shown(r['first_error'])}", markup=False
            )
    c, p = result["cache"], result["pool"]
    out.print(
        f"cache hit rate {c['hit_rate_pct'] if c['hit_rate_pct'] is not None else '-'} % · "
        f"pool peak {p['peak_in_use']}/{p['max_size']} in use, {p['peak_waiting']} waiting, "
        f"mean wait {p['mean_wait_ms']} ms · N+1 detections {len(result['n_plus_one'])}",
        markup=False,
    )
    if faults:
        out.print(faults, style="yellow", markup=False)
    for check in result["verdict"]["checks"]:
        mark = {True: "met", False: "MISSED", None: "no data"}[check["passed"]]
        out.print(f"  {check['target']:<22} {check['value']!s:>10} vs {check['limit']:g}: {mark}")
    out.print("PASS" if result["verdict"]["passed"] else "FAIL: a target was missed")


def _writes(result: dict[str, Any]) -> None:
    """Where each write's time went, and the bound it is held to (`load.result.phases`)."""
    rows = []
    for name, r in sorted(result["operations"].items()):
        spent = r.get("phases") or {}
        if "bound" not in spent:
            continue
        b = spent["bound"]
        rows.append(
            [name, b["p95_ms"], b["bound_ms"], "yes" if b["within"] else "NO"]
            + [
                f"{spent[k]['mean_ms']:.2f} ({spent[k]['share_pct']:.0f} %)" if k in spent else "-"
                for k in phases.ALL
            ]
        )
    if not rows:
        return
    out.print(
        table(
            "writes: where the time went (mean ms per operation, share)",
            ["operation", "P95 ms", "bound ms", "within", *phases.ALL],
            rows,
        )
    )
    lag = result.get("scheduling") or {}
    if lag.get("probes"):
        out.print(
            f"a ready user waited for its process's CPU: P50 {lag['p50_ms']} ms,"
            f" P95 {lag['p95_ms']} ms, P99 {lag['p99_ms']} ms",
            markup=False,
        )
