"""A load run over time: every operation's latency and errors, step by step.

One small HDR histogram per step (2 significant digits, up to 60 s) is enough for a
chart's P50/P95/P99 and merges exactly across processes, as the run's own histograms
do. A step is one second up to a ten-minute run, longer beyond, so a run keeps at
most MAX_POINTS of them whatever its length.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_POINTS = 600
HIGHEST_US = 60_000_000
DIGITS = 2


def step_for(duration_s: float) -> int:
    return max(1, math.ceil(duration_s / MAX_POINTS))


def _new() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, DIGITS)


class Timeline:
    def __init__(self, step_s: int = 1) -> None:
        self.step_s = step_s
        self._steps: dict[int, HdrHistogram] = {}
        self._errors: dict[int, int] = {}

    def record(self, us: int, failed: bool, now: float | None = None) -> None:
        at = int(time.time() if now is None else now) // self.step_s * self.step_s
        h = self._steps.get(at)
        if h is None:
            h = self._steps[at] = _new()
        h.record_value(min(max(us, 1), HIGHEST_US))
        if failed:
            self._errors[at] = self._errors.get(at, 0) + 1

    def reset(self) -> None:
        self._steps.clear()
        self._errors.clear()

    def encoded(self) -> tuple[dict[str, str], dict[str, int]]:
        """JSON-ready: step start (epoch seconds) -> HDR, and -> errors."""
        steps = {str(at): h.encode().decode("ascii") for at, h in sorted(self._steps.items())}
        return steps, {str(at): n for at, n in sorted(self._errors.items())}


def merge(into: dict[str, str], other: dict[str, str]) -> None:
    """Another process's steps added to these, bucket by bucket."""
    for at, text in other.items():
        if at not in into:
            into[at] = text
            continue
        h = HdrHistogram.decode(into[at].encode("ascii"))
        h.add(HdrHistogram.decode(text.encode("ascii")))
        into[at] = h.encode().decode("ascii")


def points(
    steps: dict[str, str], errors: dict[str, int], step_s: int, started_at: float
) -> list[dict[str, Any]]:
    """One row per step, in order, empty steps included: throughput falls to 0 on a
    chart instead of a line drawn straight across a stall."""
    if not steps and not errors:
        return []
    ats = sorted({int(a) for a in steps} | {int(a) for a in errors})
    rows = []
    for at in range(ats[0], ats[-1] + step_s, step_s):
        text = steps.get(str(at))
        h = HdrHistogram.decode(text.encode("ascii")) if text else None
        count = int(h.get_total_count()) if h is not None else 0
        rows.append(
            {
                "at": at,
                "t_s": round(at - started_at, 3) if started_at else None,
                "count": count,
                "errors": errors.get(str(at), 0),
                "rps": round(count / step_s, 1),
                **{
                    f"p{p}_ms": (h.get_value_at_percentile(p) / 1000 if h and count else None)
                    for p in (50, 95, 99)
                },
            }
        )
    return rows
