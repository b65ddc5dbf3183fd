"""Reports that keep themselves current: after a period closes, and again whenever late summaries
for it arrive, the benchmark is written to DATA_DIR/reports/PERIOD/ (run on a schedule by serve)."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3

from coordinator.config import DataDir
from coordinator.standards import Standard
from protos.periods import containing

log = logging.getLogger("rarenet.coordinator")
SCHEMA = "CREATE TABLE IF NOT EXISTS report_runs (period TEXT PRIMARY KEY, last_leaf INTEGER NOT NULL, at TEXT NOT NULL)"


def refresh(
    data: DataDir, standard: Standard, kind: str = "quarter", today: dt.date | None = None
) -> list[str]:
    """Write the report of the last two closed periods when they have summaries not yet reported;
    returns the periods written."""
    day = today or dt.date.today()
    closed = containing(day, kind).previous()
    conn = sqlite3.connect(data.db, timeout=30)
    written = []
    try:
        conn.execute(SCHEMA)
        for period in (closed.previous(), closed):
            (last,) = conn.execute(
                "SELECT MAX(leaf_index) FROM summaries WHERE period = ?", (period.label,)
            ).fetchone()
            if last is None:
                continue
            done = conn.execute(
                "SELECT last_leaf FROM report_runs WHERE period = ?", (period.label,)
            ).fetchone()
            if done and done[0] >= last:
                continue
            # The method and the report (numpy, scipy, matplotlib) are loaded when a report is
            # due, not when serve starts.
            from coordinator import benchmark, followup, report

            out = data.path / "reports" / period.label
            decoded: benchmark.Decoded = {}  # as `rarenet-coordinator benchmark`: kept for later
            computed = benchmark.compute_report(conn, period.label, standard, decoded=decoded)
            result = computed.result
            extra = followup.gather(conn, result, standard, decoded=decoded)
            decoded.clear()  # the report reads the results only
            report.write(
                result,
                out,
                followup=extra,
                lang=report.default_language(standard),
                encoded=computed.report,  # benchmark.json as kept: encoded once
            )
            conn.execute(
                "INSERT INTO report_runs VALUES (?, ?, ?) ON CONFLICT(period) DO UPDATE SET "
                "last_leaf = excluded.last_leaf, at = excluded.at",
                (
                    period.label,
                    last,
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                ),
            )
            conn.commit()
            log.info("benchmark report for %s written to %s", period, out)
            written.append(period.label)
    finally:
        conn.close()
    return written
