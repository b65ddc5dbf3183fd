"""The pattern engine (node/metrics.py: one row per test from SQLite, tests with the same results
sharing one worked-out pattern, cell keys carried as sums per pattern) equals the row-by-row
engine it replaced (tests/reference_metrics.py) exactly: the same counts in every table and the
same cell key for every count, so the signed bytes stay the same for the same data and secret.
Hypothesis makes awkward data: tests naming two patients or two specimens, several methods of a
biomarker, VAFs at bin edges, EQA rows, results outside the period, and the temporary `results`
table (no primary key, rows in any order) that a rebuild under an accepted standard reads."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import fields

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.standards import DEFAULT_STANDARD
from node import metrics, store
from node.cellkey import KEY_SCHEME, NAMED_TABLES, CellKeys
from node.standard import parse as parse_standard
from node.workdays import WorkingDays
from protos.periods import parse as parse_period
from tests import reference_metrics

STANDARD = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))
Q3 = parse_period("2026Q3")

row = st.tuples(
    st.integers(1, 12),  # test
    st.integers(0, 2),  # patient offset: a test usually has one patient, sometimes two
    st.integers(0, 95),  # received, days after 2026-06-25 (some reported outside Q3)
    st.integers(0, 25),  # turnaround in calendar days
    st.sampled_from(["tissue", "tissue", "cytology", "plasma", "other"]),
    st.sampled_from(["ngs_dna", "ngs_dna_rna", "pcr", "ihc", "fish"]),
    st.sampled_from(["EGFR", "ALK", "MET_EX14", "ROS1"]),
    st.sampled_from(["positive", "negative", "failed", "equivocal"]),
    st.sampled_from(["adenocarcinoma", "squamous", "nos"]),
    st.sampled_from([None, 0.5, 1.0, 5.0, 12.3, 99.99, 100.0001, 150.0]),
    st.booleans(),  # an EQA sample
)


def insert(conn: sqlite3.Connection, rows: list[tuple], table: str) -> None:
    for (
        test,
        other,
        received,
        tat,
        specimen,
        method,
        biomarker,
        result,
        histology,
        vaf,
        eqa,
    ) in rows:
        day = dt.date(2026, 6, 25) + dt.timedelta(days=received)
        conn.execute(
            f"INSERT OR IGNORE INTO {table} (test_id, biomarker, method, patient_key,"
            " received_date, reported_date, specimen, histology, result, vaf, eqa_round,"
            " ingest_id, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1)",
            (
                f"T{test:02d}",
                biomarker,
                method,
                # a keyed hash is hex, and its first 8 digits are the patient's secret key part
                hashlib.sha256(b"%d" % (test + (other == 2))).hexdigest(),
                day.isoformat(),
                (day + dt.timedelta(days=tat)).isoformat(),
                specimen,
                histology,
                result,
                vaf,
                "R1" if eqa else None,
            ),
        )


def both(conn: sqlite3.Connection, key_scheme: int = KEY_SCHEME) -> tuple[tuple, tuple]:
    out = []
    for engine in (metrics, reference_metrics):
        keys = CellKeys(key_scheme=key_scheme)
        summary = engine.compute(conn, Q3, STANDARD, WorkingDays("CN"), keys)
        out.append(
            (
                summary.SerializeToString(deterministic=True),
                {f.name: _plain(getattr(keys, f.name)) for f in fields(keys)},
            )
        )
    return out[0], out[1]


def _plain(value):
    """Cell keys as plain values, without the empty cells a defaultdict makes on reading (an
    all-zero entry adds nothing wherever disclosure control reads it)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not isinstance(v, list) or any(v)}
    if isinstance(value, list):
        return list(value)
    return value


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(row, max_size=70), st.booleans(), st.randoms(use_true_random=False))
def test_the_pattern_engine_equals_the_row_by_row_engine(
    tmp_path_factory, rows, temporary, random
) -> None:
    conn = store.connect(tmp_path_factory.mktemp("patterns") / "node.db")
    if temporary:  # as release.as_released builds it: no primary key, any order
        conn.execute(
            "CREATE TEMP TABLE results (test_id TEXT, biomarker TEXT, method TEXT, patient_key"
            " TEXT, received_date TEXT, reported_date TEXT, specimen TEXT, histology TEXT,"
            " result TEXT, vaf REAL, eqa_round TEXT, ingest_id INTEGER, line INTEGER)"
        )
        unique = list({(r[0], r[6], r[5]): r for r in rows}.values())
        random.shuffle(unique)
        insert(conn, unique, "temp.results")
    else:
        insert(conn, rows, "main.results")
    for key_scheme in (KEY_SCHEME, NAMED_TABLES):  # a period keeps its first release's scheme
        pattern, reference = both(conn, key_scheme)
        assert pattern[0] == reference[0]  # the counts, byte for byte
        assert pattern[1] == reference[1]  # every cell key
