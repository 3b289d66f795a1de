"""Statement fingerprints and normalised text from PostgreSQL's own parser (pglast).

Every constant becomes `$n` and comments are dropped (the normalised tree is
deparsed), so the normalised text carries no value: it is what
wcperf shows, stores and publishes, never the statement as sent. Results are
cached by statement text: an application sends few distinct statements, and the
cache keeps the per-execution cost to one dictionary lookup.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from pglast import parse_sql, parser
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import referenced_relations

# psycopg's placeholders (%s, %(name)s) are not SQL; turn them into $n first.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
_TABLE = re.compile(r"\b(?:from|into|update|join)\s+\"?([a-z_][a-z0-9_]*)", re.IGNORECASE)
_CACHE_MAX = 4096


@dataclass(frozen=True)
class Fingerprint:
    id: str  # libpg_query fingerprint, hex
    normalized: str
    table: str | None  # first table the statement names
    tables: tuple[str, ...] = ()  # every table it names
    writes: bool = False  # INSERT/UPDATE/DELETE/MERGE/TRUNCATE/COPY FROM, or a CTE doing one


def _dollarize(sql: str) -> str:
    names: dict[str, int] = {}
    counter = [0]

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        key = match.group(1)
        if key is not None and key in names:
            return f"${names[key]}"
        counter[0] += 1
        if key is not None:
            names[key] = counter[0]
        return f"${counter[0]}"

    return _PLACEHOLDER.sub(sub, sql)


def _first_table(normalized: str) -> str | None:
    match = _TABLE.search(normalized)
    return match.group(1).lower() if match else None


class Fingerprinter:
    def __init__(self, max_entries: int = _CACHE_MAX) -> None:
        self._cache: dict[str, Fingerprint] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def __call__(self, sql: str) -> Fingerprint:
        found = self._cache.get(sql)
        if found is not None:
            return found
        fp = fingerprint(sql)
        with self._lock:
            if len(self._cache) >= self._max:
                self._cache.clear()  # a flood of one-off statements; start over
            self._cache[sql] = fp
        return fp


def fingerprint(sql: str) -> Fingerprint:
    text = _dollarize(sql)
    try:
        # normalize() replaces constants but keeps comments, which can carry anything;
        # deparsing the normalised tree drops them.
        normalized = RawStream()(parser.normalize(text))
        fp = parser.fingerprint(text)
        tables = tuple(sorted(referenced_relations(text)))
        writes = any(_writes(raw.stmt) for raw in parse_sql(text))
    except ParseError:
        # Not parseable (a psql meta-command, a fragment): never show it as sent.
        return Fingerprint("unparsed", "(statement not parseable; text withheld)", None)
    return Fingerprint(fp, normalized, _first_table(normalized), tables, writes)


_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt"}


def _writes(stmt: object) -> bool:
    kind = type(stmt).__name__
    if kind in _WRITES:
        return True
    if kind == "CopyStmt":
        return bool(getattr(stmt, "is_from", False))
    with_clause = getattr(stmt, "withClause", None)
    ctes = getattr(with_clause, "ctes", None) or ()
    return any(_writes(getattr(cte, "ctequery", None)) for cte in ctes)
