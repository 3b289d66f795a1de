"""A running job's status as one line, for logs and pipes where no bar can be drawn.

Like gh-ost's status lines: rows done of the total, percent, rate, ETA, state and the
throttle's reason, printed at an interval and at once whenever the state changes, so
a log read later shows both the pace and every pause with its cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wcperf.jobs.runner import Progress


def eta(p: Progress) -> str:
    if p.rows_total <= 0 or p.rows_done >= p.rows_total:
        return "0s"
    if p.rows_per_s <= 0:
        return "unknown"
    seconds = int((p.rows_total - p.rows_done) / p.rows_per_s + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def line(p: Progress) -> str:
    pct = f" ({100 * p.rows_done / p.rows_total:.1f} %)" if p.rows_total else ""
    why = f"; reason: {p.reason}" if p.reason else ""
    return (
        f"job {p.job_id} {p.kind}: {p.rows_done:,}/{p.rows_total:,} rows{pct}; "
        f"{p.rows_per_s:,.0f} rows/s; ETA {eta(p)}; state {p.state}; "
        f"batch {p.batch_size:,}; batches {p.batches:,}{why}"
    )


class StatusLines:
    """Decides which progress reports become lines: a changed state or reason at once,
    otherwise one per `interval_s`."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last_at: float | None = None
        self._last_state: tuple[str, str] | None = None

    def __call__(self, p: Progress) -> str | None:
        now = self._clock()
        state = (str(p.state), p.reason)
        due = self._last_at is None or now - self._last_at >= self.interval_s
        if state == self._last_state and not due:
            return None
        self._last_at, self._last_state = now, state
        return line(p)
