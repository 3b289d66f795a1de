"""A load result as a self-contained HTML page (inline SVG charts, no script) and as
CSV files, both read from the document `loadtest --json` writes."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

_COLOURS = {"P50": "#4c78a8", "P95": "#f58518", "P99": "#e45756", "per s": "#54a24b"}
_BAR_COLOURS = {"p50_ms": _COLOURS["P50"], "p95_ms": _COLOURS["P95"], "p99_ms": _COLOURS["P99"]}
FIGURES = ("count", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def _bars(operations: dict[str, dict[str, Any]]) -> str:
    """Horizontal bars of P50/P95/P99 per operation, on one linear scale."""
    names = sorted(operations)
    top = max((operations[n]["p99_ms"] for n in names), default=0) or 1.0
    row_h, label_w, width = 42, 220, 900
    parts = [
        f'<svg class="chart" role="img" aria-label="latency per operation" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{row_h * len(names) + 30}" font-family="sans-serif" font-size="12">'
    ]
    for i, name in enumerate(names):
        y = i * row_h + 10
        parts.append(f'<text x="0" y="{y + 20}">{escape(name)}</text>')
        for j, (p, colour) in enumerate(_BAR_COLOURS.items()):
            value = operations[name][p]
            w = (width - label_w - 120) * value / top
            parts.append(
                f'<rect x="{label_w}" y="{y + j * 11}" width="{w:.1f}" height="10" '
                f'fill="{colour}"><title>{p[:-3].upper()} {value:.3f} ms</title></rect>'
                f'<text x="{label_w + w + 4:.1f}" y="{y + j * 11 + 9}">'
                f"{p[:-3].upper()} {value:.2f} ms</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _nice(top: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `top`: round axis figures."""
    if top <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(top))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= top)


