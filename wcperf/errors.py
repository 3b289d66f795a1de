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
