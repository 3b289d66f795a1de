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

    def arm() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return arm


def guard(poll_s: float = 0.5) -> None:
    """In a child: exit, cleaning the run's folder, once the parent is gone."""
    raw = os.environ.get(PARENT)
    if not raw or not raw.isdigit():
        return
    parent = int(raw)
    folder = os.environ.get(FOLDER)

    def orphaned() -> bool:
        return os.getppid() != parent

    def leave(code: int) -> None:
        if folder and orphaned():
            for _ in range(5):  # siblings remove it at the same moment: until it is gone
                shutil.rmtree(folder, ignore_errors=True)
                if not os.path.exists(folder):
                    break
                time.sleep(0.05)
        os._exit(code)

    signal.signal(signal.SIGTERM, lambda *_: leave(143))
    if orphaned():  # the parent died before we got here
        leave(3)

    def watch() -> None:
        while not orphaned():
            time.sleep(poll_s)
        leave(3)

    threading.Thread(target=watch, name="wcperf-parent-watch", daemon=True).start()


def child_env(env: dict[str, str], folder: Path) -> dict[str, str]:
    return {**env, PARENT: str(os.getpid()), FOLDER: str(folder)}
