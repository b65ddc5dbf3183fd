"""LIMS export -> validated, pseudonymised rows in the node's database, one file one transaction.

Every row read ends as exactly one of: accepted (inserted or updated), duplicate (already stored
identically, or repeated identically in the file), or quarantined (with line, field and reason).
So for every file: rows = accepted + duplicates + quarantined.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.errors import IngestError
from node.mapping import Mapping
from node.readers import open_table
from node.vocabulary import REQUIRED, normalise_variant

_STAGE_COLUMNS = (
    "test_id", "biomarker", "method", "patient_key", "received_date", "reported_date",
    "specimen", "histology", "result", "variant", "vaf", "eqa_round", "eqa_sample", "row_hash",
)
_BATCH = 5000


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


class Pseudonymiser:
    """Keyed hash (HMAC-SHA256) of patient ids with the site-local secret; raw ids are never stored."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._cache: dict[str, str] = {}

    def __call__(self, patient_id: str) -> str:
        key = self._cache.get(patient_id)
        if key is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            key = hmac.new(self._secret, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
            self._cache[patient_id] = key
        return key


class _Validator:
    """Turns one row of cells into a canonical record tuple, or the list of what is wrong with it."""

    def __init__(self, positions: dict[int, str], mapping: Mapping, pseudonymise: Pseudonymiser) -> None:
        self.index = {name: i for i, name in positions.items()}
        self.mapping = mapping
        self.pseudonymise = pseudonymise
        self.width = max(positions) + 1

    def cell(self, cells: list[str], name: str) -> str:
        i = self.index.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    def __call__(self, cells: list[str]) -> tuple[tuple | None, list[tuple[str, str]]]:
        problems: list[tuple[str, str]] = []
        get = self.cell
        values = {name: get(cells, name) for name in REQUIRED}
        for name in REQUIRED:
            if not values[name]:
                problems.append((name, "required value is empty"))
        canon = {}
        for name in ("specimen", "histology", "method", "biomarker", "result"):
            if values[name]:
                value = self.mapping.value(name, values[name])
                if value is None:
                    problems.append((name, f"{values[name]!r} is not a known {name}; add it to the mapping's [values.{name}]"))
                canon[name] = value
        dates = {}
        for name in ("received_date", "reported_date"):
            if values[name]:
                day = self.mapping.parse_date(values[name])
                if day is None:
                    problems.append((name, f"{values[name]!r} is not a real date in a known format"))
                dates[name] = day
        received, reported = dates.get("received_date"), dates.get("reported_date")
        if received and reported and reported < received:
            problems.append(("reported_date", f"reported {reported} is before received {received}"))
        vaf_text = get(cells, "vaf").rstrip("%").strip()
        vaf = None
        if vaf_text:
            try:
                vaf = float(vaf_text)
            except ValueError:
                problems.append(("vaf", f"{vaf_text!r} is not a number"))
            else:
                if not 0.0 <= vaf <= 100.0 or vaf != vaf:
                    problems.append(("vaf", f"{vaf_text} is outside 0-100 (percent)"))
        if problems:
            return None, problems
        variant = get(cells, "variant")
        record = (
            values["test_id"], canon["biomarker"], canon["method"], self.pseudonymise(values["patient_id"]),
            received.isoformat(), reported.isoformat(), canon["specimen"], canon["histology"],
            canon["result"], normalise_variant(variant) if variant else None, vaf,
            get(cells, "eqa_round") or None, get(cells, "eqa_sample") or None,
        )
        digest = hashlib.blake2b("\x1f".join("" if v is None else str(v) for v in record).encode(), digest_size=12)
        return record + (digest.hexdigest(),), []

    def masked(self, cells: list[str]) -> str:
        """The row as read, for the quarantine table, with the patient id replaced by its keyed hash."""
        shown = list(cells)
        i = self.index.get("patient_id")
        if i is not None and i < len(shown) and shown[i].strip():
            shown[i] = "pseudonym:" + self.pseudonymise(shown[i].strip())
        return json.dumps(shown, ensure_ascii=False)


def ingest_file(
    conn: sqlite3.Connection,
    path: Path,
    pseudonymise: Pseudonymiser,
    mapping: Mapping,
    encoding: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Ingest one file in one transaction; bad rows are quarantined, never raised."""
    table = open_table(path, encoding or mapping.encoding)
    positions, unmapped = mapping.resolve_header(table.header)
    missing = [name for name in REQUIRED if name not in positions.values()]
    if missing:
        raise IngestError(
            f"{path.name}: no column for {', '.join(missing)} (columns are {table.header}); "
            "name them in a mapping file's [columns] and pass --mapping"
        )
    validate = _Validator(positions, mapping, pseudonymise)
    result = IngestResult(file=path.name, encoding=table.encoding, unmapped_columns=unmapped)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    quarantine: list[tuple[int, str, str, str]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        previously_open = {
            line for (line,) in conn.execute(
                "SELECT line FROM quarantine WHERE source = ? AND released_at IS NULL", (path.name,)
            )
        }
        conn.execute("UPDATE quarantine SET released_at = ? WHERE source = ? AND released_at IS NULL", (now, path.name))
        conn.execute("DROP TABLE IF EXISTS temp.stage")
        conn.execute(f"CREATE TEMP TABLE stage (line INTEGER PRIMARY KEY, {', '.join(_STAGE_COLUMNS)})")
        insert = f"INSERT INTO temp.stage VALUES (?{', ?' * len(_STAGE_COLUMNS)})"
        batch: list[tuple] = []
        for line, cells in table.rows:
            if not any(c.strip() for c in cells):
                continue  # a blank line is not a row
            result.rows += 1
            record, problems = validate(cells)
            if problems:
                quarantine.append((line, problems, validate.masked(cells)))
                result.errors.extend(RowError(line, f, r) for f, r in problems)
                continue
            batch.append((line,) + record)
            if len(batch) >= _BATCH:
                conn.executemany(insert, batch)
                batch.clear()
                if progress:
                    progress(table.position(), table.size)
        conn.executemany(insert, batch)
        _resolve_repeats(conn, result, quarantine)
        _merge(conn, path.name, result)
        conn.executemany(
            "INSERT INTO quarantine (source, line, field, reason, row_json, ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(path.name, line, problems[0][0], "; ".join(f"{f}: {r}" for f, r in problems), raw, now)
             for line, problems, raw in quarantine],
        )
        result.quarantined = len(quarantine)
        result.released = len(previously_open - {line for line, _, _ in quarantine})
        conn.execute(
            "INSERT INTO ingests (source, sha256, ingested_at, rows, accepted, inserted, updated, duplicates,"
            " quarantined, released) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path.name, _sha256(path), now, result.rows, result.accepted, result.inserted, result.updated,
             result.duplicates, result.quarantined, result.released),
        )
        conn.execute("DROP TABLE temp.stage")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if progress:
        progress(table.size, table.size)
    result.errors.sort(key=lambda e: e.line)
    return result


def _resolve_repeats(conn: sqlite3.Connection, result: IngestResult, quarantine: list) -> None:
    """Rows repeating an earlier line's (test_id, biomarker, method): identical ones are duplicates,
    different ones are quarantined (one result per test, biomarker and method)."""
    conn.execute("CREATE INDEX temp.stage_key ON stage (test_id, biomarker, method, line)")
    repeats = conn.execute(
        """
        WITH firsts AS (
            SELECT test_id, biomarker, method, MIN(line) AS first FROM temp.stage
            GROUP BY test_id, biomarker, method HAVING COUNT(*) > 1)
        SELECT s.line, f.first, s.row_hash = (SELECT row_hash FROM temp.stage WHERE line = f.first), s.test_id,
               s.biomarker, s.method
        FROM temp.stage s JOIN firsts f USING (test_id, biomarker, method) WHERE s.line > f.first
        """
    ).fetchall()
    for line, first, same, test_id, biomarker, method in repeats:
        if same:
            result.duplicates += 1
        else:
            reason = (f"line {first} already gives a different result for {test_id} / {biomarker} / {method}; "
                      "keep one result per test, biomarker and method")
            quarantine.append((line, [("test_id", reason)], "[]"))
            result.errors.append(RowError(line, "test_id", reason))
    conn.executemany("DELETE FROM temp.stage WHERE line = ?", [(r[0],) for r in repeats])


def _merge(conn: sqlite3.Connection, source: str, result: IngestResult) -> None:
    staged = conn.execute("SELECT COUNT(*) FROM temp.stage").fetchone()[0]
    before = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    columns = ", ".join(_STAGE_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _STAGE_COLUMNS[3:])
    cursor = conn.execute(
        f"""INSERT INTO results ({columns}, source, line) SELECT {columns}, ?, line FROM temp.stage WHERE true
            ON CONFLICT (test_id, biomarker, method) DO UPDATE SET {updates}, source = excluded.source,
            line = excluded.line WHERE results.row_hash != excluded.row_hash""",
        (source,),
    )
    changed = cursor.rowcount
    after = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    result.inserted = after - before
    result.updated = changed - result.inserted
    result.accepted = changed
    result.duplicates += staged - changed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
