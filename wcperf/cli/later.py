"""Command groups whose commands arrive with later work; listed so `--help` shows the shape."""

from __future__ import annotations

import typer

from wcperf.errors import WcperfError


def _group(name: str, summary: str) -> typer.Typer:
    group = typer.Typer(help=f"{summary} (not built yet)", invoke_without_command=True)

    @group.callback()
    def _not_yet() -> None:
        raise WcperfError(f"`wcperf {name}` is not built yet in this version")

    return group


loadtest = _group("loadtest", "Replay load scenarios and judge P50/P95/P99 against targets.")
