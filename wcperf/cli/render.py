"""Small shared renderers: key/value tables and JSON on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from wcperf.cli.context import out
from wcperf.redact import text


def emit_json(data: Any) -> None:
    """JSON on stdout as is: never wrapped at the terminal's width, never styled."""
    out.file.write(json.dumps(data, default=str, indent=2) + "\n")
    out.file.flush()


def cell(value: Any) -> Text:
    """A table cell from any value: a `Text` passes as is, anything else is made inert."""
    return value if isinstance(value, Text) else text(value)


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for i, col in enumerate(columns):
        t.add_column(col, justify="right" if i else "left", overflow="fold")
    for row in rows:
        t.add_row(*("-" if v is None else cell(v) for v in row))
    return t


def pairs(title: str, data: Mapping[str, Any]) -> Table:
    t = Table(title=title, title_justify="left", show_header=False, show_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in data.items():
        t.add_row(k, "-" if v is None else cell(v))
    return t
