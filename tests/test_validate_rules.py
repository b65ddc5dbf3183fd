"""The row rules are written once (node/validate.py) and the two paths agree: the fast path
accepts a row exactly when the explanation finds nothing wrong with it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.validate import Validator
from node.vocabulary import OPTIONAL, REQUIRED

HEADER = list(REQUIRED + OPTIONAL)
# For each column: values that pass, and values that break a rule (empty, unknown, not a date,
# out of range, not a number), with stray spaces as exports have them. A row is drawn valid, then
# up to three of its cells are replaced by breaking ones.
VALID = {
    "test_id": ["T1", " T2 "],
    "patient_id": ["P1", " P2"],
    "received_date": ["2026-07-01", " 2026/07/02 "],
    "reported_date": ["2026-07-03", "2026-07-02"],
    "specimen": ["tissue", " plasma "],
    "histology": ["adenocarcinoma", "squamous"],
    "method": ["pcr", "ngs_dna"],
    "biomarker": ["EGFR", "MET_EX14"],
    "result": ["positive", "negative", "failed"],
    "variant": ["", "L858R"],
    "vaf": ["", "12.5", "12.5%", " 7 % ", "100", "0"],
    "eqa_round": ["", "2026-R2"],
    "eqa_sample": ["", "S1"],
}
BREAKING = {
    "test_id": ["", "  "],
    "patient_id": [""],
    "received_date": ["", "2026-02-30", "someday", "2026-07-05"],
    "reported_date": ["", "31.13.2026", "2026-06-30"],
    "specimen": ["saliva", ""],
    "histology": ["unknown-kind", ""],
    "method": ["Sanger", ""],
    "biomarker": ["FOO1", ""],
    "result": ["maybe", ""],
    "vaf": ["100.5", "-1", "abc", "nan", "%", "1e3"],
}


@st.composite
def rows(draw: st.DrawFn) -> list[str]:
    cells = {name: draw(st.sampled_from(VALID[name])) for name in HEADER}
    for name in draw(st.lists(st.sampled_from(sorted(BREAKING)), max_size=3, unique=True)):
        cells[name] = draw(st.sampled_from(BREAKING[name]))
    row = [cells[name] for name in HEADER]
    # Rows as read may be short (cut at the last non-empty cell) or carry extra cells.
    return draw(st.sampled_from([row, row[:-2], [*row, "extra"]]))


def validator() -> Validator:
    positions, unmapped = Mapping().resolve_header(HEADER)
    assert not unmapped
    return Validator(len(HEADER), positions, Mapping(), Pseudonymiser(b"k" * 32), ingest_id=1)


@settings(max_examples=400, deadline=None)
@given(cells=rows())
def test_fast_path_accepts_exactly_what_the_explanation_finds_nothing_wrong_with(cells) -> None:
    check = validator()
    record = check(cells, 2)
    problems = check.problems(cells)
    assert (record is None) == bool(problems), (cells, record, problems)
    # The same validator, its caches warm, answers the same.
    assert (check(cells, 2) is None) == (record is None)


def test_each_problem_is_named_once_with_its_field() -> None:
    check = validator()
    cells = ["", "P1", "2026-07-05", "2026-07-01", "saliva", "squamous", "pcr", "EGFR"]
    cells += ["positive", "", "300", "", ""]
    assert check(cells, 2) is None
    assert check.problems(cells) == [
        ("test_id", "required value is empty"),
        ("specimen", "'saliva' is not a known specimen; add it to the mapping's [values.specimen]"),
        ("reported_date", "reported 2026-07-01 is before received 2026-07-05"),
        ("vaf", "300 is outside 0-100 (percent)"),
    ]
