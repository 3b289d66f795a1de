"""`wcperf`: the root command, global options and error handling."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from wcperf import __version__
from wcperf.cli.commands import COMMANDS
from wcperf.cli.context import CliState, err
from wcperf.errors import EXIT_USAGE, WcperfError, database_message
from wcperf.redact import install as install_masking
from wcperf.redact import shown
from wcperf.settings import Settings
from wcperf.urls import check


class _Root(TyperGroup):
    """The root group: a command is imported when it is used, not before.

    A command pays for its own libraries only (`wcperf bulk status` never loads
    alembic, locust or numpy), and `--help` lists them all from `COMMANDS` without
    importing any.
    """

    _listing = False

    # Typer's click is its own (`typer._click`): its types are spelt Any here.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self._listing:
            return TyperCommand(cmd_name, help=entry.help)
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def load_command(name: str) -> Any:
    """The click command behind `wcperf NAME`, built from its module."""
    entry = COMMANDS[name]
    found = getattr(importlib.import_module(entry.module), entry.attribute)
    # Built as a child of a group, as `add_typer` / `command` on the root would build
    # it: a group stays a group even with one command, and takes no completion options.
    parent = typer.Typer(add_completion=False)
    parent.callback()(_nothing)
    if isinstance(found, typer.Typer):
        parent.add_typer(found, name=name, help=entry.help)
    else:  # a lone command keeps its docstring as its full help
        parent.command(name, short_help=entry.help)(found)
    group = typer.main.get_command(parent)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


def _nothing() -> None:
    """The callback that makes a lone command's parent a group."""


app = typer.Typer(
    name="wcperf",
    cls=_Root,
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


def command() -> Any:
    """The whole command line as one click group."""
    return typer.main.get_command(app)


def run(args: list[str]) -> Any:
    return command().main(args=args, prog_name="wcperf", standalone_mode=False)


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


def _database_errors() -> tuple[type[BaseException], ...]:
    """The driver's and SQLAlchemy's error classes, if this run has imported them.

    Looked up, not imported: a command that never loaded psycopg cannot have raised
    one of its errors, and importing it only to say so costs a third of a second.
    """
    found = []
    for module, name in (("psycopg", "Error"), ("sqlalchemy.exc", "DBAPIError")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            found.append(getattr(loaded, name))
    return tuple(found)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("WCPERF_DEBUG"))
    install_masking()
    try:
        code = run(args)
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
    except _database_errors() as exc:
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
