"""The newest period's full benchmark, kept as the very bytes an audit bundle writes as
report/benchmark.json (method.report_bytes.benchmark_bytes of the result: the report's own
benchmark.json, from the same one encoding), under the fingerprint of the inputs that produced it
(coordinator.benchmark.fingerprint: the period, the method version, the standard's digest, every
summary, EQA round and response leaf of the window, the revoked sites).

The `benchmark` command computes the period's benchmark (benchmark.compute_report, as
compute(..., keep=True)) just before an audit bundle of it is made; `audit-bundle` then writes
these bytes instead of computing the whole benchmark again (at 3,000 labs, 14 s of 20), when the
fingerprint of what it would read now is the one they were kept under. A late or revised summary,
a revoked site, a closed EQA round, another standard or method version all change the
fingerprint, and the bundle computes the benchmark as it always did. Either way the bundle holds
the same bytes: they are what benchmark_bytes writes of the same function of the same inputs.

What is kept, and its size: one row per period, deflated (ISA-L level 1, zlib's format: at 3,000
labs a 164 MB report keeps as 36 MB, compressed in a quarter of a second; zlib's own level 1 took
0.9 s for 38 MB), for the KEEP_PERIODS periods kept last; older rows are deleted as a new one is
kept. Only the newest period that has summaries is kept: a report's flag history benchmarks
earlier periods too (coordinator/followup.py), and encoding those would cost time for bundles
nobody asked for. The table is a cache of what the signed ledger determines: dropping it loses
nothing but time, and nothing signed reads it without its fingerprint matching. A row is read
only if it was written with this ENCODING: a table kept before it (json.dumps bytes) is dropped
when the next benchmark is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass
from typing import cast

from isal import isal_zlib

from protos.errors import PeriodError
from protos.periods import parse as parse_period

SCHEMA = """
CREATE TABLE IF NOT EXISTS kept_benchmarks (
    period TEXT PRIMARY KEY,
    inputs_sha256 TEXT NOT NULL,   -- coordinator.benchmark.fingerprint of what was benchmarked
    report BLOB NOT NULL,          -- zlib format (ISA-L level 1) of benchmark.json's bytes
    report_sha256 TEXT NOT NULL,   -- of the uncompressed bytes, checked as they are read
    kept_at TEXT NOT NULL,
    encoding TEXT NOT NULL         -- ENCODING: how the bytes were written
);
"""

KEEP_PERIODS = 2  # the newest period, and the one before (a bundle asked for a quarter late)
LEVEL = 1  # ISA-L: 164 MB in 0.26 s, to 22% (level 3 takes twice as long for 3% less)
ENCODING = "method.report_bytes.benchmark_bytes 1"  # change it with that function's bytes
_DAMAGED = cast(type[Exception], isal_zlib.error)  # a class (its stub calls it an instance)


def _packed(report: bytes) -> tuple[bytes, str]:
    """(the kept form of benchmark.json's bytes, their SHA-256)."""
    return isal_zlib.compress(report, LEVEL), hashlib.sha256(report).hexdigest()


def _columns(conn: sqlite3.Connection) -> set[str]:
    """The table's columns, none if it does not exist; reading never creates it (a reader's
    snapshot stays untouched)."""
    return {row[1] for row in conn.execute("PRAGMA table_info(kept_benchmarks)")}


def newest_period(conn: sqlite3.Connection) -> str | None:
    """The label of the period with summaries that ends last (the latest to start, of two that
    end together: a quarter rather than its year); None without summaries."""
    labels = []
    for (label,) in conn.execute("SELECT DISTINCT period FROM summaries"):
        try:
            p = parse_period(label)
        except PeriodError:
            continue  # intake accepts only periods it parses; nothing to keep for another
        labels.append((p.end, p.start, p.label))
    return max(labels)[2] if labels else None


def find(conn: sqlite3.Connection, period: str, inputs_sha256: str) -> bytes | None:
    """The report kept for `period` if it was computed from inputs with this fingerprint and
    written with this ENCODING (and its bytes are those kept), else None."""
    packed = find_packed(conn, period, inputs_sha256)
    return packed.unpacked() if packed is not None else None


@dataclass(frozen=True)
class Packed:
    """A kept report as read from its row, not yet decompressed (`unpacked`, which needs no
    database and holds no lock: a thread may do it while the caller reads on)."""

    report: bytes
    report_sha256: str

    def unpacked(self) -> bytes | None:
        """The report's bytes, or None if they are not those kept (a damaged row)."""
        try:
            report = isal_zlib.decompress(self.report)
        except _DAMAGED:
            return None
        return report if hashlib.sha256(report).hexdigest() == self.report_sha256 else None


def find_packed(conn: sqlite3.Connection, period: str, inputs_sha256: str) -> Packed | None:
    """As `find`, the row's report still compressed."""
    if "encoding" not in _columns(conn):
        return None
    row = conn.execute(
        "SELECT report, report_sha256 FROM kept_benchmarks"
        " WHERE period = ? AND inputs_sha256 = ? AND encoding = ?",
        (period, inputs_sha256, ENCODING),
    ).fetchone()
    return Packed(bytes(row[0]), row[1]) if row is not None else None


def keep(conn: sqlite3.Connection, period: str, inputs_sha256: str, report: bytes) -> str | None:
    """Keep the period's full benchmark (`report`: benchmark_bytes of it) under its inputs'
    fingerprint; for the period `wanted` says. Returns why it could not be kept (a read-only or
    busy database), else None: nothing depends on it, the audit bundle computes it again."""
    packed, report_sha256 = _packed(report)
    try:
        with conn:
            columns = _columns(conn)
            if columns and "encoding" not in columns:  # kept before ENCODING: json.dumps bytes
                conn.execute("DROP TABLE kept_benchmarks")
            conn.execute(SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO kept_benchmarks (period, inputs_sha256, report,"
                " report_sha256, kept_at, encoding) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    period,
                    inputs_sha256,
                    packed,
                    report_sha256,
                    dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                    ENCODING,
                ),
            )
            conn.execute(
                "DELETE FROM kept_benchmarks WHERE period NOT IN (SELECT period FROM"
                " kept_benchmarks ORDER BY kept_at DESC, period DESC LIMIT ?)",
                (KEEP_PERIODS,),
            )
    except sqlite3.Error as exc:
        return (
            f"the benchmark of {period} could not be kept for its audit bundle ({exc}); "
            "`audit-bundle` computes it again"
        )
    return None


def wanted(conn: sqlite3.Connection, period: str) -> bool:
    """Whether a period's benchmark is kept: only the newest period's with summaries."""
    return period == newest_period(conn)
