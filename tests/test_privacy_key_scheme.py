"""An upgraded node keeps the record key scheme a period was first released with.

Record keys changed (node/cellkey.py: NAMED_TABLES -> COUNTED_UNITS, so that twin cells share
their noise). A period a node released before the upgrade, signed again afterwards (a revision
that passed the gate, or an accepted new standard), would otherwise carry new noise on the very
records it released before: a second independent draw of every unchanged cell, which the
coordinator averages. The scheme travels in the summary (Perturbation.key_scheme) and the next
version of a period reuses the one its last version was released with.
"""

from __future__ import annotations

import pytest

from node import cellkey, summary
from protos.periods import parse as parse_period
from protos.rarenet.v1 import summary_pb2 as pb
from tests.test_privacy_attacks import Lab, make_lab, result, rows_of

Cell = tuple[str, str, str, str]


def _rows() -> list[dict]:
    """A lab that tests EGFR, KRAS and ALK on tissue, each by one method (twin cells)."""
    return (
        rows_of("e", 30, "EGFR", "pcr", "tissue", 6)
        + rows_of("k", 30, "KRAS", "ngs_dna", "tissue", 9)
        + rows_of("a", 25, "ALK", "ihc", "tissue", 3)
    )


def _late_rows() -> list[dict]:
    """Late ROS1 FISH results of twelve patients: enough to open the revision gate (ten)."""
    return [
        result(f"late{i}", "ROS1", "fish", "tissue", "positive" if i < 2 else "negative")
        for i in range(12)
    ]


def _unchanged(s: pb.SiteSummary) -> dict[Cell, int]:
    """The released cells of the strata the late results do not touch."""
    return {
        (x.biomarker, x.method, x.specimen, c): getattr(x, c)
        for x in s.strata
        if x.biomarker in ("EGFR", "KRAS", "ALK")
        for c in ("positive", "negative", "tests")
    }


def _release_before_upgrade(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> pb.SiteSummary:
    """2026Q3 signed by a node of the earlier scheme (as it was: no key_scheme set)."""
    with monkeypatch.context() as before:
        before.setattr(cellkey, "KEY_SCHEME", cellkey.NAMED_TABLES)
        assert lab.sign().sequence is not None
    (first,) = lab.released()
    assert first.policy.perturbation.key_scheme == cellkey.NAMED_TABLES
    return first


def test_a_revision_after_the_upgrade_keeps_the_released_noise(tmp_path, monkeypatch) -> None:
    lab = make_lab(tmp_path)
    lab.load(_rows())
    first = _release_before_upgrade(lab, monkeypatch)
    # The new scheme would draw other noise for the same records (else this test shows nothing).
    fresh = summary.build(lab.conn, lab.config, lab.standard(), parse_period("2026Q3"), 9)[0]
    assert fresh.policy.perturbation.key_scheme == cellkey.COUNTED_UNITS
    assert _unchanged(fresh) != _unchanged(first)

    lab.load(_late_rows(), "late.csv")
    queued = lab.sign()
    assert queued.sequence is not None, f"the revision was held: {queued.held}"
    first_again, revision = lab.released()
    assert revision.policy.perturbation.key_scheme == cellkey.NAMED_TABLES
    assert _unchanged(revision) == _unchanged(first), "unchanged cells were drawn again"
    assert any(x.biomarker == "ROS1" for x in revision.strata)


def test_a_period_first_released_after_the_upgrade_uses_the_new_scheme(
    tmp_path, monkeypatch
) -> None:
    """Q3 was released before the upgrade, Q2 (its results ingested late) after: Q2 is released
    under COUNTED_UNITS, so its twin cells (per method and per test, one method) are equal."""
    lab = make_lab(tmp_path)
    lab.load(_rows())
    _release_before_upgrade(lab, monkeypatch)
    q2 = [
        dict(r, test_id="q2" + r["test_id"], received_date="2026-05-05", reported_date="2026-05-12")
        for r in _rows()
    ]
    lab.load(q2, "q2.csv")
    assert lab.sign("2026Q2").sequence is not None
    (released,) = lab.released("2026Q2")
    assert released.policy.perturbation.key_scheme == cellkey.COUNTED_UNITS
    cells = _unchanged(released)
    for biomarker, method in (("EGFR", "pcr"), ("KRAS", "ngs_dna"), ("ALK", "ihc")):
        for c in ("positive", "negative", "tests"):
            assert cells[(biomarker, method, "tissue", c)] == cells[(biomarker, "all", "tissue", c)]
