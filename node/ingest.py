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

_COLUMNS = (
    "test_id", "biomarker", "method", "patient_key", "received_date", "reported_date",
    "specimen", "histology", "result", "variant", "vaf", "eqa_round", "eqa_sample", "row_hash",
)
VOCABULARY_FIELDS = ("specimen", "histology", "method", "biomarker", "result")
_BATCH = 5000
_HASH_MASK = (1 << 96) - 1


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
    """Turns one row of cells into a canonical record tuple, or the list of what is wrong with it.

    Vocabulary words and dates repeat endlessly in an export, so each distinct text is normalised
    once and remembered; a row that passes every check takes the fast path, and only a bad row is
    examined field by field for its error messages.
    """

    def __init__(self, positions: dict[int, str], mapping: Mapping, pseudonymise: Pseudonymiser) -> None:
        self.index = {name: i for i, name in positions.items()}
        self.mapping = mapping
        self.pseudonymise = pseudonymise
        self.width = max(positions) + 1
        self.required = [self.index[name] for name in REQUIRED]
        self.optional = [self.index.get(name) for name in ("variant", "vaf", "eqa_round", "eqa_sample")]
        self.words: dict[str, dict[str, str | None]] = {f: {} for f in VOCABULARY_FIELDS}
        self.dates: dict[str, str | None] = {}

    def word(self, field_name: str, text: str) -> str | None:
        known = self.words[field_name]
        if text not in known:
            known[text] = self.mapping.value(field_name, text) if text else None
        return known[text]

    def date(self, text: str) -> str | None:
        if text not in self.dates:
            day = self.mapping.parse_date(text) if text else None
            self.dates[text] = day.isoformat() if day else None
        return self.dates[text]

    def __call__(self, cells: list[str]) -> tuple[tuple | None, list[tuple[str, str]]]:
        if len(cells) < self.width:
            cells = cells + [""] * (self.width - len(cells))
        test_id, patient_id, received, reported, specimen, histology, method, biomarker, result = \
            [cells[i].strip() for i in self.required]
        variant, vaf_text, eqa_round, eqa_sample = [cells[i].strip() if i is not None else "" for i in self.optional]
        specimen, histology = self.word("specimen", specimen), self.word("histology", histology)
        method, biomarker, result = self.word("method", method), self.word("biomarker", biomarker), self.word("result", result)
        received, reported = self.date(received), self.date(reported)
        vaf = None
        if vaf_text:
            try:
                vaf = float(vaf_text.rstrip("%"))
            except ValueError:
                vaf = -1.0
        if not (test_id and patient_id and specimen and histology and method and biomarker and result
                and received and reported and reported >= received and (vaf is None or 0.0 <= vaf <= 100.0)):
            return None, self.problems(cells)
        patient_key = self.pseudonymise(patient_id)
        variant = normalise_variant(variant) if variant else ""
        vaf_repr = repr(vaf) if vaf is not None else ""
        text = "\x1f".join((test_id, biomarker, method, patient_key, received, reported, specimen, histology, result,
                            variant, vaf_repr, eqa_round, eqa_sample))
        return (test_id, biomarker, method, patient_key, received, reported, specimen, histology, result,
                variant or None, vaf, eqa_round or None, eqa_sample or None,
                hashlib.blake2b(text.encode(), digest_size=12).hexdigest()), []

    def problems(self, cells: list[str]) -> list[tuple[str, str]]:
        """Every reason the row cannot be accepted, one (field, reason) per problem."""
        values = {name: cells[i].strip() for name, i in zip(REQUIRED, self.required)}
        problems = [(name, "required value is empty") for name in REQUIRED if not values[name]]
        for name in VOCABULARY_FIELDS:
            if values[name] and self.word(name, values[name]) is None:
                problems.append((name, f"{values[name]!r} is not a known {name}; add it to the mapping's [values.{name}]"))
        for name in ("received_date", "reported_date"):
            if values[name] and self.date(values[name]) is None:
                problems.append((name, f"{values[name]!r} is not a real date in a known format"))
        received, reported = self.date(values["received_date"]), self.date(values["reported_date"])
        if received and reported and reported < received:
            problems.append(("reported_date", f"reported {reported} is before received {received}"))
        i = self.optional[1]
        vaf_text = cells[i].strip().rstrip("%").strip() if i is not None else ""
        if vaf_text:
            try:
                vaf = float(vaf_text)
            except ValueError:
                problems.append(("vaf", f"{vaf_text!r} is not a number"))
            else:
                if not 0.0 <= vaf <= 100.0:
                    problems.append(("vaf", f"{vaf_text} is outside 0-100 (percent)"))
        return problems

    def masked(self, cells: list[str]) -> str:
        """The row as read, for the quarantine table, with the patient id replaced by its keyed hash."""
        shown = list(cells)
        i = self.index.get("patient_id")
        if i is not None and i < len(shown) and shown[i].strip():
            shown[i] = "pseudonym:" + self.pseudonymise(shown[i].strip())
        return json.dumps(shown, ensure_ascii=False)


