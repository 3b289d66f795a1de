"""Alembic environment for wcperf.

wcperf drives Alembic from Python and hands it an open connection (so the
migration runs under wcperf's own application_name and timeouts). Run by the
`alembic` command instead, it reads the URL from `sqlalchemy.url` or the usual
wcperf environment variables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from wcperf.db.admin import libpq_url
from wcperf.db.schema import STATE
from wcperf.platform import WCPERF_SCHEMA

config = context.config
# wcperf's own schema only: the platform's tables are never a migration target.
target_metadata = STATE
OPTIONS = {
    "target_metadata": target_metadata,
    "transaction_per_migration": True,
    "version_table_schema": WCPERF_SCHEMA,
    "include_schemas": False,
}


def _url() -> str:
    from wcperf.db.servers import resolve_postgres
    from wcperf.settings import Settings

    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    endpoint = resolve_postgres(Settings.from_env(command="alembic"))
    assert endpoint.url is not None
    return endpoint.url


def run_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = "postgresql+psycopg://" + libpq_url(_url()).removeprefix("postgresql://")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
