"""The earlier periods' flags a report's history shows (coordinator/followup.py), benchmarked in a
second process while this one benchmarks the report's own period. On a cold national run those
are three whole benchmarks: on two cores they leave the report's path.

The child is forked, so it starts with the code already imported, the summaries this process
decoded (shared pages, not a copy), and nothing to pickle but its answer. It reads the rest of its
periods' inputs from the database itself, through its own read-only connection, and sends back only each period's flags with the fingerprint of the inputs it read
(a few hundred KB, where a national benchmark result is hundreds of MB). The parent keeps them
(flag_store.keep) exactly as if it had computed them, and the report reads them as it reads kept
flags.

Where a second process is unavailable (no fork start method on this platform, or the start
fails) or the child fails, `start` or `Worker.flags` says so and the report computes the missing
periods itself, one after the other, as it always did: slower, never different."""

from __future__ import annotations

import gc
import multiprocessing
import sqlite3
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from coordinator import benchmark, flag_store
from coordinator.standards import Standard

START_METHOD = "fork"  # the child shares the imported code; spawn would import it all again

Found = dict[str, tuple[str, flag_store.SiteFlags]]
"""{period: (fingerprint of the inputs read, {site: flags})}."""


def compute(
    db: Path, periods: Sequence[str], standard: Standard, decoded: benchmark.Decoded
) -> Found:
    """Each period's flags and inputs' fingerprint, benchmarked from the database at `db` (read
    only). `decoded`: summaries already decoded (benchmark.Decoded), added to as the windows read
    more; each is decoded once for every period that reads it."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        found: Found = {}
        for period in periods:
            data = benchmark.inputs(conn, period, standard, decoded)
            result = benchmark.compute_from(data, period, standard)
            found[period] = (
                benchmark.fingerprint(data, period, standard),
                flag_store.by_site(result),
            )
            del data, result  # one period's benchmark in memory at a time
        return found
    finally:
        conn.close()


def _child(
    sender: Connection,
    db: Path,
    periods: Sequence[str],
    standard: Standard,
    decoded: benchmark.Decoded,
) -> None:
    try:
        answer: tuple[str, object] = ("flags", compute(db, periods, standard, decoded))
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the parent must hear of it
        answer = ("failed", f"{type(exc).__name__}: {exc}")
    try:
        sender.send(answer)
    finally:
        sender.close()


class Worker:
    """A started child benchmarking earlier periods."""

    def __init__(self, process: BaseProcess, receiver: Connection, periods: Sequence[str]) -> None:
        self.process = process
        self.receiver = receiver
        self.periods = list(periods)
        self.pid = process.pid  # recorded as started: the only process this module signals

    def flags(
        self, conn: sqlite3.Connection, progress: Callable[[str], None] | None = None
    ) -> dict[str, flag_store.SiteFlags]:
        """Wait for the child's flags and keep them in the database (flag_store.keep) under the
        fingerprint of what it read. {} if the child failed (`progress` hears why): the report
        then computes those periods itself."""
        try:
            kind, payload = self.receiver.recv()
        except (EOFError, OSError):
            self.process.join()
            kind, payload = "failed", f"it ended with exit code {self.process.exitcode}"
        finally:
            self.receiver.close()
        self.process.join()
        if kind != "flags" or not isinstance(payload, dict):
            if progress:
                progress(
                    f"the second process benchmarking {', '.join(self.periods)} failed "
                    f"({payload}); this process benchmarks them now"
                )
            return {}
        out = {}
        for period, (inputs_sha256, flags) in payload.items():
            problem = flag_store.keep(conn, period, inputs_sha256, flags)
            if problem and progress:
                progress(problem)
            out[period] = flags
        return out

    def stop(self) -> None:
        """End the child if it still runs (the report failed or was interrupted)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.receiver.close()


def start(
    db: Path,
    periods: Sequence[str],
    standard: Standard,
    decoded: benchmark.Decoded | None = None,
    progress: Callable[[str], None] | None = None,
) -> Worker | None:
    """A child benchmarking `periods` from the database at `db`, or None when there is nothing to
    benchmark or no second process can be had (`progress` hears why). `decoded`: summaries this
    process decoded (e.g. the current period's window, which holds most of the earlier windows):
    the forked child reads them from its copy of this memory (shared until written) instead of
    reading them again."""
    if not periods:
        return None
    if START_METHOD not in multiprocessing.get_all_start_methods():
        if progress:
            progress(
                f"no {START_METHOD!r} processes on this platform: the earlier periods are "
                "benchmarked after this one, in this process"
            )
        return None
    context: Any = multiprocessing.get_context(START_METHOD)  # typed by its name only
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(sender, db, list(periods), standard, {} if decoded is None else decoded),
        name="rarenet-earlier-flags",
        daemon=True,  # never outlives the report
    )
    gc.freeze()  # the child's collections then leave this memory's objects (and pages) alone
    try:
        process.start()
    except OSError as exc:
        receiver.close()
        sender.close()
        if progress:
            progress(
                f"no second process ({exc}): the earlier periods are benchmarked after this one, "
                "in this process"
            )
        return None
    finally:
        gc.unfreeze()
    sender.close()  # the child holds the sending end: EOF here if it dies without answering
    if progress:
        progress(f"benchmarking {', '.join(periods)} in a second process for the flag history")
    return Worker(process, receiver, periods)
