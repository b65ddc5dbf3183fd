"""The earlier periods' flags a report's history shows (coordinator/followup.py), benchmarked in a
second process while this one benchmarks the report's own period. On a cold national run those
are three whole benchmarks: on two cores they leave the report's path.

The child is forked, so it starts with the code already imported, the summaries this process
decoded (shared pages, not a copy), and nothing to pickle but its answer. It reads the rest of its
periods' inputs from the database itself, through its own read-only connection, and sends back only each period's flags with the fingerprint of the inputs it read
(a few hundred KB, where a national benchmark result is hundreds of MB). The parent keeps them
(flag_store.keep) exactly as if it had computed them, and the report reads them as it reads kept
flags.

Where a second process is unavailable (coordinator/second_process.py) or the child fails, `start`
or `Worker.flags` says so and the report computes the missing periods itself, one after the
other, as it always did: slower, never different."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from coordinator import benchmark, flag_store, second_process
from coordinator.standards import Standard

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


class Worker:
    """A second process benchmarking earlier periods."""

    def __init__(self, child: second_process.Child, periods: Sequence[str]) -> None:
        self.child = child
        self.periods = list(periods)

    def flags(
        self, conn: sqlite3.Connection, progress: Callable[[str], None] | None = None
    ) -> dict[str, flag_store.SiteFlags]:
        """Wait for the child's flags and keep them in the database (flag_store.keep) under the
        fingerprint of what it read. {} if the child failed (`progress` hears why): the report
        then computes those periods itself."""
        try:
            found = self.child.answer()
        except second_process.Failed as exc:
            if progress:
                progress(
                    f"the second process benchmarking {', '.join(self.periods)} failed ({exc}); "
                    "this process benchmarks them now"
                )
            return {}
        assert isinstance(found, dict)
        out = {}
        for period, (inputs_sha256, flags) in found.items():
            problem = flag_store.keep(conn, period, inputs_sha256, flags)
            if problem and progress:
                progress(problem)
            out[period] = flags
        return out

    def stop(self) -> None:
        """End the child if it still runs (the report failed or was interrupted)."""
        self.child.stop()


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
    shared = {} if decoded is None else decoded
    child = second_process.start(
        lambda: compute(db, periods, standard, shared), "rarenet-earlier-flags"
    )
    if isinstance(child, str):
        if progress:
            progress(f"{child}: the earlier periods are benchmarked after this one, here")
        return None
    if progress:
        progress(f"benchmarking {', '.join(periods)} in a second process for the flag history")
    return Worker(child, periods)
