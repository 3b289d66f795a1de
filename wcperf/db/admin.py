"""Reaching a server and managing whole databases.

`check_postgres` connects once, directly, before any pool exists: a pool would
retry for its full acquire timeout (30 s) before admitting that the host is down,
while a user who mistyped a port deserves the answer at once.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from wcperf.errors import ConfigError, ConnectError
from wcperf.urls import mask_url, redact

CONNECT_TIMEOUT_S = 5


def libpq_url(url: str) -> str:
    """SQLAlchemy spells the driver into the scheme; libpq does not accept it."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def _reason(exc: BaseException, url: str) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    first = first.removeprefix("connection failed: ")
    # libpq: 'connection to server at "h", port 1 failed: Connection refused'
    if " failed: " in first:
        first = first.rsplit(" failed: ", 1)[1]
    return redact(first, url)


def connect_error(exc: BaseException, url: str) -> ConnectError:
    return ConnectError(f"cannot connect to PostgreSQL at {mask_url(url)}: {_reason(exc, url)}")


def connect(
    url: str, *, application_name: str = "wcperf", **kwargs: Any
) -> psycopg.Connection[tuple[Any, ...]]:
    """One direct connection with a short connect timeout and a clean error."""
    try:
        return psycopg.connect(
            libpq_url(url),
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application_name,
            **kwargs,
        )
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"malformed PostgreSQL URL {mask_url(url)}: {_reason(exc, url)}"
        ) from None
    except psycopg.Error as exc:
        raise connect_error(exc, url) from None


def check_postgres(url: str) -> str:
    """Connect once and return the server version string, or raise ConnectError."""
    with connect(url) as conn:
        row = conn.execute("show server_version").fetchone()
        return str(row[0]) if row else "unknown"


def database_name(url: str) -> str:
    try:
        return str(conninfo_to_dict(libpq_url(url)).get("dbname") or "postgres")
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"malformed PostgreSQL URL {mask_url(url)}: {_reason(exc, url)}"
        ) from None


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database (a URL stays a URL)."""
    if "://" in url:
        parts = urlsplit(libpq_url(url))
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


def database_exists(url: str) -> bool:
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        found = conn.execute(
            "select 1 from pg_database where datname = %s", (database_name(url),)
        ).fetchone()
        return found is not None


def ensure_database(url: str) -> bool:
    """Create the URL's database if missing (only for servers wcperf chose itself)."""
    name = database_name(url)
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return True


def ensure_statements(url: str) -> None:
    """pg_stat_statements in the URL's database: for the embedded server only, which
    wcperf started with the library preloaded."""
    with connect(url, autocommit=True) as conn:
        conn.execute("create extension if not exists pg_stat_statements")


def clone_database(template_url: str, url: str) -> None:
    """A new database as a file-level copy of another (which must have no sessions)."""
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(database_name(url)), sql.Identifier(database_name(template_url))
            )
        )


def drop_database(url: str) -> None:
    name = database_name(url)
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def check_redis(url: str) -> str:
    """Ping Redis; return its version or raise ConnectError."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        raise ConnectError(
            f"cannot connect to Redis at {mask_url(url)}: {redact(str(exc), url)}"
        ) from None
