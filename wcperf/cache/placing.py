"""Which rows a SQLAlchemy INSERT/UPDATE/DELETE touches, as far as it can be proven.

Read off the compiled statement and this execution's parameters, never off SQL
text: an INSERT places each row by the values it gives; an UPDATE or DELETE
places its rows when a top-level `AND` of its WHERE says `column = :value` and
(for an UPDATE) no SET target is that column. Whatever cannot be proven is
left out, which `scopes.written` turns into a whole-table bump.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnElement,
)

from wcperf.cache.scopes import scoped_columns


def placed(context: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(table written, for each row set the statement writes: the scoped columns' values
    it provably holds), or None when this is not a DML statement SQLAlchemy compiled."""
    compiled: Any = getattr(context, "compiled", None)
    statement = getattr(compiled, "statement", None)
    if (
        compiled is None
        or statement is None
        or not (context.isinsert or context.isupdate or context.isdelete)
    ):
        return None
    table = getattr(getattr(statement, "table", None), "name", None)
    if not isinstance(table, str):
        return None
    columns = scoped_columns(table)
    params: Sequence[Mapping[str, Any]] = context.compiled_parameters or ()
    if not columns or not params:
        return table, []
    local = _local_time(context)
    if context.isinsert:
        if getattr(statement, "select", None) is not None:  # INSERT ... SELECT
            return table, []
        keys = {col: statement.table.c[col].key for col in columns}
        return table, [{c: local(p[k]) for c, k in keys.items() if k in p} for p in params]
    pinned = dict(_pins(statement.whereclause, statement.table, compiled.bind_names))
    where_binds = set(pinned.values())
    moved: set[str] = set()
    if context.isupdate:
        values = dict(getattr(statement, "_values", None) or {})
        values.update(dict(getattr(statement, "_ordered_values", None) or ()))
        moved = {str(getattr(k, "key", k)) for k in values}
        moved |= {k for p in params for k in p if k not in where_binds}
    binds = {
        col: pinned[col]
        for col in columns
        if col in pinned and statement.table.c[col].key not in moved
    }
    return table, [{c: local(p[b]) for c, b in binds.items() if b in p} for p in params]


def _local_time(context: Any) -> Callable[[Any], Any]:
    """Aware timestamps to the session's wall clock, which is what a reader's naive day means."""
    try:
        tz = context.root_connection.connection.driver_connection.info.timezone
    except AttributeError:
        tz = None

    def local(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None and tz is not None:
            return value.astimezone(tz).replace(tzinfo=None)
        return value

    return local


def _pins(
    where: Any, table: Any, bind_names: Mapping[BindParameter[Any], str]
) -> Iterator[tuple[str, str]]:
    """(column name, bind name) for each top-level `table.column = :bind` conjunct."""
    if where is None:
        return
    conjuncts: list[ColumnElement[Any]]
    if isinstance(where, BooleanClauseList) and where.operator is operators.and_:
        conjuncts = list(where.clauses)
    else:
        conjuncts = [where]
    for c in conjuncts:
        if (
            isinstance(c, BinaryExpression)
            and c.operator is operators.eq
            and getattr(getattr(c.left, "table", None), "name", None) == table.name
            and isinstance(c.right, BindParameter)
            and c.right in bind_names
        ):
            yield c.left.name, bind_names[c.right]
