"""GetBenchmark computes a period's benchmark once per ledger state and serves every site from it.

The full benchmark is a function of the stored summaries of the period (that is, of the ledger's
size) and of the standard, so it is kept under (tree size, period, standard digest): sixty-four
sites asking after the same submission cost one computation, and the next accepted submission
makes a new key. Concurrent askers of the same key wait for the one computation in flight.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable

from coordinator import benchmark
from coordinator.standards import Standard

Key = tuple[int, str, str]


class BenchmarkCache:
    def __init__(self, size: int = 8, compute: Callable[..., dict] = benchmark.compute) -> None:
        self.size = size
        self._compute = compute
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, dict] = OrderedDict()
        self._in_flight: dict[Key, threading.Lock] = {}
        self.computations = 0  # how many times a benchmark was computed (for tests and logs)

    def get(
        self, conn: sqlite3.Connection, tree_size: int, period: str, standard: Standard
    ) -> dict:
        key = (tree_size, period, standard.sha256)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            lock = self._in_flight.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            full = self._compute(conn, period, standard)
            with self._lock:
                self.computations += 1
                self._entries[key] = full
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._in_flight.pop(key, None)
            return full
