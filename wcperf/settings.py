"""One Settings object, read from the environment and overridden by CLI flags.

Resolution order for each server: an explicit flag, then the environment
(`WCPERF_DATABASE_URL`, falling back to `DATABASE_URL`; `REDIS_URL`); for
PostgreSQL then libpq's own variables (`PGHOST`, `PGSERVICE`, ...) as psql reads
them; then a server answering on the local default address, then the embedded
servers in wcperf's home. The value `embedded` asks for the embedded server outright.
A PostgreSQL setting may be a URL or a libpq keyword string (`host=db dbname=wc`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wcperf.errors import ConfigError
from wcperf.observe.targets import Targets
from wcperf.redact import mask, remember, remember_url, shown

ENVIRONMENTS = ("production", "development")
EMBEDDED = "embedded"
DEFAULT_DATABASE = "wcperf"


@dataclass(frozen=True)
class PoolSettings:
    """SPEC.md's pool: 20 connections in production, 10 otherwise."""

    max_size: int = 10
    min_size: int = 2
    acquire_timeout_s: float = 30.0
    max_idle_s: float = 10.0
    reconnect_timeout_s: float = 300.0
    statement_timeout_ms: int = 30_000
    idle_in_transaction_timeout_ms: int = 60_000


@dataclass(frozen=True)
class MonitorSettings:
    """Slow-query threshold, N+1 detection and the targets alerts are judged against."""

    slow_ms: float = 500.0
    n_plus_one_threshold: int = 5
    n_plus_one_window_s: float = 1.0
    health_interval_s: float = 60.0
    targets: Targets = field(default_factory=Targets)


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    env: str = "development"
    home: Path = field(default_factory=lambda: default_home(os.environ))
    local_pg: tuple[str, int] = ("127.0.0.1", 5432)
    local_redis: tuple[str, int] = ("127.0.0.1", 6379)
    pg_environment: str | None = None  # what PG* variables ask for, as a keyword string
    redis_prefix: str = "wcperf:"
    cache_secret: str | None = None
    pool: PoolSettings = field(default_factory=PoolSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    command: str = "cli"

    @property
    def application_name(self) -> str:
        return f"wcperf:{self.command}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env_vars = os.environ if environ is None else environ
        env = (env_vars.get("WCPERF_ENV") or "development").strip().lower()
        if env not in ENVIRONMENTS:
            raise ConfigError(f"WCPERF_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
        pool_size = 20 if env == "production" else 10
        if raw := env_vars.get("WCPERF_POOL_SIZE"):
            pool_size = _positive_int("WCPERF_POOL_SIZE", raw)
        settings = cls(
            database_url=env_vars.get("WCPERF_DATABASE_URL")
            or env_vars.get("DATABASE_URL")
            or None,
            redis_url=env_vars.get("REDIS_URL") or None,
            pg_environment=libpq_environment(env_vars),
            env=env,
            home=default_home(env_vars),
            local_pg=_address(
                "WCPERF_LOCAL_PG", env_vars.get("WCPERF_LOCAL_PG"), ("127.0.0.1", 5432)
            ),
            local_redis=_address(
                "WCPERF_LOCAL_REDIS", env_vars.get("WCPERF_LOCAL_REDIS"), ("127.0.0.1", 6379)
            ),
            redis_prefix=_prefix(env_vars.get("WCPERF_REDIS_PREFIX") or "wcperf:"),
            cache_secret=env_vars.get("WCPERF_CACHE_SECRET") or None,
            pool=PoolSettings(max_size=pool_size),
            monitor=MonitorSettings(
                slow_ms=_number("WCPERF_SLOW_MS", env_vars.get("WCPERF_SLOW_MS"), 500.0),
                n_plus_one_threshold=int(
                    _number("WCPERF_N_PLUS_ONE", env_vars.get("WCPERF_N_PLUS_ONE"), 5)
                ),
                targets=Targets.parse(env_vars.get("WCPERF_TARGETS")),
            ),
        )
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        if "env" in given and given["env"] != settings.env:
            env = str(given["env"])
            if env not in ENVIRONMENTS:
                raise ConfigError(f"--env must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
            if not env_vars.get("WCPERF_POOL_SIZE"):
                given["pool"] = replace(settings.pool, max_size=20 if env == "production" else 10)
        settings = replace(settings, **given)
        remember(settings.cache_secret)
        for url, keywords in ((settings.database_url, True), (settings.redis_url, False)):
            if url and url != EMBEDDED:
                remember_url(url)
                validate_url(url, keywords=keywords)
        return settings


_HOST = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$")  # a name, IPv4, or [IPv6]
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _prefix(raw: str) -> str:
    """Letters, digits and `_.:-` only: a prefix is also a SCAN pattern, where `*?[]\\`
    would reach other tenants' keys."""
    if not _PREFIX.match(raw):
        raise ConfigError(
            "WCPERF_REDIS_PREFIX may hold only letters, digits and _ . : - "
            "(1 to 64 of them), not " + repr(raw)
        )
    return raw


def default_home(env: Mapping[str, str]) -> Path:
    """Where the embedded servers and the cache secret live: one place per user.

    `WCPERF_HOME`, else `$XDG_DATA_HOME/wcperf` (`~/.local/share/wcperf`), whatever
    the current folder, so a command run from elsewhere finds the same servers. As
    root, `/var/lib/wcperf`: the embedded PostgreSQL runs as an unprivileged OS user
    that must reach its data, and root's own home is private.
    """
    if env.get("WCPERF_HOME"):
        return Path(env["WCPERF_HOME"]).expanduser()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not env.get("XDG_DATA_HOME"):
        return Path("/var/lib/wcperf")
    data = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/share")
    return Path(data).expanduser() / "wcperf"


# libpq's own variables: any of them set means "connect the way psql would".
LIBPQ_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE")


def libpq_environment(env: Mapping[str, str]) -> str | None:
    """A keyword string naming what the PG* variables ask for, or None if none is set.

    Passwords are left to libpq (`PGPASSWORD`, `~/.pgpass`), and so are `PGSSLMODE`
    and its friends: it reads them itself for any connection that does not override
    them, so they never pass through wcperf's strings.
    """
    given = {
        key: env[var]
        for var, key in zip(
            LIBPQ_VARS, ("host", "hostaddr", "port", "user", "dbname", "service"), strict=True
        )
        if env.get(var)
    }
    if not given:
        return None
    return " ".join(f"{k}={_quoted(v)}" for k, v in given.items())


def _quoted(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def _number(name: str, raw: str | None, default: float) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be above 0")
    return value


def _address(name: str, raw: str | None, default: tuple[str, int]) -> tuple[str, int]:
    return parse_address(name, raw) if raw else default


def parse_address(name: str, raw: str, default_port: int | None = None) -> tuple[str, int]:
    """HOST:PORT, or HOST alone when there is a `default_port`."""
    given = raw if default_port is None or ":" in raw else f"{raw}:{default_port}"
    host, sep, port = given.rpartition(":")
    if (
        not sep
        or not _HOST.match(host)
        or not (port.isascii() and port.isdigit())
        or not 0 < int(port) < 65536
    ):
        form = "HOST:PORT" if default_port is None else "HOST or HOST:PORT"
        raise ConfigError(f"{name} must be {form}, not {raw!r}")
    return host, int(port)


_SCHEMES = {
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "redis",
    "rediss",
    "unix",
}


def is_keywords(value: str) -> bool:
    """A libpq keyword string (`host=db dbname=wc`) rather than a URL."""
    return "://" not in value and "=" in value


def validate_url(url: str, *, keywords: bool = False) -> None:
    """Refuse a URL (or, for PostgreSQL, a keyword string) we could not use, before
    anything connects."""
    if keywords and is_keywords(url):
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(url)
        except ProgrammingError:
            raise ConfigError(f"malformed connection string: {mask_url(url)}") from None
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        raise ConfigError(f"malformed URL: {mask_url(url)}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"malformed URL: {mask_url(url)} (scheme must be postgresql:// or redis://, "
            "or give a libpq keyword string such as 'host=db dbname=wc')"
        )


def mask_url(url: str | None) -> str:
    """A URL or keyword string fit to print: passwords masked, controls escaped."""
    if not url:
        return "(none)"
    remember_url(url)
    return shown(url)


def redact(text: str, url: str | None) -> str:
    """A server or driver message about `url`, with its password (in any form) masked."""
    remember_url(url)
    return mask(text)
