"""`wcperf monitor`: live tables, one merged Snapshot, Prometheus exposition."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from wcperf import limits
from wcperf.cli.context import err, out, postgres, redis_endpoint, settings_for
from wcperf.db import admin
from wcperf.errors import ConfigError
from wcperf.observe.collect import Collector
from wcperf.observe.history import History
from wcperf.observe.log_files import LogUnreadable
from wcperf.observe.prometheus import Exporter, check_bind, server
from wcperf.observe.server_watch import LogWatch
from wcperf.observe.statements import StatementRates
from wcperf.observe.windows import Windows
from wcperf.settings import PortSettings, Settings
from wcperf.views import live as live_view
from wcperf.views.tables import frame

app = typer.Typer(  # its help: wcperf.cli.commands
    no_args_is_help=True,
)


def _server_log_option() -> Any:
    return typer.Option(
        None,
        "--server-log",
        metavar="PATH|auto",
        help="Also time every application's statements from PostgreSQL's own log (jsonlog "
        "or csvlog; the server must log durations): a log file, the log folder or the data "
        "directory on this host, or 'auto' to read the current file through the server "
        "(pg_monitor and pg_read_server_files, or superuser). Default: $WCPERF_SERVER_LOG.",
    )


@contextlib.contextmanager
def _collector(
    ctx: typer.Context, server_log: str | None = None, *, from_start: bool = False
) -> Iterator[tuple[Collector, str, Settings]]:
    """The monitor's collection, with the database URL and settings it resolved (once:
    resolving again would announce the servers again)."""
    url, settings = postgres(ctx, "monitor", statements=True)
    endpoint = redis_endpoint(ctx, "monitor")
    client = None
    note = "" if endpoint.url else f"Redis unavailable ({endpoint.note}): database side only"
    if endpoint.url:
        import redis

        client = redis.Redis.from_url(endpoint.url, socket_timeout=1, socket_connect_timeout=1)
    m = settings.monitor
    spec = m.server_log if server_log is None else server_log
    conn = watch = None
    try:
        conn = admin.connect(url, application_name=settings.application_name, autocommit=True)
        if spec:
            watch = LogWatch(
                spec,
                lambda: admin.connect(
                    url, application_name=settings.application_name, autocommit=True
                ),
                from_start=from_start,
                n_plus_one=(m.n_plus_one_threshold, m.n_plus_one_window_s),
                own_application=settings.application_name,
            )
            try:
                watch.check()
            except LogUnreadable as exc:
                raise ConfigError(f"--server-log {spec}: {exc}") from None
        rates, windows = StatementRates(), Windows()
        history = History(client, settings.redis_prefix)
        yield (
            Collector(
                conn,
                client,
                settings.redis_prefix,
                settings.monitor.targets,
                redis_note=note,
                server_log=watch,
                statements=rates,
                windows=windows,
                history=history,
            ),
            url,
            settings,
        )
    finally:
        if watch is not None:
            watch.close()
        if conn is not None:
            conn.close()
        if client is not None:
            client.close()


@app.command()
def live(
    ctx: typer.Context,
    interval: float = typer.Option(
        1.0, min=0.1, max=limits.MAX_INTERVAL_S, help="Seconds between refreshes."
    ),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit."),
    server_log: str | None = _server_log_option(),
) -> None:
    """A full-screen monitor on a terminal: tabs of tables that scroll inside
    themselves, sort, filter, a last-minute / since-start switch, a drill-down per
    statement with its generic plan, sparklines of the history; `?` lists the keys,
    `q` quits. Into a pipe or with --once: plain tables (NO_COLOR respected).

    With --server-log, the server's log is followed from now on (with --once, from
    the start of its current file).
    """
    interval = limits.number("--interval", interval, 0.1, limits.MAX_INTERVAL_S)  # nan, too
    with _collector(ctx, server_log, from_start=once) as (collector, url, settings):
        if once:
            out.print(frame(collector.collect()))
            return
        if not (out.is_terminal and sys.stdin.isatty()):
            live_view.run(collector.collect, out, interval)
            return
        from wcperf.views.monitor_app import MonitorApp

        with _planner(url, settings.application_name) as explain:
            MonitorApp(collector.collect, interval, points=collector.points, explain=explain).run()


@contextlib.contextmanager
def _planner(url: str, application_name: str) -> Iterator[Callable[[str], str]]:
    """Generic plans on a connection of their own, opened at the first drill-down."""
    import threading

    from wcperf.observe.plans import generic_plan

    held: list[Any] = []
    lock = threading.Lock()

    def explain(sql: str) -> str:
        with lock:
            if not held:
                held.append(admin.connect(url, application_name=application_name))
            return generic_plan(held[0], sql)

    try:
        yield explain
    finally:
        for conn in held:
            conn.close()


@app.command()
def snapshot(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json"),
    server_log: str | None = _server_log_option(),
) -> None:
    """One merged Snapshot of every live publisher and the servers' own view.

    With --server-log, every application's statements in the server's current log
    file, from its start.
    """
    with _collector(ctx, server_log, from_start=True) as (collector, _, _):
        snap = collector.collect()
    if json_out:
        out.print(snap.to_json(derived=True), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(frame(snap))


@app.command()
def check(
    ctx: typer.Context,
    window: float = typer.Option(
        5.0, min=1.0, max=300.0, help="Seconds between the two readings that are judged."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    server_log: str | None = _server_log_option(),
) -> None:
    """A health verdict for probes, judged on the last WINDOW seconds.

    Exits 0 healthy, 1 degraded, 2 critical, 3 cannot tell (the database is not
    reachable, or nothing is measured), as monitoring plugins do; the reasons are
    printed one per line. A P99 over its target is critical; pool use over 80 % or
    more than 5 waiting, a cache hit rate under 80 %, N+1 and P50/P95 over target
    are degraded (targets: $WCPERF_TARGETS).
    """
    import sys
    import time

    from wcperf.errors import WcperfError
    from wcperf.observe.health import Health, Status, health

    window = limits.number("--window", window, 1.0, 300.0)
    try:
        with _collector(ctx, server_log) as (collector, _, _):
            collector.collect()
            time.sleep(window)
            verdict = health(collector.collect())
    except WcperfError as exc:
        verdict = Health(Status.UNKNOWN, [f"cannot tell: {exc}"])
    if json_out:
        out.print_json(data=verdict.to_dict())
    else:
        out.print(f"wcperf {verdict.status.word}", markup=False, highlight=False)
        for reason in verdict.reasons:
            out.print(reason, markup=False, highlight=False, soft_wrap=True)
    sys.exit(int(verdict.status))


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(PortSettings().metrics, min=1, max=65535),
    token: str | None = typer.Option(
        None,
        envvar="WCPERF_METRICS_TOKEN",
        help="Require `Authorization: Bearer TOKEN`; needed to bind anything but localhost.",
    ),
    server_log: str | None = _server_log_option(),
) -> None:
    """Prometheus exposition of the same figures, collected afresh on every scrape."""
    check_bind(host, token)
    with _collector(ctx, server_log) as (collector, _, _):
        httpd = server(Exporter(collector.collect, lambda: collector.published), host, port, token)
        err.print(
            f"serving metrics on http://{host}:{httpd.server_port}/metrics "
            f"({'bearer token required' if token else 'no token'}); Ctrl-C stops"
        )
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()


@app.command()
def rules(
    ctx: typer.Context,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the rule file here instead of printing it."
    ),
) -> None:
    """Prometheus alerting rules from the targets ($WCPERF_TARGETS), for `monitor serve`'s
    metrics: pool 80 / 95 %, more than 5 waiting, P50 / P95 / P99, cache hit rate, N+1,
    a bulk job paused or aborted. `deploy/prometheus/wcperf-rules.yml` is this for the
    default targets."""
    from wcperf.observe.rules import render

    text = render(settings_for(ctx, "monitor").monitor.targets)
    if output is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True, end="")
        return
    try:
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(text)
        tmp.replace(output)
    except OSError as exc:
        raise ConfigError(f"--output {output}: {exc.strerror or exc}") from None
    err.print(f"wrote {output}")
