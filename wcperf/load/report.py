"""A self-contained HTML report of a load-test result: tables and latency charts (SVG)."""

from __future__ import annotations

from html import escape
from typing import Any

_BAR_COLOURS = {"p50_ms": "#4c78a8", "p95_ms": "#f58518", "p99_ms": "#e45756"}


def _chart(operations: dict[str, dict[str, Any]]) -> str:
    """Horizontal bars of P50/P95/P99 per operation, on one log-free linear scale."""
    names = sorted(operations)
    top = max((operations[n]["p99_ms"] for n in names), default=0) or 1.0
    row_h, label_w, width = 42, 220, 900
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
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


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('-' if v is None else str(v))}</td>" for v in r) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html(result: dict[str, Any]) -> str:
    ops = result["operations"]
    verdict = result.get("verdict", {})
    passed = verdict.get("passed")
    figures = ("count", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>wcperf load test: {escape(result["scenario"])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}
.pass{{color:#2a7}} .fail{{color:#c33}}</style></head><body>
<h1>{escape(result["scenario"])}: <span class="{"pass" if passed else "fail"}">
{"PASS" if passed else "FAIL"}</span></h1>
<p>{result["users"]} users in {result["processes"]} process(es), {result["seconds"]:.1f} s;
{result["overall"]["count"]:,} operations, {result["overall"]["rps"]:,} per second.</p>
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
<h2>Latency per operation</h2>
{_chart(ops)}
{_table(["operation", *figures], [[n, *(ops[n][f] for f in figures)] for n in sorted(ops)])}
<h2>Per SQL fingerprint (normalised: no values)</h2>
{
        _table(
            ["statement", *figures],
            [[q["normalized"][:160], *(q[f] for f in figures)] for q in result["queries"][:30]],
        )
    }
<h2>Cache and pool</h2>
{_table(["figure", "value"], [[k, v] for k, v in {**result["cache"], **result["pool"]}.items()])}
</body></html>
"""
