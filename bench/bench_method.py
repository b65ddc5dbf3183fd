"""make bench-method: the method's operating characteristics by simulation (tables in docs/method.md).

1. False flags: networks of 6, 30 and 100 alike labs (every lab at the same true rates, meeting
   the standard), volumes drawn uniformly from 50 to 1,000 tests a quarter, four quarters of
   history; one of the labs uses a DNA-only method (at the same rates), so that the method-class
   family is tested too; every flag raised in the last quarter is a false flag.
2. Power: the same networks plus one DNA-only lab that finds MET exon 14 at 0.3% (2% elsewhere)
   with 150 tests a quarter; it is benchmarked each quarter as its history grows, and counts as
   found when any MET exon 14 flag is raised on it within four quarters.
3. Smallest volume at which a lab with no positives can be flagged, per biomarker (exact).

python -m bench.bench_method [--reps N] [--seed S] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from typing import Any

import numpy as np

from coordinator.standards import DEFAULT_STANDARD
from method import METHOD_VERSION
from method.benchmark import compute
from method.inputs import Inputs
from method.noise import (
    SMALL_COUNT,
    expected_excess,
    reference_nodes,
    released_lr_lower,
)
from method.standard import Standard, parse
from method.stats import wilson
from protos.rarenet.v1 import summary_pb2 as pb

PERIODS = ("2025Q4", "2026Q1", "2026Q2", "2026Q3")
RATES = {  # true positivity among valid results, within the standard's expected ranges
    "EGFR": 0.45,
    "KRAS": 0.10,
    "KRAS_G12C": 0.03,
    "ALK": 0.05,
    "ERBB2": 0.03,
    "MET_EX14": 0.02,
    "MET_AMP": 0.01,
    "RET": 0.014,
    "ROS1": 0.015,
    "BRAF_V600E": 0.01,
    "NTRK": 0.004,
}
FAILURE = 0.04  # standard's maximum for tissue: 10%
# Cell-key perturbation as nodes apply it (rarenet-ptable-1; summary.proto Perturbation): rows by
# true count, d -> probability.
PTABLE = {1: ((0, 0.6), (1, 0.3), (2, 0.1)), 2: ((-1, 0.3), (0, 0.4), (1, 0.3))}
PTABLE_WIDE = ((-2, 0.1), (-1, 0.2), (0, 0.4), (1, 0.2), (2, 0.1))
PERTURB = True


def perturb(count: int, rng: np.random.Generator) -> int:
    """A count as a node releases it: a true 0 stays 0; else plus d from the table's row."""
    if count <= 0 or not PERTURB:
        return count
    row = PTABLE.get(count, PTABLE_WIDE)
    d = rng.choice([v for v, _ in row], p=[p for _, p in row])
    return int(count + d)


WITHIN_TARGET = 0.95  # goal 90%
PANEL = 0.95  # target 90%
PPA, NPA = 0.97, 0.99  # minimums 0.90, 0.95


