"""Each period's flags, kept in the coordinator's database under the fingerprint of the exact
inputs that produced them (coordinator.benchmark.fingerprint: the period, the method version, the
standard's digest, and every summary, EQA round and response leaf of the window, with the revoked
sites). A report's flag history (coordinator/followup.py) then reads the earlier periods' flags
instead of computing their whole benchmarks again.

A late or revised summary, a revoked site, a closed EQA round, another standard or method version
all change the fingerprint: the period is benchmarked again and its flags kept under the new one.
Only the latest fingerprint of each period is kept. The table is a cache of what the signed ledger
determines; dropping it loses nothing but time."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS period_flags (
    period TEXT PRIMARY KEY,
    inputs_sha256 TEXT NOT NULL,   -- coordinator.benchmark.fingerprint of what was benchmarked
    flags TEXT NOT NULL,           -- JSON {site: [{rule, subject, level}, ...]}
    kept_at TEXT NOT NULL
);
"""

SiteFlags = dict[str, list[dict]]


def by_site(result: dict) -> SiteFlags:
    """{site: [{rule, subject, level}]} of a benchmark: what a flag history shows of a period."""
    return {
        site: [
            {"rule": f["rule"], "subject": f["subject"], "level": f["level"]}
            for f in entry["flags"]
        ]
        for site, entry in result["sites"].items()
    }


def _kept(conn: sqlite3.Connection) -> bool:
    """Whether the table exists; reading never creates it (a reader's snapshot stays untouched)."""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'period_flags'"
        ).fetchone()
        is not None
    )


def find(conn: sqlite3.Connection, period: str, inputs_sha256: str) -> SiteFlags | None:
    """The flags kept for `period` if they were computed from inputs with this fingerprint."""
    if not _kept(conn):
        return None
    row = conn.execute(
        "SELECT flags FROM period_flags WHERE period = ? AND inputs_sha256 = ?",
        (period, inputs_sha256),
    ).fetchone()
    return None if row is None else json.loads(row[0])


def keep(conn: sqlite3.Connection, period: str, inputs_sha256: str, flags: SiteFlags) -> str | None:
    """Keep a period's flags under its inputs' fingerprint (replacing an older fingerprint's).
    Returns why they could not be kept (a read-only or busy database), else None: the report
    does not depend on it, the next one computes them again."""
    try:
        with conn:
            if not _kept(conn):
                conn.execute(SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO period_flags (period, inputs_sha256, flags, kept_at)"
                " VALUES (?, ?, ?, ?)",
                (
                    period,
                    inputs_sha256,
                    json.dumps(flags, sort_keys=True, separators=(",", ":")),
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                ),
            )
    except sqlite3.Error as exc:
        return (
            f"the flags of {period} could not be kept for later reports ({exc}); the next "
            "report computes that period's benchmark again"
        )
    return None
