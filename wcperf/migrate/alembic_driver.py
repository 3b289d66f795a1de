"""Alembic driven from Python over wcperf's own engine.

The migration scripts live in the top-level `migrations/` folder of a checkout;
a wheel carries them as `wcperf/_migrations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine

from wcperf.errors import WcperfError

_PACKAGE = Path(__file__).resolve().parent.parent


def scripts_path() -> Path:
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise WcperfError("wcperf's migration scripts are missing from this installation")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts_path()))
    return cfg


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)


def status(engine: Engine) -> MigrationStatus:
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as conn:
        current = tuple(MigrationContext.configure(conn).get_current_heads())
    heads = tuple(script.get_heads())
    applied: set[str] = set()
    for rev in current:
        applied |= {r.revision for r in script.iterate_revisions(rev, "base")}
    pending = [r.revision for r in script.walk_revisions() if r.revision not in applied]
    return MigrationStatus(current, heads, tuple(reversed(pending)))


def upgrade(engine: Engine, target: str = "head") -> MigrationStatus:
    _run(engine, command.upgrade, target)
    return status(engine)


def downgrade(engine: Engine, target: str) -> MigrationStatus:
    _run(engine, command.downgrade, target)
    return status(engine)


def _run(engine: Engine, fn: object, target: str) -> None:
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            fn(cfg, target)  # type: ignore[operator]
    except CommandError as exc:
        raise WcperfError(f"migration: {exc}") from None
