"""What every command needs: settings, the servers it uses, a console."""

from __future__ import annotations

from dataclasses import dataclass, replace

import typer
from rich.console import Console

from wcperf.db import admin
from wcperf.db.engine import Database
from wcperf.db.servers import CONFIGURED, Endpoint, resolve_postgres, resolve_redis
from wcperf.settings import Settings

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@dataclass
class CliState:
    settings: Settings
    debug: bool = False
    quiet: bool = False


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def settings_for(ctx: typer.Context, command: str) -> Settings:
    return replace(state(ctx).settings, command=command)


def announce(ctx: typer.Context, *endpoints: Endpoint) -> None:
    """Say which servers this command uses (on stderr, so --json stays clean)."""
    if not state(ctx).quiet:
        line = "using " + " · ".join(e.describe() for e in endpoints)
        err.print(line, style="dim", markup=False, soft_wrap=True)


def postgres(ctx: typer.Context, command: str, *, announce_it: bool = True) -> tuple[str, Settings]:
    """Resolve, prepare (default database) and preflight the PostgreSQL to use."""
    settings = settings_for(ctx, command)
    endpoint = resolve_postgres(settings)
    assert endpoint.url is not None
    if announce_it:
        announce(ctx, endpoint)
    if endpoint.source != CONFIGURED:
        admin.ensure_database(endpoint.url)
    admin.check_postgres(endpoint.url)
    return endpoint.url, settings


def redis_endpoint(ctx: typer.Context, command: str) -> Endpoint:
    return resolve_redis(settings_for(ctx, command))


def database(ctx: typer.Context, command: str) -> Database:
    url, settings = postgres(ctx, command)
    return Database(url, settings)
