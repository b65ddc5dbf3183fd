"""The method's operating characteristics, small enough for the suite (the full study is
`make bench-method`, tables in docs/method.md)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_method
from coordinator.standards import DEFAULT_STANDARD
from method.benchmark import compute
from method.inputs import Inputs
from method.standard import parse

STANDARD = parse(DEFAULT_STANDARD.read_text(encoding="utf-8"))


def test_alike_labs_raise_few_flags() -> None:
    # 6 alike labs, 15 periods: the old funnel raised ~2 false alerts a quarter (~30 here).
    found = bench_method.null_study(6, 15, seed=7, standard=STANDARD)
    assert found["flags_per_period"] <= 0.5, found
    assert found["alarms_per_period"] <= 0.2, found


@pytest.mark.parametrize("perturbed", [False, True])
def test_a_dna_only_lab_is_found_by_its_method_class_and_window(
    monkeypatch: pytest.MonkeyPatch, perturbed: bool
) -> None:
    # Five networks of 12 labs plus the DNA-only lab: found in at least four, with exact counts
    # and with the nodes' cell-key perturbation alike (power above 0.9 each, docs/method.md; five
    # of five with method 2026.3, three of five was the floor under perturbation with 2026.2).
    # Every flag with its q, about 10 patients missed and the cause named.
    monkeypatch.setattr(bench_method, "PERTURB", perturbed)
    found = 0
    for seed in range(5):
        full = bench_method.network(12, np.random.default_rng(seed), dna_lab=True)
        result = compute(Inputs(full, set(), []), "2026Q3", STANDARD)
        mine = [
            f for f in result["flags"] if f["site_id"] == "lab-dna" and f["subject"] == "MET_EX14"
        ]
        found += bool(mine)
        for f in mine:
            assert f["q"] <= 0.05 and f["p"] <= f["q"]
        entry = result["sites"]["lab-dna"]["rare_drivers"]["MET_EX14"]
        # 600 tests at 0.3% instead of ~2%: about 10 patients missed among valid results.
        assert 2 < entry["patients_missed"]["among_valid"]["estimate"] < 20
        assert "no RNA-capable method" in entry["likely_causes"]
    assert found >= 4


@pytest.mark.slow
@pytest.mark.parametrize("perturbed", [False, True])
def test_power_for_the_dna_only_lab_within_four_quarters(
    monkeypatch: pytest.MonkeyPatch, perturbed: bool
) -> None:
    """The study (`make bench-method`, docs/method.md) puts the power at or above 0.9 with exact
    and with perturbed counts (perturbed, 7 labs: 400 networks, with its Monte Carlo interval).
    60 networks cannot show 0.9 (their own 95% interval is about +-0.07), so the bound is set
    below the study's interval: 0.85 still fails if power falls materially, as it did to
    0.73-0.88 under perturbation with method 2026.2."""
    monkeypatch.setattr(bench_method, "PERTURB", perturbed)
    found = bench_method.power_study(6, 60, seed=11, standard=STANDARD)
    assert found["power_q4"] >= 0.85, found
