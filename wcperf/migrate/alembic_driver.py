"""Alembic driven from Python over wcperf's own engine.

The migration scripts live in the top-level `migrations/` folder of a checkout;
a wheel carries them as `wcperf/_migrations`. Alembic's version table lives in
wcperf's own schema, like everything else wcperf keeps. Migrating refuses a
database without the platform's tables: wcperf adopts that schema, it never
creates it (only `wcperf seed` does, for a synthetic district).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from wcperf.db.engine import driver
from wcperf.errors import RefusedError, WcperfError
from wcperf.migrate.index_plan import plan_create
from wcperf.migrate.index_state import IndexState, built_records, index_states
from wcperf.migrate.online_index import (
    HOOKS_KEY,
    MigrationHooks,
    OnlineIndexBuilder,
    PrivilegeError,
)
from wcperf.platform import PLATFORM_TABLES, WCPERF_SCHEMA
from wcperf.platform.ddl import missing_tables
from wcperf.platform.indexes import PERFORMANCE_INDEXES, IndexSpec

STATE_REVISION = "0001_wcperf_state"
VERSION_OPTS = {"version_table_schema": WCPERF_SCHEMA}


class NoPlatformSchema(WcperfError):
    """The database is not the platform's: nothing to adopt."""


F = TypeVar("F", bound=Callable[..., Any])


def _privileged(fn: F) -> F:
    """A role that may not use wcperf's schema or build on the platform's tables is told
    which, in one line, whatever step found out."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DBAPIError as exc:
            orig = exc.orig
            if isinstance(orig, psycopg.errors.InsufficientPrivilege):
                raise PrivilegeError(
                    "wcperf migrate must own the platform's tables (or be a superuser) to "
                    "build or drop indexes, and needs its own schema wcperf: "
                    f"{orig.diag.message_primary}"
                ) from None
            raise

    return wrapper  # type: ignore[return-value]


def require_platform(conn: Connection) -> None:
    missing = missing_tables(driver(conn))
    if len(missing) == len(PLATFORM_TABLES):
        raise NoPlatformSchema(
            "this database has none of the platform's tables (students, health_records, ...); "
            "wcperf adopts the platform's schema and never creates it: for a synthetic "
            "district run `wcperf seed` first"
        )
    if missing:
        raise NoPlatformSchema(
            f"this database lacks the platform's table(s) {', '.join(missing)}; "
            "wcperf adopts the platform's schema and never creates it (`wcperf seed` does, "
            "only into an empty database)"
        )


def _prepare(conn: Connection, platform: bool = True) -> None:
    """The platform's tables must be there; wcperf's schema is made here (Alembic puts its
    version table in it before the first revision runs)."""
    if platform:
        require_platform(conn)
    conn.execute(text(f"create schema if not exists {WCPERF_SCHEMA}"))
    conn.commit()


_PACKAGE = Path(__file__).resolve().parent.parent

# Alembic creates its bookkeeping table itself, once, when it is absent; revision
# ids never outgrow its VARCHAR(32). The two lint rules are about tables that
# grow and migrations that re-run, so they are waived for that statement alone.
_VERSION_TABLE = f"CREATE TABLE {WCPERF_SCHEMA}.alembic_version (\n    version_num VARCHAR(32)"
_VERSION_TABLE_NOTED = (
    "-- alembic_version: created by Alembic when absent; revision ids fit VARCHAR(32)\n"
    "-- squawk-ignore prefer-robust-stmts\n"
    f"CREATE TABLE {WCPERF_SCHEMA}.alembic_version (\n"
    "    -- squawk-ignore prefer-text-field\n"
    "    version_num VARCHAR(32)"
)


def scripts_path() -> Path:
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise WcperfError("wcperf's migration scripts are missing from this installation")


def alembic_config(hooks: MigrationHooks | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts_path()))
    if hooks is not None:
        cfg.attributes[HOOKS_KEY] = hooks
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def performance_indexes() -> tuple[IndexSpec, ...]:
    return PERFORMANCE_INDEXES


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)


@_privileged
def status(engine: Engine) -> MigrationStatus:
    script = _script()
    with engine.connect() as conn:
        current = tuple(MigrationContext.configure(conn, opts=VERSION_OPTS).get_current_heads())
    applied: set[str] = set()
    for rev in current:
        applied |= {r.revision for r in script.iterate_revisions(rev, "base")}
    pending = [r.revision for r in script.walk_revisions() if r.revision not in applied]
    return MigrationStatus(current, tuple(script.get_heads()), tuple(reversed(pending)))


@_privileged
def indexes(engine: Engine) -> dict[str, IndexState]:
    with engine.connect() as conn:
        return index_states(driver(conn), performance_indexes())


@_privileged
def upgrade(
    engine: Engine,
    target: str = "head",
    hooks: MigrationHooks | None = None,
    *,
    platform: bool = True,
) -> MigrationStatus:
    """`platform=False` only for the state revision, which `wcperf seed` applies before it
    creates the platform's tables (its marker lives there)."""
    with engine.connect() as conn:
        _prepare(conn, platform)
    _run(engine, command.upgrade, target, hooks)
    return status(engine)