def _line_chart(
    label: str, xs: Sequence[float], series: dict[str, Sequence[float | None]], unit: str
) -> str:
    """Lines over time; a missing value breaks its line instead of bridging the gap."""
    width, height, left, right, top_m, bottom = 900, 260, 60, 110, 16, 34
    plot_w, plot_h = width - left - right, height - top_m - bottom
    values = [v for line in series.values() for v in line if v is not None]
    y_max = _nice(max(values, default=0.0) * 1.05)
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x_max - x_min) or 1.0

    def x(v: float) -> float:
        return left + plot_w * (v - x_min) / span

    def y(v: float) -> float:
        return top_m + plot_h * (1 - v / y_max)

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top_m}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#bbb"/>',
    ]
    for i in range(5):
        v = y_max * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#eee"/><text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{v:g}</text>"
        )
    for i in range(7):
        v = x_min + span * i / 6
        parts.append(
            f'<text x="{x(v):.1f}" y="{height - bottom + 16}" text-anchor="middle">{v:.0f}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
        f"seconds into the measured run</text>"
        f'<text x="12" y="{top_m + plot_h / 2}" transform="rotate(-90 12 {top_m + plot_h / 2})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    for n, (name, line) in enumerate(series.items()):
        colour = _COLOURS.get(name, "#777")
        run: list[str] = []
        segments: list[list[str]] = []
        for xv, yv in zip(xs, line, strict=True):
            if yv is None:
                if run:
                    segments.append(run)
                run = []
                continue
            run.append(f"{x(xv):.1f},{y(yv):.1f}")
        if run:
            segments.append(run)
        for points in segments:
            parts.append(
                f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.5" '
                f'points="{" ".join(points)}"><title>{escape(name)}</title></polyline>'
            )
        ly = top_m + 14 + n * 16
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="12" height="3" '
            f'fill="{colour}"/><text x="{left + plot_w + 30}" y="{ly - 5}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = (
        "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
        or f'<tr><td colspan="{len(columns)}">none</td></tr>'
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(v: Any) -> str:
    if isinstance(v, _Code):
        return f"<td class=sql><code>{escape(v.text)}</code></td>"
    return f"<td>{escape('-' if v is None else f'{v:,}' if isinstance(v, int) else str(v))}</td>"


class _Code:
    def __init__(self, text: str) -> None:
        self.text = text


_META_LABELS = (
    ("started_at", "started (UTC)"),
    ("finished_at", "finished (UTC)"),
    ("scenario", "scenario"),
    ("scenario_digest", "scenario digest (tasks, think time)"),
    ("scenario_file_sha256", "scenario file SHA-256"),
    ("users", "users"),
    ("processes", "processes"),
    ("duration_s", "measured seconds asked"),
    ("warmup_s", "warm-up seconds"),
    ("seed", "seed"),
    ("wcperf_version", "wcperf"),
    ("locust_version", "locust"),
    ("python_version", "Python"),
    ("server_version", "PostgreSQL"),
)


def _over_time(result: dict[str, Any]) -> str:
    timeline = result.get("timeline") or []
    if not timeline:
        return "<p>No timeline in this result (written by an older wcperf).</p>"
    xs = [p["t_s"] if p["t_s"] is not None else i for i, p in enumerate(timeline)]
    step = result.get("timeline_step_s", 1)
    throughput = _line_chart(
        "operations per second over time",
        xs,
        {"per s": [p["rps"] for p in timeline], "errors": [p["errors"] / step for p in timeline]},
        "operations per second",
    )
    latency = _line_chart(
        "P50, P95 and P99 over time",
        xs,
        {f"P{q}": [p[f"p{q}_ms"] for p in timeline] for q in (50, 95, 99)},
        "milliseconds",
    )
    return (
        f"<h2>Over time</h2><p>Every operation, per {step} s step; the first and last "
        f"steps are partial.</p>{throughput}{latency}"
    )


def html(result: dict[str, Any]) -> str:
    ops = result["operations"]
    verdict = result.get("verdict", {})
    passed = verdict.get("passed")
    meta = result.get("meta") or {}
    dataset = meta.get("dataset") or {}
    meta_rows = [[label, meta.get(key)] for key, label in _META_LABELS if key in meta]
    meta_rows += [[f"rows in {table}", n] for table, n in sorted(dataset.items())]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>wcperf load test: {escape(result["scenario"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}}
td:first-child,th:first-child{{text-align:left}}
td.sql{{text-align:left;max-width:640px}} code{{white-space:pre-wrap;word-break:break-word}}
table.meta td:last-child{{text-align:left}}
.pass{{color:#2a7}} .fail{{color:#c33}} svg.chart{{display:block;margin:1em 0}}</style>
</head><body>
<h1>{escape(result["scenario"])}: <span class="{"pass" if passed else "fail"}">
{"PASS" if passed else "FAIL"}</span></h1>
<p>{result["users"]} users in {result["processes"]} process(es), {result["seconds"]:.1f} s;
{result["overall"]["count"]:,} operations, {result["overall"]["rps"]:,} per second,
{result["overall"]["errors"]:,} errors.</p>
<h2>Run</h2>
{_table(["figure", "value"], meta_rows, "meta") if meta_rows else "<p>No run metadata.</p>"}
<h2>Verdict</h2>
{
        _table(
            ["target", "limit", "value", "met"],
            [
                [c["target"], c["limit"], c["value"], {True: "yes", False: "NO"}.get(c["passed"])]
                for c in verdict.get("checks", [])
            ],
        )
    }
{_over_time(result)}
<h2>Latency per operation</h2>
{_bars(ops)}
{_table(["operation", *FIGURES], [[n, *(ops[n][f] for f in FIGURES)] for n in sorted(ops)])}
<h2>Errors</h2>
{
        _table(
            ["operation", "kind", "count"],
            [[e["operation"], e["kind"], e["count"]] for e in result.get("errors") or []],
        )
    }
<h2>Per SQL fingerprint</h2>
<p>Normalised by PostgreSQL's parser: constants are <code>$n</code>, so no value appears.</p>
{
        _table(
            ["fingerprint", "statement", *FIGURES],
            [
                [q["fingerprint"], _Code(q["normalized"]), *(q[f] for f in FIGURES)]
                for q in result["queries"]
            ],
        )
    }
<h2>Cache and pool</h2>
{
        _table(
            ["figure", "value"],
            [[k, v] for k, v in {**result["cache"], **result["pool"]}.items() if k != "reads"],
        )
    }
<h3>Cache per read</h3>
{
        _table(
            ["read", "hits", "loads", "hit rate %"],
            [
                [name, r["hits"], r["loads"], r["hit_rate_pct"]]
                for name, r in (result["cache"].get("reads") or {}).items()
            ],
        )
    }
</body></html>
"""


def csv_files(result: dict[str, Any], prefix: Path) -> dict[Path, str]:
    """locust's three files, by path: `<prefix>_stats.csv` (operations and statements),
    `<prefix>_history.csv` (the timeline) and `<prefix>_failures.csv` (errors)."""

    def text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        buffer = io.StringIO()
        w = csv.writer(buffer)
        w.writerow(header)
        w.writerows(["" if v is None else v for v in row] for row in rows)
        return buffer.getvalue()

    ops = sorted(result["operations"].items())
    stats = text(
        ["kind", "name", "fingerprint", "statement", *FIGURES],
        [
            ["overall", "overall", "", "", *(result["overall"][f] for f in FIGURES)],
            *(["operation", name, "", "", *(op[f] for f in FIGURES)] for name, op in ops),
            *(
                ["statement", "", q["fingerprint"], q["normalized"], *(q[f] for f in FIGURES)]
                for q in result["queries"]
            ),
        ],
    )
    columns = ["at", "t_s", "count", "errors", "rps", "p50_ms", "p95_ms", "p99_ms"]
    history = text(columns, ([p[c] for c in columns] for p in result.get("timeline") or []))
    failures = text(
        ["operation", "kind", "count"],
        ([e["operation"], e["kind"], e["count"]] for e in result.get("errors") or []),
    )
    return {
        prefix.with_name(f"{prefix.name}_{name}.csv"): body
        for name, body in (("stats", stats), ("history", history), ("failures", failures))
    }
