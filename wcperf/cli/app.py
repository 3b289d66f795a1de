"""`wcperf`: the root command, global options and error handling."""

from __future__ import annotations

import os
import sys

import psycopg
import typer
from sqlalchemy.exc import DBAPIError

from wcperf import __version__
from wcperf.cli import bulk as bulk_cli
from wcperf.cli import cache as cache_cli
from wcperf.cli import config as config_cli
from wcperf.cli import db as db_cli
from wcperf.cli import demo as demo_cli
from wcperf.cli import loadtest as loadtest_cli
from wcperf.cli import migrate as migrate_cli
from wcperf.cli import monitor as monitor_cli
from wcperf.cli import seed as seed_cli
from wcperf.cli.context import CliState, err
from wcperf.errors import EXIT_USAGE, WcperfError, database_message
from wcperf.redact import install as install_masking
from wcperf.redact import shown
from wcperf.settings import Settings
from wcperf.urls import check

app = typer.Typer(
    name="wcperf",
    help="Performance operations for the White Cross school health database: online index "
    "migrations, bulk jobs under backpressure, load replay and live monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wcperf {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL or libpq keyword string, or 'embedded'. Default: "
        "$WCPERF_DATABASE_URL, $DATABASE_URL, "
        "libpq's PG* variables, a server on 127.0.0.1:5432, else the embedded server in "
        "wcperf's home.",
    ),
    redis_url: str | None = typer.Option(
        None,
        "--redis-url",
        metavar="URL",
        help="Redis URL, or 'embedded'. Default: $REDIS_URL, 127.0.0.1:6379, else embedded.",
    ),
    env: str | None = typer.Option(
        None,
        "--env",
        help="production (pool of 20) or development (pool of 10). "
        "Default: $WCPERF_ENV or development.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say which servers are used."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    settings = check(Settings.from_env(database_url=database_url, redis_url=redis_url, env=env))
    ctx.obj = CliState(settings=settings, debug=debug, quiet=quiet)


app.add_typer(migrate_cli.app, name="migrate")
app.add_typer(bulk_cli.app, name="bulk")
app.command("loadtest")(loadtest_cli.loadtest)
app.add_typer(monitor_cli.app, name="monitor")
app.command("seed")(seed_cli.seed)
app.add_typer(cache_cli.app, name="cache")
app.add_typer(db_cli.app, name="db")
app.add_typer(config_cli.app, name="config")
app.command("demo")(demo_cli.demo)


REPORT = "please report it, with the command and the traceback from --debug"


def _fail(message: str, code: int) -> None:
    """One line on stderr, masked and inert whatever the message quotes, then exit."""
    err.print(f"wcperf: error: {shown(message)}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def _usage(exc: typer.TyperException) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help itself, as asked for
        typer.echo(exc.format_message())
        sys.exit(exc.exit_code)
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:  # a usage error: say where the help is
        message += f" (see '{ctx.command_path} --help')"
    _fail(message, exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("WCPERF_DEBUG"))
    install_masking()
    try:
        code = app(args=args, prog_name="wcperf", standalone_mode=False)
    except typer.TyperException as exc:
        _usage(exc)
    except typer.Abort:
        err.print("wcperf: interrupted", markup=False)
        sys.exit(130)
    except WcperfError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        err.print("wcperf: interrupted", markup=False)
        sys.exit(130)
    except (psycopg.Error, DBAPIError) as exc:
        if debug:
            raise
        message = database_message(exc)
        if message is None:
            _fail(f"unexpected {type(exc).__name__}: a bug in wcperf; {REPORT}", 1)
        _fail(f"PostgreSQL: {message}", EXIT_USAGE)
    except Exception as exc:
        if debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: a bug in wcperf; {REPORT}", 1)
    sys.exit(code if isinstance(code, int) else 0)
