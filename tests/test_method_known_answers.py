"""Known-answer cases (tests/fixtures/method/*.json): the method reproduces every expected figure,
and the figures that matter are checked against scipy directly, not only against the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats as sps

from auditor.verify import check_known_answer
from method import METHOD_VERSION, known_answers

CASES = sorted((Path(__file__).parent / "fixtures" / "method").glob("*.json"))


def test_there_are_known_answer_cases() -> None:
    assert {c.stem for c in CASES} >= {
        "boundaries",
        "dna_only_met_exon14",
        "dp_noise",
        "eqa_persistent_poor",
        "overdispersion",
    }


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_the_method_reproduces_each_case(path: Path) -> None:
    case = known_answers.load(path)
    assert case["method_version"] == METHOD_VERSION
    assert check_known_answer(path) is None


def test_a_case_with_one_figure_changed_is_caught(tmp_path: Path) -> None:
    case = json.loads((CASES[0]).read_text())
    site = next(iter(case["expected"]["sites"]))
    entry = next(iter(case["expected"]["sites"][site]["positivity"].values()))
    entry["ci95"][0] += 0.01
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(case))
    found = check_known_answer(changed)
    assert found is not None and "ci95" in found


def test_the_dna_only_case_against_scipy() -> None:
    case = known_answers.load(next(p for p in CASES if p.stem == "dna_only_met_exon14"))
    out = case["expected"]
    classes = out["network"]["rare_drivers"]["MET_EX14"]["classes"]
    dna, rna = classes["dna_only"], classes["rna_capable"]
    table = [
        [dna["positive"], dna["valid"] - dna["positive"]],
        [rna["positive"], rna["valid"] - rna["positive"]],
    ]
    exact = sps.fisher_exact(table, alternative="less").pvalue
    half = sps.hypergeom.pmf(
        dna["positive"],
        dna["valid"] + rna["valid"],
        dna["positive"] + rna["positive"],
        dna["valid"],
    )
    comparison = out["network"]["rare_drivers"]["MET_EX14"]["comparisons"]["dna_only"]
    assert comparison["p"] == pytest.approx(exact - 0.5 * half, rel=1e-9)
    flags = [f for f in out["flags"] if f["rule"] == "method_class"]
    assert [f["site_id"] for f in flags] == ["lab-dna"]
    assert flags[0]["p"] == pytest.approx(comparison["p"]) and flags[0]["q"] <= 0.05
    own = out["sites"]["lab-dna"]["rare_drivers"]["MET_EX14"]
    assert own["likely_causes"][0] == "no RNA-capable method"
    missed = own["patients_missed"]
    assert missed["ci95"][0] <= missed["estimate"] <= missed["ci95"][1]


def test_the_boundaries_case_never_divides_by_zero() -> None:
    out = known_answers.load(next(p for p in CASES if p.stem == "boundaries"))["expected"]
    egfr = out["sites"]["lab-a"]["positivity"]["EGFR"]
    assert egfr["valid"] == 0 and egfr["rate"] is None and "p" not in egfr
    notes = {(n["site_id"], n["indicator"]) for n in out["notes"]}
    assert ("lab-a", "positivity RET") in notes  # only one site reports RET: nothing to compare


def test_the_dp_case_models_the_noise_or_says_why_not() -> None:
    out = known_answers.load(next(p for p in CASES if p.stem == "dp_noise"))["expected"]
    assert out["sites"]["lab-dp"]["positivity"]["EGFR"]["reference"] == "binomial+noise"
    wild = [n for n in out["notes"] if n["site_id"] == "lab-wild"]
    assert any(n["indicator"] == "positivity EGFR" and "exceeds" in n["note"] for n in wild)
    assert all("exceeds" in n["note"] or "DP noise" in n["note"] for n in wild)
    assert not [f for f in out["flags"] if f["site_id"] == "lab-wild"]
    assert "p" not in out["sites"]["lab-wild"]["positivity"]["EGFR"]


def test_the_eqa_case_scores_sub_schemes_and_persistence() -> None:
    out = known_answers.load(next(p for p in CASES if p.stem == "eqa_persistent_poor"))["expected"]
    sheet = out["eqa"]["2026-R3"]["sites"]["lab-poor"]
    assert sheet["score"] == pytest.approx(0.9) and not sheet["passed"]  # 90% pooled, yet failed
    assert not sheet["subschemes"]["ALK"]["passed"] and sheet["subschemes"]["EGFR"]["passed"]
    assert sheet["persistent_poor"]
    assert out["eqa"]["2026-R3"]["sites"]["lab-a"]["persistent_poor"] is False


def test_the_cell_key_case_models_the_perturbation() -> None:
    out = known_answers.load(next(p for p in CASES if p.stem == "cell_key_perturbation"))[
        "expected"
    ]
    assert out["sites"]["lab-0"]["positivity"]["EGFR"]["reference"] == "fisher+perturbation"
    assert "p" in out["sites"]["lab-0"]["failure"]["tissue"]  # modelled, so tested
    assert "method_class" in {f["rule"] for f in out["flags"] if f["site_id"] == "lab-dna"}
    odd = [n for n in out["notes"] if n["site_id"] == "lab-odd"]
    assert odd and all("made-up-table" in n["note"] for n in odd)
    assert not [f for f in out["flags"] if f["site_id"] == "lab-odd"]