def downgrade_steps(engine: Engine, target: str) -> list[str]:
    """The revisions a downgrade to `target` would undo, however it is spelled
    (`base`, a revision, `-1`, `REV-1`): Alembic's own resolution, before anything runs."""
    script = _script()
    current = status(engine).current
    if not current:
        return []
    try:
        steps = script._downgrade_revs(target, current[0])  # what `alembic downgrade` runs
    except CommandError as exc:
        raise WcperfError(f"migration: {exc}") from None
    return [step.revision.revision for step in steps]


@_privileged
def downgrade(
    engine: Engine,
    target: str,
    hooks: MigrationHooks | None = None,
    *,
    drop_state: bool = False,
) -> MigrationStatus:
    """Undo revisions. Below the state revision wcperf's own jobs, audit and ledgers go
    (never a platform table): that needs `drop_state`."""
    undone = downgrade_steps(engine, target)
    if STATE_REVISION in undone and not drop_state:
        raise RefusedError(
            f"downgrading to {target!r} undoes {STATE_REVISION}: it drops wcperf's own job "
            "history, audit log and ledgers (revert would no longer be possible); the "
            "platform's tables are never touched. Add --yes to do it"
        )
    _run(engine, command.downgrade, target, hooks)
    return status(engine)


@_privileged
def repair_indexes(engine: Engine, hooks: MigrationHooks | None = None) -> None:
    """At head already: build any declared index missing or INVALID (and swap a differing
    one when asked); a differing one is otherwise reported in `hooks.differing`."""
    hooks = hooks or MigrationHooks()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        raw = driver(conn)
        builder = OnlineIndexBuilder(
            raw,
            hooks.policy,
            hooks.listener,
            hooks.poll_connect,
            replace_differing=hooks.replace_differing,
        )
        builder.create(performance_indexes())
        hooks.differing.extend(builder.differing)


@_privileged
def built(engine: Engine) -> dict[str, tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return built_records(driver(conn))


@_privileged
def upgrade_sql(engine: Engine, target: str = "head", hooks: MigrationHooks | None = None) -> str:
    """Exactly what `upgrade` would run against this database now; nothing is executed."""
    hooks = hooks or MigrationHooks()
    with engine.connect() as conn:
        require_platform(conn)
    st = status(engine)
    hooks.states = indexes(engine)
    notes = "".join(
        f"-- {_state_note(state, hooks.replace_differing)}\n" for state in hooks.states.values()
    )
    cfg = alembic_config(hooks)
    cfg.set_main_option("sqlalchemy.url", "postgresql+psycopg://")  # dialect only
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    span = f"{st.current[0]}:{target}" if st.current else target
    if st.current and target in ("head", "heads") and st.up_to_date:
        steps = plan_create(
            performance_indexes(), hooks.states, replace_differing=hooks.replace_differing
        )
        if not steps:
            return ""
        policy = hooks.policy
        lines = [notes.rstrip("\n"), "-- at head; building what is missing or left INVALID"]
        lines += [
            f"{s};"
            for s in (*policy.session_sql(), *(step.text() for step in steps), *policy.reset_sql())
        ]
        return "\n".join(lines) + "\n"
    try:
        command.upgrade(cfg, span, sql=True)
    except CommandError as exc:
        raise WcperfError(f"migration: {exc}") from None
    head = (
        "SET lock_timeout = '5s';\nSET statement_timeout = '60s';\n"
        f"CREATE SCHEMA IF NOT EXISTS {WCPERF_SCHEMA};\n\n"
        if not st.current
        else ""
    )
    return notes + head + buffer.getvalue().replace(_VERSION_TABLE, _VERSION_TABLE_NOTED, 1)


def _state_note(state: IndexState, replace: bool) -> str:
    if state.state == "present":
        where = f" as {state.found_as}" if state.found_as else ""
        return f"{state.name}: present{where} ({state.origin}); nothing runs"
    if state.state == "differs":
        then = "swapped online below" if replace else "left alone"
        return f"{state.name}: differs from the platform's model ({state.definition}); {then}"
    return f"{state.name}: {state.state}; built online below"


def _run(
    engine: Engine, fn: Callable[..., None], target: str, hooks: MigrationHooks | None
) -> None:
    cfg = alembic_config(hooks)
    try:
        # A plain connection, not engine.begin(): Alembic must own the transaction
        # to step out of it for CREATE INDEX CONCURRENTLY.
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            fn(cfg, target)
            conn.commit()
    except CommandError as exc:
        raise WcperfError(f"migration: {exc}") from None
