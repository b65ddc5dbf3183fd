"""Revisions of a released period against the curious coordinator (red-team findings 1 and 2).

A revision's difference with the last version is itself released. The gate opens only when the
results of at least revision_min_changes distinct patients move a released figure; it used to
count results, so one patient's late 11-biomarker panel, or one late result padded with nine
histology refinements that move nothing, opened it and the cells that moved were that patient's.

The attacks are those of tests/test_privacy_redteam.py, read as the coordinator reads them: a
held revision releases nothing, so its answer is "held". (The red-team tests themselves assert
that the gate opens before they attack, so they stay xfail while the gate holds: see the
report of branch f1.)
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from coordinator.standards import DEFAULT_STANDARD
from node.cli import main as node_cli
from node.vocabulary import BIOMARKERS
from protos import wire
from tests.test_privacy_attacks import make_lab, result, rows_of
from tests.test_privacy_redteam import (
    assert_worlds_overlap,
    changed,
    fresh,
    late,
    late_result_call,
    ros1_lab_rows,
    two_worlds,
)


@pytest.mark.slow
def test_changes_that_move_no_figure_do_not_open_the_revision_gate(tmp_path) -> None:
    """Q3 has left; one late ROS1 FISH plasma result (planted positive, neighbour negative)
    arrives with nine histology refinements (nos -> adenocarcinoma, both in the panel
    population). Ten results changed; one patient's moves a released figure: held."""
    lab = make_lab(tmp_path)

    def run(p: str, planted: bool) -> str:
        rows = ros1_lab_rows(p)
        fresh(lab, rows, f"site {p} {planted}")
        assert lab.sign().sequence is not None
        fixes = [dict(r, histology="adenocarcinoma") for r in rows[:9]]
        lab.load([late(p, planted), *fixes], "late.csv")
        queued = lab.sign()
        if queued.sequence is None:
            assert "10 result(s) changed" in queued.held and "from 1 patient(s)" in queued.held
            return "held"
        first, second = lab.released()
        return late_result_call(first, second)

    planted, neighbour = two_worlds(run)
    assert set(planted) == set(neighbour) == {"held"}
    assert_worlds_overlap(planted, neighbour)


@pytest.mark.slow
def test_one_patients_late_panel_does_not_open_the_revision_gate(tmp_path) -> None:
    """Q3 has left; one patient's 11-biomarker NGS panel is reported late (planted KRAS
    positive, neighbour EGFR positive). Eleven results, one patient: held."""
    lab = make_lab(tmp_path)

    def base(p: str) -> list[dict]:
        return [
            row for b in BIOMARKERS for row in rows_of(p + "pan", 20, b, "ngs_dna_rna", "tissue", 2)
        ]

    def late_panel(p: str, planted: bool) -> list[dict]:
        driver = "KRAS" if planted else "EGFR"
        return [
            result(
                p + "LATE",
                b,
                "ngs_dna_rna",
                "tissue",
                "positive" if b == driver else "negative",
                patient=p + "LATE-PATIENT",
                reported="2026-09-30",
            )
            for b in BIOMARKERS
        ]

    def run(p: str, planted: bool) -> str:
        fresh(lab, base(p), f"site {p} {planted}")
        assert lab.sign().sequence is not None
        lab.load(late_panel(p, planted), "late.csv")
        queued = lab.sign()
        if queued.sequence is None:
            assert f"{len(BIOMARKERS)} result(s) changed" in queued.held
            return "held"
        first, second = lab.released()
        moved = changed(first, second)
        votes = {
            b: sum(("stratum", b, m, "tissue", "positive") in moved for m in ("ngs_dna_rna", "all"))
            for b in BIOMARKERS
        }
        best = max(votes.values())
        drivers = [b for b, v in votes.items() if v == best and v > 0]
        return drivers[0] if len(drivers) == 1 else "unknown"

    planted, neighbour = two_worlds(run)
    assert set(planted) == set(neighbour) == {"held"}
    assert_worlds_overlap(planted, neighbour)


def test_late_results_of_enough_patients_still_open_the_gate(tmp_path) -> None:
    """The gate is not a wall: late results of nine patients are held, a tenth patient's opens
    it, and the revision carries them."""
    lab = make_lab(tmp_path)
    lab.load(rows_of("t", 40, "EGFR", "ngs_dna", "tissue", 12))
    assert lab.sign().sequence == 1
    lab.load(rows_of("late", 9, "ALK", "ihc", "tissue", 1, reported="2026-09-30"), "l1.csv")
    held = lab.sign()
    assert held.sequence is None and "from 9 patient(s)" in held.held
    lab.load([result("late9", "ALK", "ihc", "tissue", "negative")], "l2.csv")
    assert lab.sign().sequence == 2
    first, second = lab.released()
    assert any(x.biomarker == "ALK" and not x.withheld for x in second.strata)
    assert not any(x.biomarker == "ALK" and not x.withheld for x in first.strata)


def test_summarize_json_is_the_rebuild_an_accepted_standard_signs(tmp_path) -> None:
    """After `standards accept`, a released period is rebuilt from what its last release counted
    (a late result waits for the gate): `summarize --json` prints those bytes, and they are what
    is signed."""
    lab = make_lab(tmp_path)
    lab.load(rows_of("t", 40, "EGFR", "ngs_dna", "tissue", 12))
    assert lab.sign().sequence == 1
    lab.load([result("LATE", "ROS1", "fish", "plasma", "positive")], "late.csv")
    bumped = DEFAULT_STANDARD.read_text().replace('version = "2026.1"', 'version = "2026.2"')
    lab.config.standard_path.write_text(bumped)
    runner = CliRunner()
    args = ["--data-dir", str(lab.config.data_dir)]
    assert runner.invoke(node_cli, ["standards", "accept", *args]).exit_code == 0
    preview = runner.invoke(node_cli, ["summarize", "--period", "2026Q3", "--json", *args])
    assert preview.exit_code == 0, preview.output
    assert lab.sign().sequence == 2
    ((blob,),) = lab.conn.execute("SELECT envelope FROM outbox WHERE sequence = 2")
    assert wire.parse_envelope(blob).payload == preview.stdout_bytes
    first, second = lab.released()
    assert second.standard_version == "2026.2"
    assert not any(x.biomarker == "ROS1" for x in second.strata)  # the late result waits
    assert [x for x in first.strata] == [x for x in second.strata]
    again = lab.sign()  # under the accepted standard the late result is a revision: gated
    assert again.sequence is None and "from 1 patient(s)" in again.held
