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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wcperf.errors import ConfigError
from wcperf.settings import CACHE_TTL_S

TTL_S = CACHE_TTL_S  # by kind, from the settings tree (SPEC.md)
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
        # Written whole under a name of its own, then linked into place: processes that
        # start together (a load test's workers) all end up with the first one's secret,
        # and none reads a file that is still empty.
        home.mkdir(parents=True, exist_ok=True)
        draft = home / f".cache-secret.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
                fh.flush()
                os.fsync(fh.fileno())
            os.link(draft, path)
        except FileExistsError:
            pass  # another process linked its own first: that one is the secret
        finally:
            draft.unlink(missing_ok=True)
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


def keyed_name(secret: bytes, name: str) -> str:
    """A generation name fit for Redis: a row bucket's number keyed with the secret.

    `health_records.studentId.1234` names a bucket of students; 1234 is a plain
    checksum of the id, which anyone could compute for every student. The name in
    Redis (key and pub/sub message) is `health_records.studentId.<HMAC>` instead,
    which nobody without the secret can map back to a child.
    """
    scope, sep, bucket = name.rpartition(".")
    if not sep or not bucket.isdigit():  # a whole table, or its unplaced writes: no value
        return name
    return f"{scope}.{hmac.new(secret, name.encode(), hashlib.sha256).hexdigest()[:12]}"


_SEALED = b"\x01"  # format version of a sealed value


class Sealer:
    """Encrypts and authenticates cached values for Redis (AES-256-GCM, bound to their key).

    Redis holds names, phones and diagnosis codes for up to 30 minutes; sealed, a
    dump or a MONITOR shows none of them, and a value copied to another key or
    forged by whoever can write to Redis fails to open. The cipher is set up once
    (its key schedule costs more than sealing a cached row).
    """

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hmac.new(secret, b"wcperf cache value key", hashlib.sha256).digest())

    def seal(self, payload: bytes, key: str) -> bytes:
        nonce = os.urandom(12)
        return _SEALED + nonce + self._aead.encrypt(nonce, payload, key.encode())

    def unseal(self, blob: bytes, key: str) -> bytes | None:
        """The payload sealed for `key`, or None if this secret did not seal it for it."""
        if blob[:1] != _SEALED or len(blob) < 29:
            return None
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], key.encode())
        except InvalidTag:
            return None


def seal(secret: bytes, payload: bytes, key: str) -> bytes:
    return Sealer(secret).seal(payload, key)


def unseal(secret: bytes, blob: bytes, key: str) -> bytes | None:
    return Sealer(secret).unseal(blob, key)
