"""What the cache holds in Redis, by kind: key counts and bytes (SCAN, never KEYS)."""

from __future__ import annotations

import re
from typing import Any

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


def check_kind(kind: str | None) -> str | None:
    from wcperf.errors import ConfigError

    if kind is not None and not _KIND.match(kind):
        raise ConfigError(f"--prefix must be a cache kind such as student_detail, not {kind!r}")
    return kind


def glob_escape(literal: str) -> str:
    """`literal` as a SCAN MATCH pattern that matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", literal)


def events_channel(prefix: str) -> str:
    """Where processes announce generation bumps and flushes to each other's L1."""
    return f"{prefix}cache-events"


def delete_entries(client: Any, prefix: str, kind: str | None = None) -> int:
    """UNLINK the entries of `kind` (all if None) and tell every process to drop its L1 copies."""
    deleted = 0
    batch: list[bytes] = []
    for k in client.scan_iter(match=glob_escape(f"{prefix}cache:{kind or ''}") + "*", count=1000):
        batch.append(k)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    client.publish(events_channel(prefix), f"flush {kind or ''}".strip())
    return deleted


def inventory(client: Any, prefix: str, kind: str | None = None) -> dict[str, dict[str, int]]:
    """{kind: {"keys": n, "bytes": n}} for the cache entries under `prefix`."""
    out: dict[str, dict[str, int]] = {}
    base = f"{prefix}cache:"
    keys = [
        k
        for k in client.scan_iter(match=glob_escape(f"{base}{kind or ''}") + "*", count=1000)
        if not k.endswith(b":lock")
    ]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for k in chunk:
            pipe.strlen(k)
        for k, size in zip(chunk, pipe.execute(), strict=True):
            name = k.decode()[len(base) :].split(":", 1)[0]
            slot = out.setdefault(name, {"keys": 0, "bytes": 0})
            slot["keys"] += 1
            slot["bytes"] += int(size)
    return out
