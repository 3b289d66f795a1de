"""A load test's verdict against its scenario's targets, and two results side by side."""

from __future__ import annotations

from typing import Any

# target -> (where the figure is in a result, True when higher is better)
_FIGURES: dict[str, tuple[tuple[str, str], bool]] = {
    "p50_ms": (("overall", "p50_ms"), False),
    "p95_ms": (("overall", "p95_ms"), False),
    "p99_ms": (("overall", "p99_ms"), False),
    "error_pct": (("overall", "error_pct"), False),
    "cache_hit_pct": (("cache", "hit_rate_pct"), True),
    "pool_utilisation_pct": (("pool", "peak_utilisation_pct"), False),
    "pool_waiting": (("pool", "peak_waiting"), False),
}


TARGETS = frozenset(_FIGURES) | {"n_plus_one"}  # what a scenario's [targets] may name


def judge(result: dict[str, Any], targets: dict[str, float]) -> dict[str, Any]:
    """Every target the scenario names, met or missed; one missed fails the run."""
    checks = []
    for name, limit in targets.items():
        if name == "n_plus_one":
            value: float | None = float(len(result.get("n_plus_one", [])))
            higher = False
        else:
            (section, key), higher = _FIGURES[name]
            value = (result.get(section) or {}).get(key)
        if value is None:
            checks.append({"target": name, "limit": limit, "value": None, "passed": None})
            continue
        passed = value >= limit if higher else value <= limit
        checks.append({"target": name, "limit": limit, "value": value, "passed": passed})
    return {
        "passed": all(c["passed"] is not False for c in checks),
        "checks": checks,
    }


def _change(before: float, after: float) -> float | None:
    return round(100 * (after - before) / before, 1) if before else None


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per operation (and overall): P50/P95/P99 before and after, and the % change."""
    rows = []
    names = ["overall", *sorted(set(before["operations"]) | set(after["operations"]))]
    for name in names:
        a = before["overall"] if name == "overall" else before["operations"].get(name)
        b = after["overall"] if name == "overall" else after["operations"].get(name)
        row: dict[str, Any] = {"operation": name}
        for p in ("p50_ms", "p95_ms", "p99_ms"):
            x = a.get(p) if a else None
            y = b.get(p) if b else None
            row[p] = {
                "before": x,
                "after": y,
                "change_pct": _change(x, y) if x is not None and y is not None else None,
            }
        rows.append(row)
    return rows
