"""Synthetic canonical LIMS exports with realistic NSCLC positivity (Chinese cohorts, see
../shared/reference section 4), and profiles that make a site misbehave:

- dna_only: a DNA-only NGS panel that misses most MET exon 14 skipping (and some fusions);
- slow: turnaround of two to four working weeks;
- failing_cytology: many cytology samples, a third of which fail.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

from node.vocabulary import BIOMARKERS, FIELDS
from protos.periods import Period, containing, parse

PROFILES = ("normal", "dna_only", "slow", "failing_cytology")

# One driver per patient (they are largely mutually exclusive); probability among NSCLC tested.
DRIVERS = {
    "EGFR": 0.45,
    "KRAS": 0.07,
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
FUSIONS = {"ALK", "ROS1", "RET", "NTRK"}
HISTOLOGY = (
    ("adenocarcinoma", 0.76),
    ("squamous", 0.10),
    ("nos", 0.08),
    ("large_cell", 0.03),
    ("sarcomatoid", 0.01),
    ("other", 0.02),
)
FAILURE = {"tissue": 0.03, "cytology": 0.07, "plasma": 0.04}


def _pick(rng: random.Random, weighted) -> str:
    items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
    r = rng.random() * sum(w for _, w in items)
    for value, weight in items:
        r -= weight
        if r <= 0:
            return value
    return items[-1][0]


def _add_working_days(start: dt.date, days: int) -> dt.date:
    day = start
    while days > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def default_period(today: dt.date | None = None) -> Period:
    return containing(today or dt.date.today(), "quarter").previous()


def generate(
    site_id: str,
    rows: int,
    seed: int,
    profiles: tuple[str, ...] = ("normal",),
    period: Period | None = None,
    id_prefix: str = "",
) -> list[dict]:
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown profile(s) {sorted(unknown)}; choose from {PROFILES}")
    period = period or default_period()
    rng = random.Random(f"{site_id}:{seed}:{period.label}")
    span = (period.end - period.start).days
    dna_only = "dna_only" in profiles
    slow = "slow" in profiles
    failing = "failing_cytology" in profiles
    specimen_mix = {"tissue": 0.62, "cytology": 0.25, "plasma": 0.13}
    if failing:
        specimen_mix = {"tissue": 0.40, "cytology": 0.50, "plasma": 0.10}
    method = "ngs_dna" if dna_only else "ngs_dna_rna"
    out: list[dict] = []
    patient = test = 0
    while len(out) < rows:
        patient += 1
        pid = f"{id_prefix}P-{site_id}-{period.label}-{patient:06d}"
        histology = _pick(rng, HISTOLOGY)
        driver = _pick(rng, {**DRIVERS, None: 1 - sum(DRIVERS.values())})
        specimen = _pick(rng, specimen_mix)
        failure = FAILURE[specimen] * (5 if failing and specimen == "cytology" else 1)
        received = period.start + dt.timedelta(days=rng.randint(0, max(span - 35, 0)))
        if slow:
            tat = rng.randint(9, 22)
        else:
            tat = (
                max(0, min(int(rng.gauss(6, 2)), 14))
                if rng.random() > 0.03
                else rng.randint(11, 16)
            )
        reported = min(_add_working_days(received, tat), period.end)

        def emit(test_id: str, spec: str, meth: str, biomarker: str, result: str) -> None:
            vaf = ""
            if result == "positive" and biomarker not in FUSIONS and meth.startswith("ngs"):
                vaf = f"{min(95.0, rng.lognormvariate(2.6, 0.8)):.1f}"
                if spec == "plasma":
                    vaf = f"{min(30.0, rng.lognormvariate(0.5, 1.0)):.2f}"
            out.append(
                {
                    "test_id": test_id,
                    "patient_id": pid,
                    "received_date": received.isoformat(),
                    "reported_date": reported.isoformat(),
                    "specimen": spec,
                    "histology": histology,
                    "method": meth,
                    "biomarker": biomarker,
                    "result": result,
                    "variant": "",
                    "vaf": vaf,
                    "eqa_round": "",
                    "eqa_sample": "",
                }
            )

        def call(biomarker: str, meth: str, spec: str) -> str:
            truly = driver == biomarker or (driver == "KRAS_G12C" and biomarker == "KRAS")
            if not truly:
                return "positive" if rng.random() < 0.001 else "negative"
            sensitivity = 1.0
            if meth == "ngs_dna" and biomarker == "MET_EX14":
                sensitivity = 0.15
            elif meth == "ngs_dna" and biomarker in FUSIONS:
                sensitivity = 0.85
            elif meth == "ihc":
                sensitivity = 0.97
            if spec == "plasma":
                sensitivity *= 0.45 if biomarker in FUSIONS else 0.72
            return "positive" if rng.random() < sensitivity else "negative"

        test += 1
        tid = f"{id_prefix}T-{site_id}-{period.label}-{test:07d}"
        failed = rng.random() < failure
        for biomarker in BIOMARKERS:
            emit(
                tid,
                specimen,
                method,
                biomarker,
                "failed" if failed else call(biomarker, method, specimen),
            )
        if not failed and specimen != "plasma" and rng.random() < 0.15:
            emit(
                tid,
                specimen,
                "ihc",
                "ALK",
                "equivocal" if rng.random() < 0.01 else call("ALK", "ihc", specimen),
            )
            if rng.random() < 0.5:
                emit(tid, specimen, "fish", "ALK", call("ALK", "fish", specimen))
        if specimen == "tissue" and rng.random() < 0.10:
            test += 1
            ptid = f"{id_prefix}T-{site_id}-{period.label}-{test:07d}"
            plasma_failed = rng.random() < FAILURE["plasma"]
            for biomarker in ("EGFR", "KRAS", "ALK", "MET_EX14"):
                emit(
                    ptid,
                    "plasma",
                    "ngs_dna",
                    biomarker,
                    "failed" if plasma_failed else call(biomarker, "ngs_dna", "plasma"),
                )
    return out[:rows]


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def parse_profiles(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip()) or ("normal",)


__all__ = ["PROFILES", "generate", "write_csv", "parse_profiles", "default_period", "parse"]
