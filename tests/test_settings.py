from pathlib import Path

import pytest

from wcperf.errors import ConfigError
from wcperf.settings import Settings
from wcperf.urls import check, mask_url, redact


def test_database_url_prefers_wcperf_variable() -> None:
    s = Settings.from_env(
        {"WCPERF_DATABASE_URL": "postgresql://a@h/x", "DATABASE_URL": "postgresql://b@h/y"}
    )
    assert s.database_url == "postgresql://a@h/x"
    assert (
        Settings.from_env({"DATABASE_URL": "postgresql://b@h/y"}).database_url
        == "postgresql://b@h/y"
    )


def test_flags_override_environment() -> None:
    s = Settings.from_env(
        {"WCPERF_DATABASE_URL": "postgresql://a@h/x", "REDIS_URL": "redis://h"},
        database_url="postgresql://flag@h/z",
        redis_url=None,
    )
    assert s.database_url == "postgresql://flag@h/z"
    assert s.redis_url == "redis://h"


def test_pool_size_follows_environment() -> None:
    assert Settings.from_env({}).pool.max_size == 10
    prod = Settings.from_env({"WCPERF_ENV": "production"})
    assert prod.pool.max_size == 20
    assert (prod.pool.min_size, prod.pool.acquire_timeout_s, prod.pool.max_idle_s) == (
        2,
        30.0,
        10.0,
    )
    assert prod.pool.statement_timeout_ms == 30_000
    assert Settings.from_env({}, env="production").pool.max_size == 20
    assert Settings.from_env({"WCPERF_ENV": "production"}, env="development").pool.max_size == 10


def test_application_name_names_the_command() -> None:
    assert Settings.from_env({}, command="seed").application_name == "wcperf:seed"


@pytest.mark.parametrize(
    "env",
    [
        {"WCPERF_ENV": "staging"},
        {"WCPERF_DATABASE_URL": "mysql://root@h/x"},
        {"WCPERF_DATABASE_URL": "postgresql://u:p@h:notaport/x"},
        {"REDIS_URL": "http://h"},
        {"WCPERF_LOCAL_PG": "nohostport"},
        {"WCPERF_POOL_SIZE": "0"},
        {"WCPERF_SLOW_MS": "nan"},
        {"WCPERF_N_PLUS_ONE_WINDOW_S": "inf"},
        {"WCPERF_STATUS_INTERVAL_S": "0"},
        {"WCPERF_POOL_CHECK_IDLE_S": "-1"},
        {"WCPERF_POOL_CHECK_IDLE_S": "nan"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        check(Settings.from_env(env))
    assert "s3cret" not in str(info.value)


def test_the_p99_target_is_the_bulk_jobs_absolute_latency_limit() -> None:
    assert Settings.from_env({}).bulk.throttle["live_p99_ms"] == (1000.0, None)
    moved = Settings.from_env({"WCPERF_TARGETS": "p99_ms=300"})
    assert moved.bulk.throttle["live_p99_ms"] == (300.0, None)
    given = Settings.from_env(
        {"WCPERF_TARGETS": "p99_ms=300", "WCPERF_THROTTLE": "live_p99_ms=500:900"}
    )
    assert given.bulk.throttle["live_p99_ms"] == (500.0, 900.0)


def test_the_pool_check_may_be_asked_for_every_time() -> None:
    assert Settings.from_env({"WCPERF_POOL_CHECK_IDLE_S": "0"}).pool.check_idle_s == 0.0
    assert Settings.from_env({}).pool.check_idle_s == 1.0


def test_home_and_local_addresses() -> None:
    s = Settings.from_env({"WCPERF_HOME": "/tmp/h", "WCPERF_LOCAL_PG": "127.0.0.1:1"})
    assert s.home == Path("/tmp/h")
    assert s.local_pg == ("127.0.0.1", 1)


@pytest.mark.parametrize(
    "url,shown",
    [
        (
            "postgresql://nurse:s3cret@db.example:5432/wc",
            "postgresql://nurse:***@db.example:5432/wc",
        ),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://nurse@db/wc", "postgresql://nurse@db/wc"),
        ("postgresql://u:s3cret@h:bad/x", "postgresql://u:***@h:bad/x"),
        (None, "(none)"),
    ],
)
def test_mask_url(url: str | None, shown: str) -> None:
    assert mask_url(url) == shown


def test_redact_removes_password_from_messages() -> None:
    assert redact("auth failed for s3cret", "postgresql://u:s3cret@h/x") == "auth failed for ***"


def test_every_default_lives_in_the_tree_and_says_where_it_came_from() -> None:
    s = Settings.from_env(
        {"WCPERF_THROTTLE": "active_backends=8:64", "WCPERF_N_PLUS_ONE_WINDOW_S": "2.5"},
        env="production",
    )
    shown = {name: (value, origin) for name, value, origin in s.shown()}
    assert shown["bulk.throttle.active_backends"] == ("8:64", "$WCPERF_THROTTLE")
    assert shown["bulk.throttle.lock_waits"] == ("1:20", "default")
    assert shown["monitor.n_plus_one_window_s"] == (2.5, "$WCPERF_N_PLUS_ONE_WINDOW_S")
    assert shown["pool.max_size"] == (20, "--env")
    assert shown["env"] == ("production", "--env")
    assert shown["index.lock_timeout_ms"] == (2000, "default")
    assert shown["cache.ttl_s.medication_catalogue"] == (1800, "default")
    assert s.bulk.throttle["active_backends"] == (8.0, 64.0)


def test_the_cache_secret_is_never_shown() -> None:
    s = Settings.from_env({"WCPERF_CACHE_SECRET": "s3cret-canary-value"})
    shown = {name: (value, origin) for name, value, origin in s.shown()}
    assert shown["cache_secret"] == ("(given)", "$WCPERF_CACHE_SECRET")
    assert "s3cret-canary-value" not in repr(s.shown())


@pytest.mark.parametrize(
    "env",
    [
        {"WCPERF_THROTTLE": "no_such_signal=1"},
        {"WCPERF_THROTTLE": "active_backends=nan"},
        {"WCPERF_MAX_WORKLOAD": "0"},
        {"WCPERF_N_PLUS_ONE_WINDOW_S": "-1"},
        {"WCPERF_N_PLUS_ONE": "many"},
        {"WCPERF_TARGETS": "pool_waiting=5.5"},
        {"WCPERF_TARGETS": "p99_ms=inf"},
        {"WCPERF_TARGETS": "p99_ms=nan"},
    ],
)
def test_bad_tree_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)
