"""Statement fingerprints and normalised text from PostgreSQL's own parser (pglast).

Every constant becomes `$n` and comments are dropped (the normalised tree is
deparsed), in utility statements too; a literal that cannot become `$n` (a
comment's text, a function body) leaves only the statement's kind. So the
normalised text carries no value: it is what
wcperf shows, stores and publishes, never the statement as sent. Results are
cached by statement text: an application sends few distinct statements, and the
cache keeps the per-execution cost to one dictionary lookup.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from pglast import ast, parse_sql, parser
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor, referenced_relations

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


_logged_by_text: dict[str, Fingerprint] = {}
_logged_by_id: dict[str, Fingerprint] = {}


def fingerprint_logged(sql: str) -> Fingerprint:
    """`fingerprint` for statements read from a server log, which carry literals.

    Each text with its own values is new, so the cost that matters is the first
    sight: one C-level fingerprint of the text, then the full normalisation once
    per fingerprint, not once per text.
    """
    found = _logged_by_text.get(sql)
    if found is not None:
        return found
    try:
        fp_id = parser.fingerprint(sql)
    except ParseError:
        return fingerprint(sql)  # withheld, as any unparseable text
    found = _logged_by_id.get(fp_id)
    if found is None:
        if len(_logged_by_id) >= _CACHE_MAX:
            _logged_by_id.clear()
        found = _logged_by_id[fp_id] = fingerprint(sql)
    if len(_logged_by_text) >= _CACHE_MAX:
        _logged_by_text.clear()
    _logged_by_text[sql] = found
    return found


def fingerprint(sql: str) -> Fingerprint:
    text = _dollarize(sql)
    try:
        # normalize() replaces constants but keeps comments, which can carry anything;
        # deparsing the normalised tree drops them.
        normalized = _scrubbed(parser.normalize(text))
        fp = parser.fingerprint(text)
        tables = tuple(sorted(referenced_relations(text)))
        writes = any(_writes(raw.stmt) for raw in parse_sql(text))
    except ParseError:
        # Not parseable (a psql meta-command, a fragment): never show it as sent.
        return Fingerprint("unparsed", "(statement not parseable; text withheld)", None)
    return Fingerprint(fp, normalized, _first_table(normalized), tables, writes)


# What a deparsed statement may not hold: a string literal or a dollar-quoted body.
_LITERAL = re.compile(r"'|\$[A-Za-z_]*\$")


class _Constants(Visitor):
    """Every constant left in a tree becomes the next `$n`.

    libpg_query's normalize() replaces constants in queries only: inside DDL and
    utility statements (`CREATE TABLE … AS`, `CREATE INDEX … WHERE`, a column
    DEFAULT, `PREPARE`) they stay, and they can be a child's name.
    """

    def __init__(self, first: int) -> None:
        super().__init__()
        self.number = first

    def visit_A_Const(self, ancestors: object, node: ast.A_Const) -> ast.ParamRef:
        self.number += 1
        return ast.ParamRef(number=self.number)


def _scrubbed(normalized: str) -> str:
    """The normalised text with no literal left anywhere, or its command tag alone.

    A literal outside any expression (`COMMENT ON … IS '…'`, a role's password, a
    function body, `DO`, `NOTIFY`) cannot become `$n`: such a statement is shown by
    its kind only.
    """
    tree = parse_sql(normalized)
    numbers = [int(n) for n in re.findall(r"\$(\d+)", normalized)]
    scrub = _Constants(max(numbers, default=0))
    for raw in tree:
        scrub(raw)
    text = RawStream()(tree)
    if not _LITERAL.search(text):
        return text
    kinds = (type(raw.stmt).__name__.removesuffix("Stmt") for raw in tree)
    tags = (re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).upper() for kind in kinds)
    return "; ".join(f"{tag} (literal text withheld)" for tag in tags)


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
