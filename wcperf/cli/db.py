"""`wcperf db`: the embedded servers, and which servers commands use."""

from __future__ import annotations

from typing import Any

import typer

from wcperf.cli.context import err, out, settings_for
from wcperf.cli.render import emit_json, table
from wcperf.db import admin
from wcperf.db.embedded import EmbeddedPostgres, EmbeddedRedis
from wcperf.db.servers import resolve_postgres, resolve_redis
from wcperf.errors import WcperfError
from wcperf.redact import shown
from wcperf.settings import DEFAULT_DATABASE
from wcperf.urls import mask_url

app = typer.Typer(  # its help: wcperf.cli.commands
    no_args_is_help=True,
)


@app.command()
def up(
    ctx: typer.Context,
    port: int | None = typer.Option(
        None, help="Also listen on 127.0.0.1:PORT (TCP). Default: Unix socket only."
    ),
) -> None:
    """Start the embedded PostgreSQL and Redis (a no-op for any already running)."""
    settings = settings_for(ctx, "db")
    pg = EmbeddedPostgres(settings.home)
    pg_status = pg.start(listen_port=port)
    assert pg_status.url is not None
    url = pg.url(DEFAULT_DATABASE, port=port)
    if admin.ensure_database(url):
        err.print(f"created database {DEFAULT_DATABASE} on the embedded PostgreSQL")
    redis_status = EmbeddedRedis(settings.home).start()
    err.print(f"embedded PostgreSQL up: {url} (pid {pg_status.pid})", markup=False)
    err.print(f"embedded Redis up: {redis_status.url} (pid {redis_status.pid})", markup=False)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the embedded servers. Their data stays in wcperf's home until you delete it."""
    settings = settings_for(ctx, "db")
    stopped_pg = EmbeddedPostgres(settings.home).stop()
    stopped_redis = EmbeddedRedis(settings.home).stop()
    err.print(f"embedded PostgreSQL: {'stopped' if stopped_pg else 'was not running'}")
    err.print(f"embedded Redis: {'stopped' if stopped_redis else 'was not running'}")


@app.command()
def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """Which servers commands would use, whether they answer, and the embedded ones' state."""
    settings = settings_for(ctx, "db")
    pg = resolve_postgres(settings, start=False)
    redis = resolve_redis(settings, start=False)
    report: dict[str, Any] = {}
    for name, endpoint, check in (
        ("postgresql", pg, admin.check_postgres),
        ("redis", redis, admin.check_redis),
    ):
        version, problem = None, endpoint.note or None
        if endpoint.url:
            try:  # connect only: a missing database is reported, never created here
                version = check(endpoint.url)
            except WcperfError as exc:
                problem = str(exc)
        report[name] = {
            "source": endpoint.source,
            "url": mask_url(endpoint.url),
            "version": version,
            "ok": version is not None,
            "problem": problem,
        }
    emb_pg = EmbeddedPostgres(settings.home).status(DEFAULT_DATABASE)
    emb_redis = EmbeddedRedis(settings.home).status()
    report["embedded"] = {
        s.name: {"running": s.running, "pid": s.pid, "location": str(s.location)}
        for s in (emb_pg, emb_redis)
    }
    if json_out:
        emit_json(report)
    else:
        out.print(
            table(
                "servers",
                ["server", "source", "url", "version", "problem"],
                [
                    [
                        n,
                        report[n]["source"],
                        report[n]["url"],
                        report[n]["version"],
                        report[n]["problem"],
                    ]
                    for n in ("postgresql", "redis")
                ],
            )
        )
        out.print(
            table(
                f"embedded (in {shown(settings.home)})",
                ["server", "running", "pid", "location"],
                [
                    [n, "yes" if v["running"] else "no", v["pid"], v["location"]]
                    for n, v in report["embedded"].items()
                ],
            )
        )
    if not report["postgresql"]["ok"] and pg.url:
        raise typer.Exit(2)
