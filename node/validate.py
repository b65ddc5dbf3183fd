"""A LIMS export -> canonical records in batches, checked and pseudonymised, without the database.

`prepare(job)` reads the file (node/readers.py), checks every row (required fields, vocabulary,
real dates, reported not before received, vaf in range), replaces the patient id by its keyed
hash, and finds repeats of a (test_id, biomarker, method) within the file. node/ingest.py writes
what it yields, in one transaction.

A large file is prepared in a second process (`python -m node.validate`, see protos/worker.py),
so that one core validates while the other writes to SQLite (`in_worker`). A small file is
prepared in the calling process. Both run `prepare`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import IngestError, NodeError
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.readers import open_table
from node.vocabulary import OPTIONAL, REQUIRED, normalise_variant
from protos.worker import Worker, WorkerStopped, serve

VOCABULARY_FIELDS = ("specimen", "histology", "method", "biomarker", "result")
DATE_FIELDS = ("received_date", "reported_date")
BATCH = 5000
WORKER_MIN_BYTES = 4 << 20  # below this, starting a second process costs more than it saves

Problems = list[tuple[str, str]]  # (field, reason), one per thing wrong with a row


# The rules a row must meet, each written once: the fast path (`Validator.__call__`) accepts a row
# only if it meets all of them, and `Validator.problems` names each one it does not meet (a test
# checks the two agree on every kind of row). Whether a word is known and a date is real is
# `Validator.word` and `Validator.date`, which both paths call.


def empty(text: str) -> str | None:
    """Rule: a required field is not empty."""
    return None if text else "required value is empty"


def unknown_word(name: str, text: str) -> str:
    """Why a vocabulary word was refused (the rule is `Validator.word`)."""
    return f"{text!r} is not a known {name}; add it to the mapping's [values.{name}]"


def not_a_date(text: str) -> str:
    """Why a date was refused (the rule is `Validator.date`)."""
    return f"{text!r} is not a real date in a known format"


def out_of_order(received: str, reported: str) -> str | None:
    """Rule: a result is not reported before its sample was received (ISO dates)."""
    return f"reported {reported} is before received {received}" if reported < received else None


def vaf_percent(text: str) -> tuple[float | None, str | None]:
    """Rule: the VAF, when given, is a number of percent from 0 to 100 ("12.5" or "12.5%").
    (the value or None when empty, None or why not)."""
    text = text.strip().rstrip("%").strip()
    if not text:
        return None, None
    try:
        vaf = float(text)
    except ValueError:
        return None, f"{text!r} is not a number"
    if not 0.0 <= vaf <= 100.0:
        return None, f"{text} is outside 0-100 (percent)"
    return vaf, None


@dataclass
class Job:
    path: Path
    mapping: Mapping
    pseudonymise: Pseudonymiser
    encoding: str | None
    ingest_id: int  # appended to every record (results.ingest_id)


@dataclass
class Opened:
    """The first item: how the file was read."""

    encoding: str
    unmapped_columns: list[str]
    size: int


@dataclass
class Batch:
    """The next rows of the file. Each row read is counted in `rows` and is exactly one of a record,
    a repeat or a quarantined row."""

    records: list[tuple] = field(default_factory=list)  # the first row of their key in the file
    # (record, first line, masked row): the hash of the key was seen on an earlier line. Once the
    # earlier batches are written, the table says whether it is a duplicate (the same values), a
    # conflict (other values) or, very rarely, another key with the same 64-bit hash.
    repeats: list[tuple[tuple, int, str]] = field(default_factory=list)
    quarantined: list[tuple[int, Problems, str]] = field(
        default_factory=list
    )  # (line, problems, masked row)
    rows: int = 0
    position: int = 0  # bytes read, for progress


@dataclass
class Finished:
    """The last item."""

    sha256: str


@dataclass
class Failed:
    """From the worker: the file cannot be read (the same error `prepare` raises in process)."""

    error: NodeError


class Validator:
    """Turns one row of cells into a record for node/ingest.py's COLUMNS, or says what is wrong with it.

    Vocabulary words and dates repeat endlessly in an export, so each distinct combination of the
    five vocabulary cells, and of the two date cells, is checked once and remembered; a row that
    passes every check takes this fast path, and only a bad row is examined field by field for
    its error messages (`problems`).
    """

    def __init__(
        self,
        columns: int,
        positions: dict[int, str],
        mapping: Mapping,
        pseudonymise: Pseudonymiser,
        ingest_id: int,
    ) -> None:
        self.index = {name: i for i, name in positions.items()}
        self.mapping = mapping
        self.pseudonymise = pseudonymise
        self.ingest_id = ingest_id
        # Rows are cut or padded to the header's width, plus one empty cell for absent optional columns.
        absent = any(name not in self.index for name in OPTIONAL)
        self.width = columns + absent
        self.blanks = [""] * self.width
        self.pick = operator.itemgetter(
            *[self.index[name] for name in REQUIRED],
            *[self.index.get(name, columns) for name in OPTIONAL],
        )
        self.words: dict[str, dict[str, str | None]] = {f: {} for f in VOCABULARY_FIELDS}
        self.dates: dict[str, str | None] = {}
        self.word_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.date_pairs: dict[tuple[str, str], tuple[str, str] | tuple[()]] = {}

    def word(self, field_name: str, text: str) -> str | None:
        """Rule: the canonical word for a vocabulary cell, or None if it is empty or unknown."""
        known = self.words[field_name]
        if text not in known:
            known[text] = self.mapping.value(field_name, text) if text else None
        return known[text]

    def date(self, text: str) -> str | None:
        """Rule: the ISO date of a date cell, or None if it is empty or not a real date."""
        if text not in self.dates:
            day = self.mapping.parse_date(text) if text else None
            self.dates[text] = day.isoformat() if day else None
        return self.dates[text]

    def _word_set(self, cells: tuple[str, ...]) -> tuple[str, ...]:
        """The five canonical words, or () if one is empty or unknown."""
        if len(self.word_sets) > 100_000:
            self.word_sets.clear()
        found = [self.word(name, text.strip()) for name, text in zip(VOCABULARY_FIELDS, cells)]
        words = tuple(word for word in found if word)
        self.word_sets[cells] = words = words if len(words) == len(found) else ()
        return words

    def _date_pair(self, received: str, reported: str) -> tuple[str, str] | tuple[()]:
        """(received, reported) as ISO dates, or () if one is not a real date or reported is earlier."""
        if len(self.date_pairs) > 100_000:
            self.date_pairs.clear()
        first, last = self.date(received.strip()), self.date(reported.strip())
        pair: tuple[str, str] | tuple[()] = (
            (first, last) if first and last and out_of_order(first, last) is None else ()
        )
        self.date_pairs[received, reported] = pair
        return pair

    def __call__(self, cells: list[str], line: int) -> tuple | None:
        """The record (with ingest id and line), or None: then `problems(cells)` says why."""
        if len(cells) != self.width:
            cells = (cells + self.blanks)[: self.width]
        (
            test_id,
            patient_id,
            received,
            reported,
            specimen,
            histology,
            method,
            biomarker,
            result,
            variant,
            vaf_text,
            eqa_round,
            eqa_sample,
        ) = self.pick(cells)
        words = self.word_sets.get(
            (specimen, histology, method, biomarker, result)
        ) or self._word_set((specimen, histology, method, biomarker, result))
        dates = self.date_pairs.get((received, reported)) or self._date_pair(received, reported)
        test_id, patient_id = test_id.strip(), patient_id.strip()
        vaf = None
        if vaf_text:
            vaf, wrong = vaf_percent(vaf_text)
            if wrong:
                return None
        # words and dates are () when a cell is empty, so this is also the rule `empty`.
        if not (words and dates and test_id and patient_id):
            return None
        specimen, histology, method, biomarker, result = words
        received, reported = dates
        patient_key = self.pseudonymise(patient_id)
        return (
            test_id,
            biomarker,
            method,
            patient_key,
            received,
            reported,
            specimen,
            histology,
            result,
            normalise_variant(variant) or None if variant else None,
            vaf,
            eqa_round.strip() or None if eqa_round else None,
            eqa_sample.strip() or None if eqa_sample else None,
            self.ingest_id,
            line,
        )

    def problems(self, cells: list[str]) -> Problems:
        """Every reason the row cannot be accepted, one (field, reason) per problem."""
        cells = (cells + self.blanks)[: self.width]
        values = dict(zip(REQUIRED + OPTIONAL, (text.strip() for text in self.pick(cells))))
        problems: Problems = []
        for name in REQUIRED:
            if reason := empty(values[name]):
                problems.append((name, reason))
        for name in VOCABULARY_FIELDS:
            if values[name] and self.word(name, values[name]) is None:
                problems.append((name, unknown_word(name, values[name])))
        for name in DATE_FIELDS:
            if values[name] and self.date(values[name]) is None:
                problems.append((name, not_a_date(values[name])))
        received, reported = self.date(values["received_date"]), self.date(values["reported_date"])
        if received and reported and (reason := out_of_order(received, reported)):
            problems.append(("reported_date", reason))
        _, wrong = vaf_percent(values["vaf"])
        if wrong:
            problems.append(("vaf", wrong))
        return problems

    def masked(self, cells: list[str]) -> str:
        """The row for the quarantine table: its canonical fields only (a column the mapping does
        not name, such as a patient's name, is not kept), the patient id as its keyed hash."""
        cells = (cells + self.blanks)[: self.width]
        shown = dict(zip(REQUIRED + OPTIONAL, (text.strip() for text in self.pick(cells))))
        if shown.get("patient_id"):
            shown["patient_id"] = "pseudonym:" + self.pseudonymise(shown["patient_id"])
        return json.dumps({k: v for k, v in shown.items() if v}, ensure_ascii=False)


def prepare(job: Job) -> Generator[Opened | Batch | Finished, None, None]:
    """Opened, then Batches covering every row of the file, then Finished; IngestError if the
    file as a whole cannot be read (bad rows are quarantined instead)."""
    table = open_table(job.path, job.encoding or job.mapping.encoding)
    positions, unmapped = job.mapping.resolve_header(table.header)
    missing = [name for name in REQUIRED if name not in positions.values()]
    if missing:
        raise IngestError(
            f"{job.path.name}: no column for {', '.join(missing)} (columns are {table.header}); "
            "name them in a mapping file's [columns] and pass --mapping"
        )
    yield Opened(table.encoding, unmapped, table.size)
    validate = Validator(len(table.header), positions, job.mapping, job.pseudonymise, job.ingest_id)
    # The first line of every (test_id, biomarker, method) of the file, by the hash of the key:
    # repeats are found in one pass, in about 100 bytes a row.
    seen: dict[int, int] = {}
    batch = Batch()
    pending = 0
    for line, cells in table.rows:
        if not (cells and cells[0].strip()) and not "".join(cells).strip():
            continue  # a blank line is not a row
        batch.rows += 1
        pending += 1
        record = validate(cells, line)
        if record is None:
            batch.quarantined.append((line, validate.problems(cells), validate.masked(cells)))
        else:
            first = seen.setdefault(hash(record[:3]), line)
            if first == line:
                batch.records.append(record)
            else:
                batch.repeats.append((record, first, validate.masked(cells)))
        if pending == BATCH:
            batch.position = table.position()
            yield batch
            batch = Batch()
            pending = 0
    batch.position = table.size
    yield batch
    yield Finished(table.sha256())


def in_worker(job: Job) -> Generator[Opened | Batch | Finished, None, None]:
    """`prepare(job)` run in a second process; the same items, and the same errors raised."""
    worker = Worker("node.validate", "validation")
    try:
        worker.send(job)
        worker.end_input()
        while True:
            item = worker.receive()
            if isinstance(item, Failed):
                raise item.error
            if not isinstance(item, Opened | Batch | Finished):
                raise WorkerStopped(f"the validation process answered {type(item).__name__}")
            yield item
            if isinstance(item, Finished):
                return
    except WorkerStopped as exc:
        raise IngestError(
            f"{job.path.name}: {exc}; nothing from this file was stored. Run the ingest again; "
            "if it stops again, check the machine's free memory"
        ) from None
    finally:
        worker.close()


def _prepared(job: Job) -> Iterator[Opened | Batch | Finished | Failed]:
    """The worker's answers to a job: prepare's items, or Failed."""
    try:
        yield from prepare(job)
    except NodeError as exc:
        yield Failed(exc)


if __name__ == "__main__":
    from node.validate import (
        _prepared as prepared,
    )  # by the module's importable name, so pickles name it so

    serve(prepared)
