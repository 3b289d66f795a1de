"""Load processes die with the wcperf process that started them.

A `kill -9` of `wcperf loadtest` gives it no chance to stop its master and
workers: they would keep their connections and their load until their duration
ends (forever, had it been `inf`). So each child asks the kernel for SIGTERM when
its parent dies (Linux `PR_SET_PDEATHSIG`), and also watches its parent's pid
itself (any platform, and the case where the signal was missed). An orphan also
removes the run's temporary folder, which the killed parent could not.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

PARENT = "WCPERF_LOAD_PARENT"  # the pid the children must outlive no longer than
FOLDER = "WCPERF_LOAD_FOLDER"  # the run's temporary folder
_PR_SET_PDEATHSIG = 1


def preexec() -> Callable[[], None] | None:
    """For `Popen(preexec_fn=...)`: SIGTERM to the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None

    def ask() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return ask


def _parent() -> int | None:
    raw = os.environ.get(PARENT)
    return int(raw) if raw and raw.isdigit() else None


def _orphaned(parent: int) -> bool:
    return os.getppid() != parent


def _leave(parent: int, code: int) -> None:
    folder = os.environ.get(FOLDER)
    if folder and _orphaned(parent):
        for _ in range(5):  # siblings remove it at the same moment: until it is gone
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.exists(folder):
                break
            time.sleep(0.05)
    os._exit(code)


def arm() -> None:
    """In a child, first thing, before its slow imports (locust, gevent, psycopg take a
    second or more on a busy machine): the parent's death signal, which would otherwise
    kill it with the default action and leave the run's folder behind, now cleans up."""
    parent = _parent()
    if parent is None:
        return
    signal.signal(signal.SIGTERM, lambda *_: _leave(parent, 143))
    if _orphaned(parent):  # the parent died before we got here
        _leave(parent, 3)


def guard(poll_s: float = 0.5) -> None:
    """In a child: exit, cleaning the run's folder, once the parent is gone (also when
    its death signal was missed)."""
    parent = _parent()
    if parent is None:
        return
    arm()

    def watch() -> None:
        while not _orphaned(parent):
            time.sleep(poll_s)
        _leave(parent, 3)

    threading.Thread(target=watch, name="wcperf-parent-watch", daemon=True).start()


def child_env(env: dict[str, str], folder: Path) -> dict[str, str]:
    return {**env, PARENT: str(os.getpid()), FOLDER: str(folder)}
