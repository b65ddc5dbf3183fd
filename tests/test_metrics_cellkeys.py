"""The cell keys node/metrics.py computes while it counts are the sums of the record keys of
node/cellkey.py, worked out here independently from the stored rows (modulo 2^32, the only way a
cell key is used)."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.standards import DEFAULT_STANDARD
from node import metrics, store
from node.cellkey import COUNTED_UNITS, MODULUS, NAMED_TABLES, CellKeys, patient_part, record_key
from node.standard import parse as parse_standard
from node.workdays import WorkingDays
from protos.periods import parse as parse_period

STANDARD = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))

rows_strategy = st.lists(
    st.tuples(
        st.integers(1, 10),  # test (one patient each)
        st.integers(0, 60),  # received, days after 2026-07-01
        st.integers(0, 20),  # turnaround in calendar days
        st.sampled_from(["tissue", "cytology", "plasma"]),
        st.sampled_from(["ngs_dna", "ngs_rna", "ihc", "fish"]),
        st.sampled_from(["EGFR", "ALK", "MET_EX14"]),
        st.sampled_from(["positive", "negative", "failed", "equivocal"]),
    ),
    max_size=60,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows_strategy)
def test_cell_keys_are_sums_of_record_keys(tmp_path_factory, rows) -> None:
    conn = store.connect(tmp_path_factory.mktemp("keys") / "node.db")
    for test, received, tat, specimen, method, biomarker, result in rows:
        day = dt.date(2026, 7, 1) + dt.timedelta(days=received)
        # a keyed hash is hex; its first 8 digits are the patient's secret part of record keys
        patient = hashlib.sha256(b"%d" % test).hexdigest()
        conn.execute(
            "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, 'nos', ?, NULL, NULL,"
            " NULL, NULL, 1, 1)",
            (
                f"T{test:02d}",
                biomarker,
                method,
                patient,
                day.isoformat(),
                (day + dt.timedelta(days=tat)).isoformat(),
                specimen,
                result,
            ),
        )
    for scheme in (COUNTED_UNITS, NAMED_TABLES):
        _check_cell_keys(conn, scheme)


def _check_cell_keys(conn: sqlite3.Connection, scheme: int) -> None:
    """Under COUNTED_UNITS a result and a per-test call are keyed by test id and biomarker only;
    under NAMED_TABLES (periods first released before it) also by the method or "all"."""
    keys = CellKeys(key_scheme=scheme)
    metrics.compute(conn, parse_period("2026Q3"), STANDARD, WorkingDays("CN"), keys)
    named = scheme == NAMED_TABLES

    strata: dict[tuple[str, str, str], int] = defaultdict(int)
    calls: set[tuple[str, str, str, str]] = set()
    tests: set[tuple[str, str, str]] = set()
    for test_id, biomarker, method, patient, specimen in conn.execute(
        "SELECT test_id, biomarker, method, patient_key, specimen FROM results"
        " WHERE reported_date BETWEEN '2026-07-01' AND '2026-09-30'"
    ):
        part = patient_part(patient)
        table = (method,) if named else ()
        strata[(biomarker, method, specimen)] += record_key(part, test_id, biomarker, *table)
        calls.add((test_id, biomarker, specimen, patient))
        tests.add((test_id, specimen, patient))
    for test_id, biomarker, specimen, patient in calls:
        strata[(biomarker, "all", specimen)] += record_key(
            patient_part(patient), test_id, biomarker, *(("all",) if named else ())
        )
    turnaround: dict[str, int] = defaultdict(int)
    for test_id, specimen, patient in tests:
        turnaround[specimen] += record_key(patient_part(patient), test_id)
    # tests per specimen: the same test records, split by failed (no valid result) or not
    valid: dict[tuple[str, str, str], bool] = defaultdict(bool)
    for test_id, specimen, patient, result in conn.execute(
        "SELECT test_id, specimen, patient_key, result FROM results"
        " WHERE reported_date BETWEEN '2026-07-01' AND '2026-09-30'"
    ):
        valid[(test_id, specimen, patient)] |= result in ("positive", "negative")
    specimen_tests: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (test_id, specimen, patient), ok in valid.items():
        specimen_tests[specimen][int(ok)] += record_key(patient_part(patient), test_id)

    assert {k: sum(v) % MODULUS for k, v in keys.strata.items()} == {
        k: v % MODULUS for k, v in strata.items()
    }
    assert {k: sum(v) % MODULUS for k, v in keys.turnaround.items()} == {
        k: v % MODULUS for k, v in turnaround.items()
    }
    assert {k: [c % MODULUS for c in v] for k, v in keys.specimen_tests.items()} == {
        k: [c % MODULUS for c in v] for k, v in specimen_tests.items()
    }
