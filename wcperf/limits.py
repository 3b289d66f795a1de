"""Bounds on every number a user gives, so that a typo is refused, not run.

`--users 1000000000` or `duration = inf` would otherwise run until killed, and
`nan` passes every comparison. Each bound is far beyond any real use and far
below what would take the machine or the database down.
"""

from __future__ import annotations

import math

from wcperf.errors import ConfigError
from wcperf.redact import shown

MAX_USERS = 10_000
MAX_PROCESSES = 64
MAX_SPAWN_RATE = 10_000.0
MAX_DURATION_S = 7 * 86_400.0
MAX_THINK_MS = 600_000
MAX_WEIGHT = 1_000_000
MAX_TARGET = 1e9
MAX_BATCH_ROWS = 1_000_000
MAX_SLEEP_MS = 60_000.0
MAX_TARGET_BATCH_MS = 600_000.0
MAX_STUDENTS = 10_000_000
MAX_INTERVAL_S = 3_600.0


def problem(value: object, low: float, high: float, *, whole: bool = False) -> str | None:
    """What is wrong with `value` as a finite number in [low, high] (whole if asked)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {shown(repr(value))}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if whole and not isinstance(value, int):
        return f"must be a whole number, not {value!r}"
    if not low <= value <= high:
        given = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        return f"must be between {low:,g} and {high:,g}, not {given}"
    return None


def number(name: str, value: object, low: float, high: float, *, whole: bool = False) -> float:
    """`value` if it is a finite number in [low, high] (whole if asked), else ConfigError."""
    if (wrong := problem(value, low, high, whole=whole)) is not None:
        raise ConfigError(f"{name} {wrong}")
    return value  # type: ignore[return-value]


def whole(name: str, value: object, low: int, high: int) -> int:
    return int(number(name, value, low, high, whole=True))
