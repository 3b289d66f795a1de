"""Errors a user can act on.

Anything raised as a `WcperfError` is shown as one line (never a traceback unless
`--debug`) and ends the command with its exit code. Messages must never carry a
password or a PHI value: callers pass masked URLs and counts, not rows.
"""

from __future__ import annotations

EXIT_USAGE = 2


class WcperfError(Exception):
    exit_code = EXIT_USAGE


class ConfigError(WcperfError):
    """Bad settings: a malformed URL, an unknown environment name."""


class ConnectError(WcperfError):
    """A server that cannot be reached, refuses us, or lacks the database."""


class RefusedError(WcperfError):
    """The command would overwrite or damage data and was not told to."""


def database_message(exc: BaseException) -> str | None:
    """A PostgreSQL error as one line a user can act on, or None if it is not one.

    The primary message, the object at fault (constraint, table, column, type, as the
    server names them) and the HINT, but never DETAIL, which can quote row values
    ("Key (email)=(...) already exists"); a HINT that quotes a literal is left out too.
    """
    import psycopg

    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    if not isinstance(orig, psycopg.Error):
        return None
    diag = orig.diag
    text = diag.message_primary or type(orig).__name__
    where = [
        f"{label} {value}"
        for label, value in (
            ("constraint", diag.constraint_name),
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("type", diag.datatype_name),
        )
        if value
    ]
    if where:
        text += f" ({', '.join(where)})"
    hint = diag.message_hint
    if hint and "'" not in hint:
        text += f"; hint: {hint}"
    return f"{text} [{orig.sqlstate}]" if orig.sqlstate else text


def error_cause(exc: BaseException) -> str:
    """What went wrong, fit for a report: a database error's message with any quoted input
    value cut out (`invalid input syntax for type uuid: "..."`), else the error's type."""
    import re

    found = database_message(exc)
    if found is not None:
        return re.sub(r'(: )"[^"]*"', r'\1"…"', re.sub(r"'[^']*'", "'…'", found))
    if isinstance(exc, WcperfError):
        return str(exc)
    return type(exc).__name__
