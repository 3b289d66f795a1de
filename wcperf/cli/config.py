"""`wcperf config`: the settings this command line resolved, and where each came from."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from wcperf.cli.context import out, state
from wcperf.cli.render import cell, emit_json
from wcperf.urls import mask_url

app = typer.Typer(  # its help: wcperf.cli.commands
    no_args_is_help=True,
)

_URLS = ("database_url", "redis_url", "pg_environment")


def rows(ctx: typer.Context) -> list[tuple[str, Any, str]]:
    """The settings tree as (name, value, origin), passwords masked."""
    return [
        (name, mask_url(value) if name in _URLS and value else value, origin)
        for name, value, origin in state(ctx).settings.shown()
    ]


@app.command()
def show(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every setting with its value and origin: `default`, `$VARIABLE` or `--flag`.

    The cache secret is never printed, only whether one was given; URLs have their
    passwords masked. Servers are shown as configured: which one answers is what each
    command's `using ...` line and `wcperf db status` say.
    """
    found = rows(ctx)
    if json_out:
        emit_json({name: {"value": value, "from": origin} for name, value, origin in found})
        return
    t = Table(title="wcperf settings", title_justify="left", show_edge=False, pad_edge=False)
    t.add_column("setting", no_wrap=True)
    t.add_column("value", overflow="fold")
    t.add_column("from", no_wrap=True)
    for name, value, origin in found:
        t.add_row(name, "-" if value is None else cell(value), origin)
    out.print(t)