def lab_summary(
    site: str,
    period: str,
    tests: int,
    rng: np.random.Generator,
    method: str = "ngs_dna_rna",
    rates: dict[str, float] | None = None,
) -> pb.SiteSummary:
    rates = {**RATES, **(rates or {})}
    failed = int(rng.binomial(tests, FAILURE))
    strata = []
    for biomarker, rate in rates.items():
        pos = int(rng.binomial(tests - failed, rate))
        for m in (method, "all"):
            cells = [perturb(c, rng) for c in (pos, tests - failed - pos, failed)]
            strata.append(
                pb.StratumCounts(
                    biomarker=biomarker,
                    method=m,
                    specimen="tissue",
                    histology_group="all",
                    tests=sum(cells),
                    positive=cells[0],
                    negative=cells[1],
                    failed=cells[2],
                )
            )
    within = int(rng.binomial(tests, WITHIN_TARGET))
    alk_pos = int(rng.binomial(max(tests // 10, 1), 0.3))
    a = int(rng.binomial(alk_pos, PPA))
    neg = max(tests // 10, 1) - alk_pos
    d = int(rng.binomial(neg, NPA))
    patients = int(tests * 0.85)
    summary = pb.SiteSummary(
        site_id=site,
        period=period,
        schema_version=1,
        sequence=PERIODS.index(period) + 1,
        standard_version="2026.1",
        strata=strata,
        turnaround=[
            pb.TurnaroundHistogram(
                specimen="tissue", counts=[0] * 6 + [within] + [0] * 7 + [tests - within]
            )
        ],
        concordance=[
            pb.ConcordanceTable(
                kind="inter_method",
                biomarker="ALK",
                index_method="ihc",
                comparator_method="fish",
                both_positive=a,
                index_positive_comparator_negative=neg - d,
                index_negative_comparator_positive=alk_pos - a,
                both_negative=d,
            )
        ],
        panel=pb.PanelCoverage(
            patients=patients, with_all_required=int(rng.binomial(patients, PANEL))
        ),
    )
    if PERTURB:
        for h in summary.turnaround:
            h.counts[:] = [perturb(c, rng) for c in h.counts]
        t = summary.concordance[0]
        for f in (
            "both_positive",
            "index_positive_comparator_negative",
            "index_negative_comparator_positive",
            "both_negative",
        ):
            setattr(t, f, perturb(getattr(t, f), rng))
        summary.panel.patients = perturb(summary.panel.patients, rng)
        summary.panel.with_all_required = min(
            perturb(summary.panel.with_all_required, rng), summary.panel.patients
        )
        p = summary.policy.perturbation
        p.mechanism, p.table, p.max_noise, p.noise_variance, p.zero_exact = (
            "cell_key",
            "rarenet-ptable-1",
            2,
            1.2,
            True,
        )
    return summary


def network(
    labs: int,
    rng: np.random.Generator,
    periods: tuple[str, ...] = PERIODS,
    dna_lab: bool = False,
    dna_alike: bool = False,
) -> dict[str, dict[str, tuple[int, pb.SiteSummary]]]:
    """Alike labs; with `dna_lab` one more, DNA-only, finding MET exon 14 at 0.3%; with
    `dna_alike` the first lab uses a DNA-only method at the network's rates (a null for the
    method-class comparison)."""
    volumes = rng.integers(50, 1001, labs)
    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]] = {}
    leaf = 0
    for period in periods:
        by_period[period] = {}
        for i, volume in enumerate(volumes):
            site = f"lab-{i:03d}"
            method = "ngs_dna" if dna_alike and i == 0 else "ngs_dna_rna"
            by_period[period][site] = (leaf, lab_summary(site, period, int(volume), rng, method))
            leaf += 1
        if dna_lab:
            by_period[period]["lab-dna"] = (
                leaf,
                lab_summary(
                    "lab-dna", period, 150, rng, method="ngs_dna", rates={"MET_EX14": 0.003}
                ),
            )
            leaf += 1
    return by_period


def null_study(labs: int, reps: int, seed: int, standard: Standard) -> dict[str, Any]:
    """Flags per period in networks of alike labs (all false)."""
    rng = np.random.default_rng(seed)
    flags = alarms = any_flag = 0
    by_family: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    tests = period_tests = 0
    for _ in range(reps):
        result = compute(
            Inputs(network(labs, rng, dna_alike=True), set(), []), PERIODS[-1], standard
        )
        raised = result["flags"]
        flags += len(raised)
        alarms += sum(f["level"] == "alarm" for f in raised)
        any_flag += bool(raised)
        by_rule.update(f["rule"] for f in raised)
        tests += sum(result["method"]["families"].values())
        period_tests += result["method"]["families"]["period"]
        for family, size in result["method"]["families"].items():
            by_family[family] += size
    return {
        "labs": labs,
        "reps": reps,
        "tests_per_period": tests / reps,
        "period_family": period_tests / reps,
        "flags_per_period": flags / reps,
        "alarms_per_period": alarms / reps,
        "p_any_flag": any_flag / reps,
        "p_any_flag_ci95": _interval(any_flag, reps),
        "flags_per_lab_period": flags / reps / labs,
        "rules": dict(by_rule),
    }


def _interval(found: int, reps: int) -> str:
    """The Monte Carlo 95% interval of a simulated proportion (Wilson)."""
    lo, hi = wilson(found, reps)
    return f"{lo:.2f}-{hi:.2f}"


MET_RULES = {
    "positivity_funnel",
    "rare_driver_window",
    "method_class",
    "rare_driver_below_expected",
}


def power_study(labs: int, reps: int, seed: int, standard: Standard) -> dict[str, Any]:
    """P(the DNA-only lab is flagged on MET exon 14 by quarter 1..4), and how."""
    rng = np.random.default_rng(seed)
    found_by = [0, 0, 0, 0]
    how: Counter[str] = Counter()
    other_flags = 0
    for _ in range(reps):
        full = network(labs, rng, dna_lab=True)
        first = None
        for q in range(4):
            history = {p: full[p] for p in PERIODS[: q + 1]}
            result = compute(Inputs(history, set(), []), PERIODS[q], standard)
            mine = [
                f
                for f in result["flags"]
                if f["site_id"] == "lab-dna"
                and f["subject"] == "MET_EX14"
                and f["rule"] in MET_RULES
            ]
            if q == 3:
                other_flags += sum(f["site_id"] != "lab-dna" for f in result["flags"])
            if mine and first is None:
                first = q
                how.update({f["rule"] for f in mine})
        if first is not None:
            for q in range(first, 4):
                found_by[q] += 1
    return {
        "labs": labs + 1,
        "reps": reps,
        **{f"power_q{q + 1}": found_by[q] / reps for q in range(4)},
        "power_q4_ci95": _interval(found_by[3], reps),
        "rules_first_flagging": dict(how),
        "false_flags_per_period_q4": other_flags / reps,
    }


def class_test_size(theta: float, reps: int, seed: int, reference_labs: int = 5) -> dict[str, Any]:
    """The method-class test of a small perturbed count alone, under the null: one DNA-only lab
    and `reference_labs` RNA-capable labs at the same rate theta, volumes uniform on 50-1,000 a
    quarter, four quarters, every cell perturbed by the table; the lab is tested as
    method/benchmark.py tests a small class (unbiased reference, its rate uncertain) when its
    expected count is small. Returns the share of p-values at or below 0.0125 and 0.05, and the
    same with the reference's released rate plugged in (method 2026.2)."""
    rng = np.random.default_rng(seed)
    table = "rarenet-ptable-1"
    tested: list[float] = []
    plugged: list[float] = []
    for _ in range(reps):
        volumes = rng.integers(50, 1001, reference_labs + 1)
        cells = [
            (i, n, perturb(int(rng.binomial(n, theta)), rng))
            for i, v in enumerate(volumes)
            for n in [int(v * (1 - FAILURE))] * 4
        ]
        ref = [(n, r) for i, n, r in cells if i > 0]
        own = [(n, r) for i, n, r in cells if i == 0]
        x_ref, n_ref = sum(r for _, r in ref), sum(n for n, _ in ref)
        network_rate = sum(r for *_, r in cells) / sum(n for _, n, _ in cells)
        x_unbiased = max(0.0, x_ref - expected_excess([n for n, _ in ref], network_rate, table))
        n_own = sum(n for n, _ in own)
        if n_own * x_unbiased / n_ref > SMALL_COUNT:
            continue
        parts, released = [n for n, _ in own], [r for _, r in own]
        tested.append(
            released_lr_lower(
                released,
                parts,
                x_unbiased / n_ref,
                table,
                reference_nodes(x_unbiased, n_ref, n_own),
            )
        )
        plugged.append(released_lr_lower(released, parts, x_ref / n_ref, table))
    p, q = np.array(tested), np.array(plugged)
    return {
        "rate": theta,
        "labs_tested": len(p),
        **{f"size_{a}": float((p <= a).mean()) for a in (0.0125, 0.05)},
        **{f"plug_in_size_{a}": float((q <= a).mean()) for a in (0.0125, 0.05)},
    }


def zero_positive_volumes(standard: Standard, family_sizes: dict[int, int]) -> list[dict]:
    """Per biomarker: the smallest n at which 0 positives gives a mid-P of 0.5 (1 - theta)^n
    at or below the level needed (exact: no simulation). Against the network (theta = the
    network rate, the rest of a large network) and against the standard's expected low."""
    alert_q, _ = standard.q_levels

    def smallest(theta: float, alpha: float) -> int:
        return math.ceil(math.log(2 * alpha) / math.log1p(-theta))

    rows = []
    for biomarker, theta in sorted(RATES.items(), key=lambda kv: kv[1]):
        expected = standard.positivity(biomarker)
        row = {
            "biomarker": biomarker,
            "network_rate": theta,
            "single_test_0.05": smallest(theta, 0.05),
        }
        for labs, m in family_sizes.items():
            row[f"bh_rank1_{labs}_labs"] = smallest(theta, alert_q / m)
        if expected:
            row["expected_low"] = expected["low"]
            row["vs_expected_single_0.05"] = smallest(float(expected["low"]), 0.05)
        rows.append(row)
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if v < 100 else f"{v:.0f}"
        return str(v)

    return head + "".join(
        "| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |\n" for r in rows
    )


def run(
    quick: bool = False,
    reps: int | None = None,
    seed: int = 2026,
    sizes: tuple[int, ...] | None = None,
    power_reps: int | None = None,
) -> None:
    standard = parse(DEFAULT_STANDARD.read_text(encoding="utf-8"))
    alert_q, alarm_q = standard.q_levels
    started = time.monotonic()
    counts = "perturbed by cell key (rarenet-ptable-1)" if PERTURB else "exact"
    print(
        f"method {METHOD_VERSION}; alert at q <= {alert_q}, alarm at q <= {alarm_q}; seed {seed}; "
        f"counts {counts}\n"
    )
    sizes = sizes or ((6, 30) if quick else (6, 30, 100))
    null_reps = reps or (20 if quick else 200)
    nulls = [
        null_study(labs, max(null_reps // (1 + labs // 30), 10), seed + labs, standard)
        for labs in sizes
    ]
    print("False flags per period, networks of alike labs (every flag is false):\n")
    print(
        _table(
            nulls,
            [
                "labs",
                "reps",
                "tests_per_period",
                "flags_per_period",
                "alarms_per_period",
                "p_any_flag",
                "p_any_flag_ci95",
                "flags_per_lab_period",
                "rules",
            ],
        )
    )
    power_reps = power_reps or reps or (20 if quick else 200)
    powers = [
        power_study(labs, max(power_reps // (1 + labs // 30), 10), seed + 1000 + labs, standard)
        for labs in sizes
    ]
    print("Power: one DNA-only lab, MET exon 14 at 0.3% vs 2%, 150 tests a quarter:\n")
    print(
        _table(
            powers,
            [
                "labs",
                "reps",
                "power_q1",
                "power_q2",
                "power_q3",
                "power_q4",
                "power_q4_ci95",
                "rules_first_flagging",
                "false_flags_per_period_q4",
            ],
        )
    )
    families = {n["labs"]: max(int(round(n["period_family"])), 1) for n in nulls}
    print(
        "Smallest volume at which a lab with no positives can be flagged: one test at 0.05, and "
        "at rank 1 of Benjamini-Hochberg in the period family of each network size (the hardest "
        "case: the only discovery); tests in the period, or in the window for rare drivers:\n"
    )
    volumes = zero_positive_volumes(standard, families)
    print(
        _table(
            volumes,
            ["biomarker", "network_rate", "single_test_0.05"]
            + [f"bh_rank1_{labs}_labs" for labs in families]
            + ["expected_low", "vs_expected_single_0.05"],
        )
    )
    print(f"({time.monotonic() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reps", type=int, help="replicate networks per size (default 200, 20 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--class-test-size",
        type=int,
        metavar="LABS",
        help="instead of the study: the size of the method-class test of small perturbed counts "
        "over LABS simulated DNA-only labs at NTRK's and MET exon 14's rates",
    )
    parser.add_argument(
        "--sizes", help="network sizes, comma-separated (default 6,30,100; 6,30 with --quick)"
    )
    parser.add_argument(
        "--power-reps",
        type=int,
        help="replicate networks per size for the power study (default: as --reps)",
    )
    parser.add_argument(
        "--no-perturbation",
        action="store_true",
        help="exact counts (by default counts are perturbed by cell key, as nodes release them)",
    )
    args = parser.parse_args()
    global PERTURB
    PERTURB = not args.no_perturbation
    try:
        sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else None
    except ValueError:
        parser.error(f"--sizes takes whole numbers separated by commas, not {args.sizes!r}")
    if args.class_test_size:
        sizes_found = [
            class_test_size(theta, args.class_test_size, args.seed) for theta in (0.004, 0.02)
        ]
        print(_table(sizes_found, list(sizes_found[0])))
        return
    run(args.quick, args.reps, args.seed, sizes, args.power_reps)


if __name__ == "__main__":
    main()
