"""What every command needs: settings, the servers it uses, a console."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from wcperf.db.servers import EMBEDDED_SOURCE, LOCAL, Endpoint, resolve_postgres, resolve_redis
from wcperf.errors import ConnectError
from wcperf.settings import Settings

if TYPE_CHECKING:
    from wcperf.db.engine import Database

PLAIN_WIDTH = 1000  # off a terminal: wide enough that a table's row stays on one line


def _console(stderr: bool = False) -> Console:
    """A terminal's width on a terminal. Into a pipe or a log file (and no $COLUMNS),
    tables take the width their content needs instead of folding cells mid-word at
    80 columns: one record per line, for grep and for the reader of a log."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PLAIN_WIDTH
    return console


out = _console()
err = _console(stderr=True)


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


def postgres(
    ctx: typer.Context,
    command: str,
    *,
    announce_it: bool = True,
    create: bool = False,
    statements: bool = False,
) -> tuple[str, Settings]:
    """Resolve and preflight the PostgreSQL to use.

    Only `seed`, `demo` and `db up` pass `create`, and only on a server wcperf
    chose itself (local or embedded): a database someone named is never created.
    `statements` (the monitor) creates pg_stat_statements, but only on the
    embedded server wcperf started, which preloads it; anywhere else the monitor
    says how to enable it.
    """
    from wcperf.db import admin  # psycopg: only for commands that use the database

    settings = settings_for(ctx, command)
    endpoint = resolve_postgres(settings)
    assert endpoint.url is not None
    if announce_it:
        announce(ctx, endpoint)
    if endpoint.source in (LOCAL, EMBEDDED_SOURCE):
        name = admin.database_name(endpoint.url)
        if create:
            if admin.ensure_database(endpoint.url):
                err.print(f"created database {name} on the {endpoint.source} PostgreSQL")
        elif not admin.database_exists(endpoint.url):
            raise ConnectError(
                f"database {name} does not exist on the {endpoint.source} PostgreSQL: "
                "`wcperf seed` or `wcperf demo` creates it"
            )
    admin.check_postgres(endpoint.url)
    if statements and endpoint.source == EMBEDDED_SOURCE:
        admin.ensure_statements(endpoint.url)
    return endpoint.url, settings


def redis_endpoint(ctx: typer.Context, command: str) -> Endpoint:
    return resolve_redis(settings_for(ctx, command))


def database(ctx: typer.Context, command: str, *, create: bool = False) -> Database:
    from wcperf.db.engine import Database  # SQLAlchemy: only for commands that use it

    url, settings = postgres(ctx, command, create=create)
    db = Database(url, settings)
    for note in db.notes:
        err.print(f"note: {note}", style="yellow", markup=False)
    return db
