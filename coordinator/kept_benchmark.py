"""The newest period's full benchmark, kept as the very bytes an audit bundle writes as
report/benchmark.json, under the fingerprint of the inputs that produced it
(coordinator.benchmark.fingerprint: the period, the method version, the standard's digest, every
summary, EQA round and response leaf of the window, the revoked sites).

The `benchmark` command computes the period's benchmark (compute(..., keep=True)) just before an
audit bundle of it is made; `audit-bundle` then writes these bytes instead of computing the whole
benchmark again (at 3,000 labs, 14 s of 20), when the fingerprint of what it would read now is
the one they were kept under. A late or revised summary, a revoked site, a closed EQA round,
another standard or method version all change the fingerprint, and the bundle computes the
benchmark as it always did. Either way the bundle holds the same bytes: they are what
`report_bytes` writes of the same function of the same inputs.

What is kept, and its size: one row per period, zlib level 1 of the compact JSON (at 3,000 labs
a 165 MB report keeps as 38 MB, compressed in about 1 s), for the KEEP_PERIODS periods kept last;
older rows are deleted as a new one is kept. Only the newest period that has summaries is kept:
a report's flag history benchmarks earlier periods too (coordinator/followup.py), and encoding
those would cost seconds each for bundles nobody asked for. The table is a cache of what the
signed ledger determines: dropping it loses nothing but time, and nothing signed reads it
without its fingerprint matching.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import zlib
from collections.abc import Iterator
from typing import Any

from protos.errors import PeriodError
from protos.periods import parse as parse_period

SCHEMA = """
CREATE TABLE IF NOT EXISTS kept_benchmarks (
    period TEXT PRIMARY KEY,
    inputs_sha256 TEXT NOT NULL,   -- coordinator.benchmark.fingerprint of what was benchmarked
    report BLOB NOT NULL,          -- zlib (level 1) of report_bytes(the full benchmark)
    report_sha256 TEXT NOT NULL,   -- of the uncompressed bytes, checked as they are read
    kept_at TEXT NOT NULL
);
"""

KEEP_PERIODS = 2  # the newest period, and the one before (a bundle asked for a quarter late)
LEVEL = 1  # zlib: 165 MB in about 1 s, to 23% (level 3 takes a third longer for 6% less)


def report_text(result: dict[str, Any]) -> str:
    """report/benchmark.json as the coordinator writes it, as text: compact, keys sorted (indent=
    would force json's pure-Python encoder, which takes minutes and gigabytes for a national
    network's report)."""
    return json.dumps(result, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def report_bytes(result: dict[str, Any]) -> bytes:
    """report/benchmark.json as the coordinator writes it: report_text in UTF-8."""
    return report_text(result).encode()


_COMPACT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_SPLIT_DEPTH = 2  # the report, each of its parts: pieces of a few MB at most


def report_pieces(value: Any) -> Iterator[str]:
    """report_text(value) in consecutive pieces (a dict of string keys written key by key, as
    json writes it with sort_keys; its newline last), so the whole text is never held at once:
    report.write_json writes benchmark.json with them, and _packed keeps them."""
    yield from _text_pieces(value, _SPLIT_DEPTH)
    yield "\n"


def _text_pieces(value: Any, depth: int) -> Iterator[str]:
    if depth and isinstance(value, dict) and value and all(type(key) is str for key in value):
        yield "{"
        for i, key in enumerate(sorted(value)):
            yield ("," if i else "") + _COMPACT.encode(key) + ":"
            yield from _text_pieces(value[key], depth - 1)
        yield "}"
        return
    yield _COMPACT.encode(value)


def _packed(result: dict[str, Any]) -> tuple[bytes, str]:
    """(zlib of report_bytes(result), its SHA-256), written a piece at a time."""
    packer = zlib.compressobj(LEVEL)
    digest = hashlib.sha256()
    packed = []
    for text in report_pieces(result):
        piece = text.encode()
        digest.update(piece)
        packed.append(packer.compress(piece))
    packed.append(packer.flush())
    return b"".join(packed), digest.hexdigest()


def _kept(conn: sqlite3.Connection) -> bool:
    """Whether the table exists; reading never creates it (a reader's snapshot stays untouched)."""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kept_benchmarks'"
        ).fetchone()
        is not None
    )


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
    """The report kept for `period` if it was computed from inputs with this fingerprint (and
    its bytes are those kept), else None."""
    if not _kept(conn):
        return None
    row = conn.execute(
        "SELECT report, report_sha256 FROM kept_benchmarks WHERE period = ? AND inputs_sha256 = ?",
        (period, inputs_sha256),
    ).fetchone()
    if row is None:
        return None
    try:
        report = zlib.decompress(row[0])
    except zlib.error:
        return None
    return report if hashlib.sha256(report).hexdigest() == row[1] else None


def keep(
    conn: sqlite3.Connection, period: str, inputs_sha256: str, result: dict[str, Any]
) -> str | None:
    """Keep the period's full benchmark under its inputs' fingerprint, if the period is the
    newest with summaries (else nothing is kept). Returns why it could not be kept (a read-only
    or busy database), else None: nothing depends on it, the audit bundle computes it again."""
    if period != newest_period(conn):
        return None
    packed, report_sha256 = _packed(result)
    try:
        with conn:
            if not _kept(conn):
                conn.execute(SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO kept_benchmarks"
                " (period, inputs_sha256, report, report_sha256, kept_at) VALUES (?, ?, ?, ?, ?)",
                (
                    period,
                    inputs_sha256,
                    packed,
                    report_sha256,
                    dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
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
