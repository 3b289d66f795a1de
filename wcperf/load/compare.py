"""Two load results side by side: what changed, whether it is a regression, and
whether the two runs can be compared at all (wcperf.load.meta)."""

from __future__ import annotations

from typing import Any

from wcperf.load.meta import differences

FIGURES = ("p50_ms", "p95_ms", "p99_ms", "rps")
HIGHER_IS_BETTER = {"rps"}


def _change(before: float, after: float) -> float | None:
    return round(100 * (after - before) / before, 1) if before else None


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per operation (and overall): each figure before and after, and the % change."""
    rows = []
    names = ["overall", *sorted(set(before["operations"]) | set(after["operations"]))]
    for name in names:
        a = before["overall"] if name == "overall" else before["operations"].get(name)
        b = after["overall"] if name == "overall" else after["operations"].get(name)
        row: dict[str, Any] = {"operation": name}
        for f in FIGURES:
            x = a.get(f) if a else None
            y = b.get(f) if b else None
            row[f] = {
                "before": x,
                "after": y,
                "change_pct": _change(x, y) if x is not None and y is not None else None,
            }
        rows.append(row)
    return {
        "before": _summary(before),
        "after": _summary(after),
        "rows": rows,
        "warnings": differences(before.get("meta") or {}, after.get("meta") or {}),
    }


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    meta = result.get("meta") or {}
    return {
        "scenario": result.get("scenario"),
        "started_at": meta.get("started_at"),
        "users": result.get("users"),
        "processes": result.get("processes"),
        "seconds": result.get("seconds"),
    }


def regressions(comparison: dict[str, Any], threshold_pct: float) -> list[str]:
    """Each figure that got worse by more than `threshold_pct`, one line each: a
    percentile that rose, or a throughput that fell."""
    found = []
    for row in comparison["rows"]:
        for f in FIGURES:
            change = row[f]["change_pct"]
            if change is None:
                continue
            worse = -change if f in HIGHER_IS_BETTER else change
            if worse > threshold_pct:
                label = "throughput" if f == "rps" else f[:-3].upper()
                unit = "/s" if f == "rps" else " ms"
                found.append(
                    f"{row['operation']} {label} {change:+.1f} % "
                    f"({row[f]['before']:.2f} → {row[f]['after']:.2f}{unit})"
                )
    return found