_UPSERT = (
    f"INSERT INTO results ({', '.join(_COLUMNS)}, source, line) VALUES ({', '.join('?' * (len(_COLUMNS) + 2))}) "
    "ON CONFLICT (test_id, biomarker, method) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[3:])
    + ", source = excluded.source, line = excluded.line WHERE results.row_hash != excluded.row_hash"
)


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
    quarantine: list[tuple[int, list[tuple[str, str]], str]] = []
    # Every (test_id, biomarker, method) of this file by the hash of the key, with its first line
    # and row hash packed in one int (line << 96 | row hash): repeats within the file are found in
    # one pass, in about 100 bytes a row. A hit is confirmed against the database (`_same_key`).
    seen: dict[int, int] = {}
    conn.execute("BEGIN IMMEDIATE")
    try:
        previously_open = {
            line for (line,) in conn.execute(
                "SELECT line FROM quarantine WHERE source = ? AND released_at IS NULL", (path.name,)
            )
        }
        conn.execute("UPDATE quarantine SET released_at = ? WHERE source = ? AND released_at IS NULL", (now, path.name))
        before_rows = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        before_changes = conn.total_changes
        batch: list[tuple] = []
        unique = 0
        for line, cells in table.rows:
            if not "".join(cells).strip():
                continue  # a blank line is not a row
            result.rows += 1
            record, problems = validate(cells)
            if problems:
                quarantine.append((line, problems, validate.masked(cells)))
                result.errors.extend(RowError(line, f, r) for f, r in problems)
                continue
            key = hash(record[:3])
            row_hash = int(record[-1], 16)
            first = seen.get(key)
            if first is not None and (first & _HASH_MASK == row_hash or _same_key(conn, batch, record, first)):
                if first & _HASH_MASK == row_hash:
                    result.duplicates += 1
                else:
                    reason = (f"line {first >> 96} already gives a different result for {record[0]} / {record[1]} / "
                              f"{record[2]}; keep one result per test, biomarker and method")
                    quarantine.append((line, [("test_id", reason)], validate.masked(cells)))
                    result.errors.append(RowError(line, "test_id", reason))
                continue
            seen[key] = line << 96 | row_hash
            unique += 1
            batch.append(record + (path.name, line))
            if len(batch) >= _BATCH:
                conn.executemany(_UPSERT, batch)
                batch.clear()
                if progress:
                    progress(table.position(), table.size)
        conn.executemany(_UPSERT, batch)
        changed = conn.total_changes - before_changes
        result.inserted = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] - before_rows
        result.updated = changed - result.inserted
        result.accepted = changed
        result.duplicates += unique - changed
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
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if progress:
        progress(table.size, table.size)
    result.errors.sort(key=lambda e: e.line)
    return result


def _same_key(conn: sqlite3.Connection, batch: list[tuple], record: tuple, first: int) -> bool:
    """Whether the earlier row with the same key hash really had record's (test_id, biomarker,
    method): that row is in the pending batch or the database with the first row's hash."""
    for pending in batch:
        if pending[:3] == record[:3]:
            return int(pending[13], 16) == first & _HASH_MASK
    row = conn.execute("SELECT row_hash FROM results WHERE test_id = ? AND biomarker = ? AND method = ?",
                              record[:3]).fetchone()
    return row is not None and int(row[0], 16) == first & _HASH_MASK


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
