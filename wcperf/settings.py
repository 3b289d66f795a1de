"""One Settings tree, read from the environment and overridden by CLI flags: it owns
every default wcperf has (servers, pool, targets, throttle thresholds, cache TTLs,
N+1 detection, lock timeouts, ports), and remembers where each value came from, so
`wcperf config show` can say. No other module keeps a copy of a default.

Resolution order for each server: an explicit flag, then the environment
(`WCPERF_DATABASE_URL`, falling back to `DATABASE_URL`; `REDIS_URL`); for
PostgreSQL then libpq's own variables (`PGHOST`, `PGSERVICE`, ...) as psql reads
them; then a server answering on the local default address, then the embedded
servers in wcperf's home. The value `embedded` asks for the embedded server outright.
A PostgreSQL setting may be a URL or a libpq keyword string (`host=db dbname=wc`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from wcperf.errors import ConfigError

ENVIRONMENTS = ("production", "development")
EMBEDDED = "embedded"
DEFAULT_DATABASE = "wcperf"


@dataclass(frozen=True)
class Targets:
    """SPEC.md's figures to beat; alerts and the loadtest verdict are judged against them."""

    p50_ms: float = 100.0
    p95_ms: float = 500.0
    p99_ms: float = 1000.0
    cache_hit_pct: float = 80.0
    pool_utilisation_pct: float = 80.0  # warning above
    pool_critical_pct: float = 95.0  # critical above
    pool_waiting: int = 5  # "high wait queue" above
    n_plus_one: int = 0
    error_pct: float = 1.0  # a load run's failed operations, in % (the verdict's alone)

    @classmethod
    def parse(cls, text: str | None, base: Targets | None = None) -> Targets:
        """`p95_ms=300,cache_hit_pct=85` over the defaults."""
        if not text:
            return base or cls()
        names = {f.name for f in fields(cls)}
        given: dict[str, float] = {}
        for part in text.split(","):
            key, sep, raw = part.strip().partition("=")
            if not sep or key not in names:
                raise ConfigError(f"unknown target {key!r}; known: {', '.join(names)}")
            try:
                given[key] = float(raw)
            except ValueError:
                raise ConfigError(f"target {key} must be a number, not {raw!r}") from None
            if not math.isfinite(given[key]):
                raise ConfigError(f"target {key} must be a finite number, not {raw!r}")
            if given[key] != int(given[key]) and cls.whole(key):
                raise ConfigError(f"target {key} must be a whole number, not {raw!r}")
        return cls.of(given, base)

    @classmethod
    def of(cls, given: Mapping[str, float], base: Targets | None = None) -> Targets:
        """Named figures over `base` (or the defaults), each in its field's type."""
        changes = {k: int(v) if cls.whole(k) else float(v) for k, v in given.items()}
        return replace(base or cls(), **changes)  # type: ignore[arg-type]  # typed per field

    @classmethod
    def whole(cls, name: str) -> bool:
        """The target counts things (a whole number), not a measure."""
        return {f.name: f.type for f in fields(cls)}[name] in ("int", int)


# Backpressure: each signal's (pause, abort) threshold, None for off (SPEC.md).
THROTTLE_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "pool_waiting": (1, None),
    "pool_util_pct": (80, None),
    "others_waiting": (6, 50),
    "others_util_pct": (95, None),
    "live_p99_ratio": (1.5, None),
    "live_p99_ms": (1000.0, None),  # SPEC's P99 target; WCPERF_TARGETS' p99_ms moves it
    "active_backends": (16, 128),
    "lock_waits": (1, 20),
    "autovacuum": (None, None),
    "replica_lag_s": (10, 300),
}

# Seconds a cached read lives, by kind (SPEC.md).
CACHE_TTL_S: dict[str, int] = {
    "student_detail": 600,
    "grade_list": 300,
    "medication_catalogue": 1800,
    "user_profile": 900,
    "health_summary": 300,
    "appointment_calendar": 300,
    "emergency_contact_stats": 600,
}


@dataclass(frozen=True)
class BulkSettings:
    """Bulk jobs: thresholds over THROTTLE_LIMITS, the workload limit, batch pacing."""

    # each signal's (pause, abort) threshold: THROTTLE_LIMITS under $WCPERF_THROTTLE
    throttle: dict[str, tuple[float | None, float | None]] = field(
        default_factory=lambda: dict(THROTTLE_LIMITS)
    )
    max_workload: int = 750  # active students a nurse may have after a reassignment
    target_batch_ms: float = 200.0
    lock_timeout_ms: int = 2_000  # per batch: a nurse's query never queues behind us
    atomic_timeout_ms: int = 3_600_000
    max_retries: int = 10
    status_interval_s: float = 10.0  # off a terminal: a status line this often


@dataclass(frozen=True)
class IndexSettings:
    """Online index builds."""

    lock_timeout_ms: int = 2_000
    attempts: int = 6
    wait_for_builds_s: float = 1800.0  # for a build a killed run left going


