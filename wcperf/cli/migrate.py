"""`wcperf migrate`: bring the schema to head; `migrate status` shows where it is."""

from __future__ import annotations

import typer

from wcperf.cli.context import database, err, out
from wcperf.cli.render import emit_json, pairs
from wcperf.migrate import alembic_driver

app = typer.Typer(
    help="Apply wcperf's Alembic migrations (baseline schema for now).", invoke_without_command=True
)


@app.callback()
def migrate(ctx: typer.Context) -> None:
    """Upgrade the database to the newest revision; safe to re-run."""
    if ctx.invoked_subcommand is not None:
        return
    with database(ctx, "migrate") as db:
        before = alembic_driver.status(db.engine)
        if before.up_to_date:
            err.print(f"already at head ({', '.join(before.heads)})")
            return
        after = alembic_driver.upgrade(db.engine)
        err.print(f"applied {', '.join(before.pending)}; now at {', '.join(after.current)}")


@app.command()
def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
    """Current and head revisions, and what is pending. Exit 1 when behind."""
    with database(ctx, "migrate") as db:
        st = alembic_driver.status(db.engine)
    data = {
        "current": list(st.current),
        "heads": list(st.heads),
        "pending": list(st.pending),
        "up_to_date": st.up_to_date,
    }
    if json_out:
        emit_json(data)
    else:
        out.print(
            pairs(
                "migrations",
                {
                    "current": ", ".join(st.current) or "(none: empty database)",
                    "head": ", ".join(st.heads),
                    "pending": ", ".join(st.pending) or "none",
                },
            )
        )
    if not st.up_to_date:
        raise typer.Exit(1)
