"""The SQL an index migration runs, step by step with the reason for each: what
`migrate --sql` prints and what the builder runs. Nothing here touches a database."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import sql

from wcperf.errors import WcperfError
from wcperf.migrate.index_state import BUILT_TABLE, DIFFERS, INVALID, MISSING, PRESENT, IndexState
from wcperf.platform.indexes import BY_NAME, IndexSpec


@dataclass(frozen=True)
class Step:
    spec: IndexSpec | None
    sql: sql.Composed
    why: str

    def text(self) -> str:
        return self.sql.as_string(None)


def record_sql(spec: IndexSpec, replaced: str | None) -> sql.Composed:
    """Written before the build: whatever a crash leaves, wcperf knows the index is its own."""
    return sql.SQL(
        "INSERT INTO {} AS b (name, table_name, definition, replaced_definition, built_at)"
        " VALUES ({}, {}, {}, {}, now()) ON CONFLICT (name) DO UPDATE SET"
        " definition = excluded.definition,"
        " replaced_definition = coalesce(b.replaced_definition, excluded.replaced_definition),"
        " built_at = now()"
    ).format(
        BUILT_TABLE,
        sql.Literal(spec.name),
        sql.Literal(spec.table),
        sql.Literal(spec.definition()),
        sql.Literal(replaced),
    )


def forget_sql(name: str) -> sql.Composed:
    return sql.SQL("DELETE FROM {} WHERE name = {}").format(BUILT_TABLE, sql.Literal(name))


def rename_sql(old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))


def analyze_sql(table: str) -> sql.Composed:
    return sql.SQL("ANALYZE {}").format(sql.Identifier(table))


_DEFINITION = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON ")


def recreate_sql(definition: str, name: str) -> sql.Composed:
    """The server's own text of an index it had, built online under `name`."""
    found = _DEFINITION.match(definition)
    if found is None:
        raise WcperfError(f"cannot rebuild index {name}: unrecognised definition")
    head = sql.SQL("CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON ").format(
        sql.SQL(found.group(1) or ""), sql.Identifier(name)
    )
    return head + sql.SQL(definition[found.end() :])


def plan_create(
    specs: Iterable[IndexSpec],
    states: dict[str, IndexState],
    *,
    replace_differing: bool = False,
) -> list[Step]:
    """Statements an upgrade runs, given each index's state (missing if unknown)."""
    steps: list[Step] = []
    touched: list[str] = []
    for spec in specs:
        st = states.get(spec.name, IndexState(spec.name, MISSING))
        if st.state == PRESENT or (st.state == DIFFERS and not replace_differing):
            continue
        if st.state == DIFFERS:
            tmp = spec.temporary_name
            steps += [
                Step(spec, record_sql(spec, st.definition), "record: replacing the platform's"),
                Step(spec, spec.drop_sql(tmp), "a leftover of an interrupted swap"),
                Step(spec, spec.create_sql(tmp), "build the expected definition beside it"),
                Step(spec, spec.drop_sql(), "drop the differing one (its twin serves)"),
                Step(spec, rename_sql(tmp, spec.name), "take its name"),
            ]
        else:
            steps.append(Step(spec, record_sql(spec, None), "record: built by wcperf"))
            if st.state == INVALID:
                steps.append(Step(spec, spec.drop_sql(), "left INVALID by an interrupted build"))
            steps.append(Step(spec, spec.create_sql(), "build online"))
        if spec.table not in touched:
            touched.append(spec.table)
    steps += [Step(None, analyze_sql(table), "fresh statistics") for table in touched]
    return steps


def plan_drop(built: dict[str, tuple[str, str, str | None]]) -> list[Step]:
    """Only what wcperf built, newest first; a swapped index gets the platform's back."""
    steps: list[Step] = []
    for name, (_table, _definition, replaced) in reversed(list(built.items())):
        spec = BY_NAME.get(name)
        if spec is None:
            continue  # not an index this version knows: leave it, and its record
        if replaced:
            tmp = spec.temporary_name
            steps += [
                Step(spec, spec.drop_sql(tmp), "a leftover of an interrupted swap"),
                Step(spec, recreate_sql(replaced, tmp), "rebuild the platform's definition"),
                Step(spec, spec.drop_sql(), "drop wcperf's"),
                Step(spec, rename_sql(tmp, name), "give the platform's its name back"),
            ]
        else:
            steps.append(Step(spec, spec.drop_sql(), "built by wcperf: drop online"))
        steps.append(Step(spec, forget_sql(name), "no longer wcperf's"))
    return steps
