"""URLs and libpq keyword strings: checked before anything connects, and fit to print.

Apart from `settings` so that the settings tree depends on nothing but `errors`;
this is where a configured URL meets the masking in `redact`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from wcperf.errors import ConfigError
from wcperf.redact import mask, remember, remember_url, shown
from wcperf.settings import EMBEDDED, Settings


def check(settings: Settings) -> Settings:
    """Refuse a URL wcperf could not use, and remember every secret the settings hold so
    no output can show one; the settings themselves are returned unchanged."""
    remember(settings.cache_secret)
    for url, keywords in ((settings.database_url, True), (settings.redis_url, False)):
        if url and url != EMBEDDED:
            remember_url(url)
            validate_url(url, keywords=keywords)
    return settings


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
