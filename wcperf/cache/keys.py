"""Cache keys that name a query without revealing it, and TTLs by kind of data.

`prefix + cache:kind:Model:` + the first 16 hex digits of HMAC-SHA256(secret,
normalised statement, parameters). A plain hash of a student id could be reversed
by hashing every id; without the secret, a keyed one cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wcperf.errors import ConfigError

TTL_S = {  # SPEC.md
    "student_detail": 600,
    "grade_list": 300,
    "medication_catalogue": 1800,
    "user_profile": 900,
    "health_summary": 300,
    "appointment_calendar": 300,
    "emergency_contact_stats": 600,
}
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


def load_secret(configured: str | None, home: Path) -> bytes:
    """WCPERF_CACHE_SECRET, else a random one kept (0600) under .wcperf/.

    Processes on other machines sharing the Redis must be given the same secret.
    """
    if configured:
        if len(configured) < 16:
            raise ConfigError("WCPERF_CACHE_SECRET must be at least 16 characters")
        return configured.encode()
    path = home / "cache-secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _canonical(params: Mapping[str, Any]) -> bytes:
    return repr(sorted(params.items())).encode()


def key_digest(
    secret: bytes, statement: str, params: Mapping[str, Any], generations: tuple[int, ...] = ()
) -> str:
    """The key names the table generations it was built on: a write moves readers to a
    new key in O(1), and the old entries age out by their TTL."""
    mac = hmac.new(secret, statement.encode(), hashlib.sha256)
    mac.update(b"\x1f")
    mac.update(_canonical(params))
    mac.update(b"\x1f")
    mac.update(repr(generations).encode())
    return mac.hexdigest()[:16]


def cache_key(prefix: str, kind: str, model: str, digest: str) -> str:
    if not _KIND.match(kind) or not model.isidentifier():
        raise ValueError(f"bad cache kind or model: {kind!r} {model!r}")
    return f"{prefix}cache:{kind}:{model}:{digest}"


def sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest() + payload


def verify(secret: bytes, blob: bytes) -> bytes | None:
    mac, payload = blob[:32], blob[32:]
    good = hmac.new(secret, payload, hashlib.sha256).digest()
    return payload if hmac.compare_digest(mac, good) else None
