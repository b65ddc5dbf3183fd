"""Checked, pseudonymised rows of a LIMS export -> the node's database, one file one transaction.

Every row read ends as exactly one of: accepted (inserted or updated), duplicate (already stored
identically, or repeated identically in the file), or quarantined (with line, field and reason).
So for every file: rows = accepted + duplicates + quarantined. Reading and checking the rows is
node/validate.py; this module writes what it yields.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node import validate
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser

COLUMNS = (
    "test_id",
    "biomarker",
    "method",
    "patient_key",
    "received_date",
    "reported_date",
    "specimen",
    "histology",
    "result",
    "variant",
    "vaf",
    "eqa_round",
    "eqa_sample",
    "ingest_id",
    "line",
)
_VALUES = COLUMNS[3:13]  # what a result says; the key is COLUMNS[:3]
_UPSERT = (
    f"INSERT INTO results ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (test_id, biomarker, method) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[3:])
    + f" WHERE ({', '.join(f'results.{c}' for c in _VALUES)}) IS NOT ({', '.join(f'excluded.{c}' for c in _VALUES)})"
)  # an unchanged result is not rewritten (and not counted as a change)
_STORED = (
    f"SELECT {', '.join(_VALUES)} FROM results WHERE test_id = ? AND biomarker = ? AND method = ?"
)
_QUARANTINE = "INSERT INTO quarantine (source, line, field, reason, row_json, ingested_at) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass
class RowError:
    line: int
    field: str
    reason: str


@dataclass
class IngestResult:
    file: str
    encoding: str
    rows: int = 0
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    quarantined: int = 0
    released: int = 0
    errors: list[RowError] = field(default_factory=list)
    unmapped_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def ingest_file(
    conn: sqlite3.Connection,
    path: Path,
    pseudonymise: Pseudonymiser,
    mapping: Mapping,
    encoding: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    worker: bool | None = None,
) -> IngestResult:
    """Ingest one file in one transaction; bad rows are quarantined, never raised.

    `worker`: check the rows in a second process while this one writes (None: when the file is
    large enough to gain from it).
    """
    if worker is None:
        worker = path.is_file() and path.stat().st_size >= validate.WORKER_MIN_BYTES
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    conn.execute("BEGIN IMMEDIATE")
    try:
        ingest_id = conn.execute(
            "INSERT INTO ingests (source, ingested_at) VALUES (?, ?)", (path.name, now)
        ).lastrowid
        assert ingest_id is not None  # set by every INSERT
        job = validate.Job(path, mapping, pseudonymise, encoding, ingest_id)
        with closing(validate.in_worker(job) if worker else validate.prepare(job)) as items:
            opened = next(items)
            if not isinstance(opened, validate.Opened):  # prepare's first item, always
                raise TypeError(f"{type(opened).__name__} where the file's Opened was due")
            result = IngestResult(
                file=path.name, encoding=opened.encoding, unmapped_columns=opened.unmapped_columns
            )
            report = (lambda done: progress(done, opened.size)) if progress else (lambda done: None)
            sha256 = _write(conn, items, result, now, report)
        conn.execute(
            "UPDATE ingests SET sha256 = ?, rows = ?, accepted = ?, inserted = ?, updated = ?, duplicates = ?,"
            " quarantined = ?, released = ? WHERE id = ?",
            (
                sha256,
                result.rows,
                result.accepted,
                result.inserted,
                result.updated,
                result.duplicates,
                result.quarantined,
                result.released,
                ingest_id,
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    result.errors.sort(key=lambda e: e.line)
    return result


def _write(
    conn: sqlite3.Connection, items, result: IngestResult, now: str, progress: Callable[[int], None]
) -> str:
    """Write the batches and fill in `result`; returns the file's SHA-256 (from the last item)."""
    source = result.file
    previously_open = {
        line
        for (line,) in conn.execute(
            "SELECT line FROM quarantine WHERE source = ? AND released_at IS NULL", (source,)
        )
    }
    conn.execute(
        "UPDATE quarantine SET released_at = ? WHERE source = ? AND released_at IS NULL",
        (now, source),
    )
    quarantined_lines: set[int] = set()
    before_rows = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    written = changed = 0
    for item in items:
        if isinstance(item, validate.Finished):
            sha256 = item.sha256
            break
        before = conn.total_changes
        conn.executemany(_UPSERT, item.records)
        written += len(item.records)
        quarantine = list(item.quarantined)
        # Every earlier line of the file is in the table now.
        for record, first_line, masked in item.repeats:
            stored = conn.execute(_STORED, record[:3]).fetchone()
            if stored is None:  # another key with the same hash: a row of its own
                conn.execute(_UPSERT, record)
                written += 1
            elif stored == record[3:13]:
                result.duplicates += 1
            else:
                reason = (
                    f"line {first_line} already gives a different result for {record[0]} / {record[1]} / "
                    f"{record[2]}; keep one result per test, biomarker and method"
                )
                quarantine.append((record[-1], [("test_id", reason)], masked))
        changed += conn.total_changes - before
        conn.executemany(
            _QUARANTINE,
            [
                (
                    source,
                    line,
                    problems[0][0],
                    "; ".join(f"{f}: {r}" for f, r in problems),
                    masked,
                    now,
                )
                for line, problems, masked in quarantine
            ],
        )
        result.errors.extend(
            RowError(line, f, r) for line, problems, _ in quarantine for f, r in problems
        )
        quarantined_lines.update(line for line, _, _ in quarantine)
        result.rows += item.rows
        result.quarantined += len(quarantine)
        progress(item.position)
    result.inserted = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] - before_rows
    result.updated = changed - result.inserted
    result.accepted = changed
    result.duplicates += written - changed
    result.released = len(previously_open - quarantined_lines)
    return sha256
