"""Alembic driven from Python over wcperf's own engine.

The migration scripts live in the top-level `migrations/` folder of a checkout;
a wheel carries them as `wcperf/_migrations`. Index revisions declare an
`INDEXES` tuple; that tuple is the one definition of what they build, read here
for status and `--sql` as well.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine

from wcperf.errors import WcperfError
from wcperf.migrate.online_index import (
    HOOKS_KEY,
    IndexSpec,
    IndexState,
    MigrationHooks,
    OnlineIndexBuilder,
    index_states,
    plan_create,
)

_PACKAGE = Path(__file__).resolve().parent.parent

# Alembic creates its bookkeeping table itself, once, when it is absent; revision
# ids never outgrow its VARCHAR(32). The two lint rules are about tables that
# grow and migrations that re-run, so they are waived for that statement alone.
_VERSION_TABLE = "CREATE TABLE alembic_version (\n    version_num VARCHAR(32)"
_VERSION_TABLE_NOTED = (
    "-- alembic_version: created by Alembic when absent; revision ids fit VARCHAR(32)\n"
    "-- squawk-ignore prefer-robust-stmts\n"
    "CREATE TABLE alembic_version (\n"
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
    """Every index the revisions declare, oldest revision first."""
    specs: list[IndexSpec] = []
    for rev in reversed(list(_script().walk_revisions())):
        specs.extend(getattr(rev.module, "INDEXES", ()))
    return tuple(specs)


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)


def status(engine: Engine) -> MigrationStatus:
    script = _script()
    with engine.connect() as conn:
        current = tuple(MigrationContext.configure(conn).get_current_heads())
    applied: set[str] = set()
    for rev in current:
        applied |= {r.revision for r in script.iterate_revisions(rev, "base")}
    pending = [r.revision for r in script.walk_revisions() if r.revision not in applied]
    return MigrationStatus(current, tuple(script.get_heads()), tuple(reversed(pending)))


def indexes(engine: Engine) -> dict[str, IndexState]:
    with engine.connect() as conn:
        return index_states(conn.connection.driver_connection, performance_indexes())


def upgrade(
    engine: Engine, target: str = "head", hooks: MigrationHooks | None = None
) -> MigrationStatus:
    _run(engine, command.upgrade, target, hooks)
    return status(engine)


def downgrade(engine: Engine, target: str, hooks: MigrationHooks | None = None) -> MigrationStatus:
    _run(engine, command.downgrade, target, hooks)
    return status(engine)


def repair_indexes(engine: Engine, hooks: MigrationHooks | None = None) -> None:
    """At head already: rebuild any declared index that is missing or INVALID."""
    hooks = hooks or MigrationHooks()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        raw = conn.connection.driver_connection
        OnlineIndexBuilder(raw, hooks.policy, hooks.listener, hooks.poll_connect).create(
            performance_indexes()
        )


def upgrade_sql(engine: Engine, target: str = "head", hooks: MigrationHooks | None = None) -> str:
    """Exactly what `upgrade` would run against this database now; nothing is executed."""
    hooks = hooks or MigrationHooks()
    st = status(engine)
    hooks.states = indexes(engine)
    cfg = alembic_config(hooks)
    cfg.set_main_option("sqlalchemy.url", "postgresql+psycopg://")  # dialect only
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    span = f"{st.current[0]}:{target}" if st.current else target
    if st.current and target in ("head", "heads") and st.up_to_date:
        steps = plan_create(performance_indexes(), hooks.states)
        if not steps:
            return ""
        policy = hooks.policy
        lines = ["-- at head; repairing indexes missing or left INVALID"]
        lines += [
            f"{s};"
            for s in (*policy.session_sql(), *(step.sql for step in steps), *policy.reset_sql())
        ]
        return "\n".join(lines) + "\n"
    try:
        command.upgrade(cfg, span, sql=True)
    except CommandError as exc:
        raise WcperfError(f"migration: {exc}") from None
    return buffer.getvalue().replace(_VERSION_TABLE, _VERSION_TABLE_NOTED, 1)


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