@dataclass(frozen=True)
class PortSettings:
    # `monitor serve`: the exporters' range (9100-9999) is all allocated; 9816 is none of
    # those a database host runs (node 9100, redis 9121, pgbouncer 9127, postgres 9187)
    metrics: int = 9816
    load_master: int = 5557  # locust's


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
    # a connection back in the pool for less than this, whose socket has said nothing
    # since, is handed out without a round trip (wcperf.db.engine.idle_check)
    check_idle_s: float = 1.0


@dataclass(frozen=True)
class MonitorSettings:
    """Slow-query threshold, N+1 detection and the targets alerts are judged against."""

    slow_ms: float = 500.0
    n_plus_one_threshold: int = 5
    n_plus_one_window_s: float = 1.0
    health_interval_s: float = 60.0
    targets: Targets = field(default_factory=Targets)
    # the server's log to follow: a path on this host, "auto" (through the server), or ""
    server_log: str = ""


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
    bulk: BulkSettings = field(default_factory=BulkSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    ports: PortSettings = field(default_factory=PortSettings)
    command: str = "cli"
    # where each value came from, by dotted name: "$VAR", "--flag", or absent for default
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def application_name(self) -> str:
        return f"wcperf:{self.command}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The tree from `environ` (the process's by default), then the flags given as
        keyword arguments (None means not given). URLs are checked and their secrets
        remembered for masking by `wcperf.urls.check`, which the CLI runs on the result."""
        r = _Reader(os.environ if environ is None else environ)
        env = (r.get("WCPERF_ENV", "env") or "development").strip().lower()
        if env not in ENVIRONMENTS:
            raise ConfigError(f"WCPERF_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
        pool_size = _pool_size(env)
        if raw := r.get("WCPERF_POOL_SIZE", "pool.max_size"):
            pool_size = _positive_int("WCPERF_POOL_SIZE", raw)
        elif env != "development":
            r.origins["pool.max_size"] = "$WCPERF_ENV"
        if r.env.get("WCPERF_HOME"):
            r.origins["home"] = "$WCPERF_HOME"
        elif r.env.get("XDG_DATA_HOME"):
            r.origins["home"] = "$XDG_DATA_HOME"
        pg_environment = libpq_environment(r.env)
        if pg_environment:
            r.origins["pg_environment"] = "$PG*"
        d_monitor, d_bulk = MonitorSettings(), BulkSettings()
        targets = Targets.parse(r.get("WCPERF_TARGETS", "monitor.targets"))
        throttle_raw = r.get("WCPERF_THROTTLE", "bulk.throttle")
        throttle = parse_throttle(throttle_raw)
        if "live_p99_ms" not in (throttle_raw or ""):  # the P99 target is the absolute limit
            throttle["live_p99_ms"] = (targets.p99_ms, None)
            if "monitor.targets" in r.origins:
                r.origins["bulk.throttle.live_p99_ms"] = r.origins["monitor.targets"]
        settings = cls(
            database_url=r.get("WCPERF_DATABASE_URL", "database_url")
            or r.get("DATABASE_URL", "database_url"),
            redis_url=r.get("REDIS_URL", "redis_url"),
            pg_environment=pg_environment,
            env=env,
            home=default_home(r.env),
            local_pg=_address(
                "WCPERF_LOCAL_PG", r.get("WCPERF_LOCAL_PG", "local_pg"), ("127.0.0.1", 5432)
            ),
            local_redis=_address(
                "WCPERF_LOCAL_REDIS",
                r.get("WCPERF_LOCAL_REDIS", "local_redis"),
                ("127.0.0.1", 6379),
            ),
            redis_prefix=_prefix(r.get("WCPERF_REDIS_PREFIX", "redis_prefix") or "wcperf:"),
            cache_secret=r.get("WCPERF_CACHE_SECRET", "cache_secret"),
            pool=PoolSettings(
                max_size=pool_size,
                check_idle_s=_number(
                    "WCPERF_POOL_CHECK_IDLE_S",
                    r.get("WCPERF_POOL_CHECK_IDLE_S", "pool.check_idle_s"),
                    PoolSettings().check_idle_s,
                    allow_zero=True,
                ),
            ),
            monitor=MonitorSettings(
                slow_ms=_number(
                    "WCPERF_SLOW_MS", r.get("WCPERF_SLOW_MS", "monitor.slow_ms"), d_monitor.slow_ms
                ),
                n_plus_one_threshold=_positive_int(
                    "WCPERF_N_PLUS_ONE",
                    r.get("WCPERF_N_PLUS_ONE", "monitor.n_plus_one_threshold")
                    or str(d_monitor.n_plus_one_threshold),
                ),
                n_plus_one_window_s=_number(
                    "WCPERF_N_PLUS_ONE_WINDOW_S",
                    r.get("WCPERF_N_PLUS_ONE_WINDOW_S", "monitor.n_plus_one_window_s"),
                    d_monitor.n_plus_one_window_s,
                ),
                targets=targets,
                server_log=r.get("WCPERF_SERVER_LOG", "monitor.server_log") or "",
            ),
            bulk=BulkSettings(
                throttle=throttle,
                max_workload=_positive_int(
                    "WCPERF_MAX_WORKLOAD",
                    r.get("WCPERF_MAX_WORKLOAD", "bulk.max_workload") or str(d_bulk.max_workload),
                ),
                status_interval_s=_number(
                    "WCPERF_STATUS_INTERVAL_S",
                    r.get("WCPERF_STATUS_INTERVAL_S", "bulk.status_interval_s"),
                    d_bulk.status_interval_s,
                ),
            ),
            origins=r.origins,
        )
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        if "env" in given and given["env"] != settings.env:
            env = str(given["env"])
            if env not in ENVIRONMENTS:
                raise ConfigError(f"--env must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
            if not r.env.get("WCPERF_POOL_SIZE"):
                given["pool"] = replace(settings.pool, max_size=_pool_size(env))
                r.origins["pool.max_size"] = "--env"
        for name in given.keys() & FLAGS.keys():
            r.origins[name] = FLAGS[name]
        return replace(settings, **given)

    def shown(self) -> list[tuple[str, Any, str]]:
        """Every setting as (dotted name, value, where it came from): what `config show`
        prints. The cache secret is never shown, only whether it was given."""
        rows: list[tuple[str, Any, str]] = []

        def walk(prefix: str, node: Any) -> None:
            for f in fields(node):
                if f.name in ("origins", "command"):
                    continue
                name, value = f"{prefix}{f.name}", getattr(node, f.name)
                if hasattr(value, "__dataclass_fields__"):
                    walk(f"{name}.", value)
                    continue
                if name == "cache_secret":
                    value = "(given)" if value else "(none: kept in wcperf's home)"
                elif isinstance(value, Path):
                    value = str(value)
                elif isinstance(value, tuple) and len(value) == 2 and name.startswith("local_"):
                    value = f"{value[0]}:{value[1]}"
                elif isinstance(value, dict):  # the throttle: one row per signal
                    given = self.origins.get(name, "default")
                    rows.extend(
                        (f"{name}.{k}", ":".join("-" if v is None else f"{v:g}" for v in pair),
                         "default" if pair == THROTTLE_LIMITS.get(k)
                         else self.origins.get(f"{name}.{k}", given))
                        for k, pair in value.items()
                    )  # fmt: skip
                    continue
                origin = self.origins.get(name)
                if origin is None:  # a section given whole, such as "$WCPERF_TARGETS"
                    origin = next(
                        (o for k, o in self.origins.items() if name.startswith(k + ".")), "default"
                    )
                rows.append((name, value, origin))

        walk("", self)
        rows += [(f"cache.ttl_s.{k}", v, "default") for k, v in CACHE_TTL_S.items()]
        return rows


def parse_throttle(
    specs: list[str] | str | None,
    base: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, tuple[float | None, float | None]]:
    """`active_backends=8:64,autovacuum=1:-` over `base` (the built-in limits): pause:abort
    per signal, `-` for off; an abort left out is off."""
    limits = dict(THROTTLE_LIMITS if base is None else base)
    parts: list[str] = []
    for spec in [specs] if isinstance(specs, str) else specs or []:
        parts += [p.strip() for p in spec.split(",") if p.strip()]
    for part in parts:
        name, sep, raw = part.partition("=")
        if not sep or name not in THROTTLE_LIMITS:
            raise ConfigError(
                f"unknown throttle signal {name!r}; known: {', '.join(THROTTLE_LIMITS)}"
            )
        pause_raw, _, abort_raw = raw.partition(":")
        limits[name] = (
            _threshold(name, pause_raw),
            _threshold(name, abort_raw) if abort_raw else None,
        )
    return limits


def _threshold(name: str, raw: str) -> float | None:
    if raw.strip() in ("", "-", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"throttle {name}: {raw!r} is not a number (use pause:abort, '-' for off)"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"throttle {name}: thresholds must be above 0")
    return value


FLAGS = {"database_url": "--database-url", "redis_url": "--redis-url", "env": "--env"}


class _Reader:
    """Environment variables, noting which setting each one set."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.origins: dict[str, str] = {}

    def get(self, var: str, setting: str) -> str | None:
        raw = self.env.get(var)
        if not raw:
            return None
        self.origins.setdefault(setting, f"${var}")
        return raw


def _pool_size(env: str) -> int:
    """SPEC.md: 20 connections in production, 10 otherwise."""
    return 20 if env == "production" else 10


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


def _number(name: str, raw: str | None, default: float, *, allow_zero: bool = False) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "above 0"
        raise ConfigError(f"{name} must be a finite number {least}, not {raw!r}")
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
