"""The in-process tier: bounded, least recently used first out, with a TTL."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


@dataclass
class L1Entry:
    value: Any
    gens: tuple[int, ...]
    tables: tuple[str, ...]
    expires: float
    size: int
    kind: str


class L1:
    def __init__(self, max_entries: int = 1000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, L1Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.evictions = 0
        self.expired = 0

    def get(self, key: Hashable) -> L1Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            self.drop(key)
            self.expired += 1
            return None
        try:
            self._data.move_to_end(key)
        except KeyError:  # dropped by another thread meanwhile
            return None
        return entry

    def put(self, key: Hashable, entry: L1Entry) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._data[key] = entry
            self.bytes += entry.size
            while len(self._data) > self.max_entries:
                _, evicted = self._data.popitem(last=False)
                self.bytes -= evicted.size
                self.evictions += 1

    def drop(self, key: Hashable) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old.size

    def drop_kind(self, kind: str | None) -> int:
        with self._lock:
            keys = [k for k, e in self._data.items() if kind is None or e.kind.startswith(kind)]
            for k in keys:
                self.bytes -= self._data.pop(k).size
            return len(keys)

    def __len__(self) -> int:
        return len(self._data)
