"""Which PostgreSQL and Redis a command talks to, and why.

A configured URL (or keyword string) always wins; then libpq's own variables
(`PGHOST`, `PGSERVICE`, ...), with `PGPASSWORD` and `~/.pgpass` left to libpq as
psql leaves them. A database named either way is never created by wcperf. Without
either, a server answering on the local default address is used (database
`wcperf`), then the embedded servers in wcperf's home are started; on those two,
`wcperf seed`, `wcperf demo` and `wcperf db up` create the database. Redis that
cannot be had at all is reported as unavailable rather than failing the command:
the cache falls back to its in-process tier.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from wcperf.db.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedUnavailable
from wcperf.settings import DEFAULT_DATABASE, EMBEDDED, Settings
from wcperf.urls import mask_url

CONFIGURED = "configured"
ENVIRONMENT = "environment"  # libpq's PG* variables
LOCAL = "local"
EMBEDDED_SOURCE = "embedded"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "postgresql" | "redis"
    source: str  # configured | local | embedded | unavailable
    url: str | None
    note: str = ""

    def describe(self) -> str:
        where = mask_url(self.url) if self.url else "-"
        text = f"{self.kind} {self.source} {where}"
        return f"{text} ({self.note})" if self.note else text


def answers(address: tuple[str, int], timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _unchecked_password(url: str) -> str:
    """A note when the URL carries a password the server does not ask for.

    redis-py retries a refused AUTH without it, so a password given to a server
    without AUTH would otherwise pass unnoticed, and the operator would believe
    the cache is protected."""
    import redis

    try:
        parts = urlsplit(url)
        if not parts.password:
            return ""
        bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        client = redis.Redis.from_url(bare, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError):
        return ""  # it asks for a password, or cannot be reached: said elsewhere
    return "this server asks for no password: the URL's password protects nothing"


def resolve_postgres(settings: Settings, *, start: bool = True) -> Endpoint:
    url = settings.database_url
    if url and url != EMBEDDED:
        return Endpoint("postgresql", CONFIGURED, url)
    if url != EMBEDDED and settings.pg_environment:
        return Endpoint("postgresql", ENVIRONMENT, settings.pg_environment, note="PG* variables")
    if url != EMBEDDED and answers(settings.local_pg):
        host, port = settings.local_pg
        return Endpoint(
            "postgresql", LOCAL, f"postgresql://postgres@{host}:{port}/{DEFAULT_DATABASE}"
        )
    server = EmbeddedPostgres(settings.home)
    status = server.status(DEFAULT_DATABASE)
    if status.running:
        return Endpoint("postgresql", EMBEDDED_SOURCE, status.url)
    if not start:
        return Endpoint("postgresql", EMBEDDED_SOURCE, None, note="not running")
    server.start()
    return Endpoint("postgresql", EMBEDDED_SOURCE, server.url(DEFAULT_DATABASE), note="started")


def resolve_redis(settings: Settings, *, start: bool = True) -> Endpoint:
    url = settings.redis_url
    if url and url != EMBEDDED:
        return Endpoint("redis", CONFIGURED, url, note=_unchecked_password(url))
    if url != EMBEDDED and answers(settings.local_redis):
        host, port = settings.local_redis
        return Endpoint("redis", LOCAL, f"redis://{host}:{port}/0")
    server = EmbeddedRedis(settings.home)
    status = server.status()
    if status.running:
        return Endpoint("redis", EMBEDDED_SOURCE, status.url)
    if not start:
        return Endpoint("redis", EMBEDDED_SOURCE, None, note="not running")
    try:
        server.start()
    except EmbeddedUnavailable as exc:
        return Endpoint("redis", UNAVAILABLE, None, note=f"{exc}; cache runs in-process only")
    return Endpoint("redis", EMBEDDED_SOURCE, server.url(), note="started")
