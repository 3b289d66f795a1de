"""Secrets kept out of every output, and outside text made inert before it is shown.

`mask` is the one masking function: every message, table, report, audit row and
stream wcperf writes passes through it. It removes passwords in the forms they
arrive in (URL userinfo, `?password=` parameters, libpq keyword strings) and any
secret value this process has been given another way (`PGPASSWORD`, `.pgpass`,
service files, Redis URLs, the cache secret), spelled plain or percent-encoded.

`inert` is for text wcperf did not write itself (application names, URLs, revision
names, hosts, scenario names): control characters and newlines become visible
escapes, so a value can neither drive the terminal nor forge a line of output.
Shown through `text()`, it is never read as rich markup either.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, unquote

from rich.text import Text

MASK = "***"
MIN_SECRET = 4

_secrets: set[str] = set()
_known: re.Pattern[str] | None = None  # the secrets as one pattern, rebuilt when they change

# scheme://user:PASSWORD@ (the password may hold an unencoded '/', ':' or '@')
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*):(\S*)@")
# ?password=… or &sslpassword=… in a URL's query
_QUERY = re.compile(r"(?i)([?&](?:ssl)?password=)[^&\s#\"',;]*")
# password=… in a libpq keyword string, quoted or not
_KEYWORD = re.compile(r"(?i)(?<![?&\w])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'\",;]+)")
# what `inert` escapes: C0 and C1 controls, DEL, and the bidirectional overrides
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def remember(secret: str | None) -> None:
    """A value that must never be shown, from now on, in any output of this process.

    Values shorter than `MIN_SECRET` are left to the patterns (URL userinfo,
    `password=`): masking every "pw" in every line would garble all output while
    protecting a password anyone could guess.
    """
    global _known
    if secret and len(secret) >= MIN_SECRET:
        before = len(_secrets)
        _secrets.add(secret)
        if (encoded := quote(secret, safe="")) != secret:
            _secrets.add(encoded)
        if len(_secrets) != before:
            # Whole values only: a password "postgres" is masked where it stands
            # alone (`postgres:***@`, `"postgres"`), not inside "postgresql".
            alternatives = "|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True))
            _known = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


def remember_url(url: str | None) -> None:
    """The password a URL or keyword string carries, however it is spelled."""
    if not url:
        return
    if match := _USERINFO.search(url):
        remember(unquote(match.group(2)))
    for match in re.finditer(r"(?i)[?&](?:ssl)?password=([^&\s#]*)", url):
        remember(unquote(match.group(1)))
    if "://" not in url:  # a keyword string: libpq's own parse knows where a value ends
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(url)
        except ProgrammingError:
            params = {}
        remember(str(params.get("password") or ""))
        remember(str(params.get("sslpassword") or ""))


def remember_environment(environ: dict[str, str] | os._Environ[str] | None = None) -> None:
    """Every password libpq could use on its own: `PGPASSWORD`, `.pgpass`, service files."""
    env = os.environ if environ is None else environ
    remember(env.get("PGPASSWORD"))
    remember(env.get("WCPERF_CACHE_SECRET"))
    for name in ("WCPERF_DATABASE_URL", "DATABASE_URL", "REDIS_URL"):
        remember_url(env.get(name))
    home = Path(env.get("HOME") or Path.home())
    passfile = Path(env.get("PGPASSFILE") or home / ".pgpass")
    for line in _lines(passfile):
        fields = re.split(r"(?<!\\):", line, maxsplit=4)
        if len(fields) == 5:
            remember(re.sub(r"\\(.)", r"\1", fields[4]))
    services = [Path(env.get("PGSERVICEFILE") or home / ".pg_service.conf")]
    if conf := env.get("PGSYSCONFDIR"):
        services.append(Path(conf) / "pg_service.conf")
    for path in services:
        for line in _lines(path):
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() in ("password", "sslpassword"):
                remember(value.strip())


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def mask(text: str) -> str:
    """`text` with every password in it replaced by ***."""
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _KEYWORD.sub(rf"\1{MASK}", text)
    if _known is not None:
        text = _known.sub(MASK, text)
    return text


def inert(value: object) -> str:
    """`value` as text that cannot drive a terminal or break a line: controls escaped."""
    return _CONTROL.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object) -> str:
    """Outside text as it may be printed: masked and inert."""
    return inert(mask(str(value)))


def text(value: object, style: str = "") -> Text:
    """Outside text as a rich renderable: masked, inert, never parsed as markup."""
    return Text(shown(value), style=style)


class MaskingStream(io.TextIOBase):
    """A text stream that masks secrets in everything written through it.

    Installed over stdout and stderr by the CLI, so that nothing printed (rich
    output, click's messages, a `--debug` traceback) can carry a password.
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, s: str) -> int:
        self.inner.write(mask(s))
        return len(s)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "errors", None)

    def writable(self) -> bool:
        return True


def install() -> None:
    """Mask stdout and stderr of this process (idempotent)."""
    remember_environment()
    if not isinstance(sys.stdout, MaskingStream):
        sys.stdout = MaskingStream(sys.stdout)
    if not isinstance(sys.stderr, MaskingStream):
        sys.stderr = MaskingStream(sys.stderr)
