"""Disclosure control: the site's policy applied to its metrics before anything is signed.

Defaults (min_denominator 10, merge, no small-count suppression, no noise) keep rare-mutation
signals visible: a stratum's zero positives are never hidden (0 is not a "small count"), and
a small stratum is merged into a coarser one (specimen "any", then method "any") rather than
dropped, so 0 MET exon 14 positives in 400 DNA-only tests still reaches the benchmark. Only a
coarsest stratum still under the threshold is withheld, and it is listed as withheld.
"""

from __future__ import annotations

from collections import defaultdict

from node.config import Disclosure
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS

CELLS = ("positive", "negative", "failed", "equivocal")


def policy_message(policy: Disclosure) -> pb.DisclosurePolicy:
    return pb.DisclosurePolicy(
        min_denominator=policy.min_denominator,
        small_stratum_action=policy.small_stratum_action,
        small_count_suppression=policy.small_count_suppression,
        small_count_threshold=policy.small_count_threshold if policy.small_count_suppression else 0,
        differential_privacy=pb.DifferentialPrivacy(
            enabled=False
        ),  # set by node/privacy.py when on
    )


def _add(into: pb.StratumCounts, other: pb.StratumCounts) -> None:
    into.tests += other.tests
    for cell in CELLS:
        setattr(into, cell, getattr(into, cell) + getattr(other, cell))


def _withheld(biomarker: str, method: str, specimen: str, n: int, why: str) -> pb.StratumCounts:
    return pb.StratumCounts(
        biomarker=biomarker,
        method=method,
        specimen=specimen,
        histology_group="all",
        withheld=True,
        disclosure_note=f"withheld: {why} (fewer than {n} tests)",
    )


def _merged(group: list[pb.StratumCounts], method: str, note: str) -> pb.StratumCounts:
    merged = pb.StratumCounts(
        biomarker=group[0].biomarker,
        method=method,
        specimen="any",
        histology_group="all",
        disclosure_note=note,
    )
    for s in group:
        _add(merged, s)
    return merged


def _grouped(strata: list[pb.StratumCounts], key) -> list[list[pb.StratumCounts]]:
    groups: dict[tuple, list[pb.StratumCounts]] = defaultdict(list)
    for s in strata:
        groups[key(s)].append(s)
    return [groups[k] for k in sorted(groups)]


def apply_min_denominator(
    strata: list[pb.StratumCounts], n: int, action: str
) -> list[pb.StratumCounts]:
    """Strata under n tests are withheld, or merged upwards: first their specimens (specimen
    "any"), then, for per-method strata, their methods (method "any"). A merged stratum still
    under n is withheld. Strata of n or more are released as they are; merged strata hold only
    small ones, so no released cell can be recovered by subtraction."""
    released = [s for s in strata if s.tests >= n]
    small = [s for s in strata if s.tests < n]
    if action == "withhold":
        return released + [
            _withheld(s.biomarker, s.method, s.specimen, n, "small stratum") for s in small
        ]
    still_small: list[pb.StratumCounts] = []
    for group in _grouped(small, lambda s: (s.biomarker, s.method)):
        merged = _merged(group, group[0].method, f"merged: specimens with fewer than {n} tests")
        (released if merged.tests >= n else still_small).append(merged)
    for group in _grouped(still_small, lambda s: (s.biomarker,)):
        method = ALL_METHODS if group[0].method == ALL_METHODS else "any"
        merged = _merged(group, method, f"merged: methods with fewer than {n} tests")
        released.append(
            merged
            if merged.tests >= n
            else _withheld(merged.biomarker, method, "any", n, "too few tests even merged")
        )
    return sorted(released, key=lambda s: (s.biomarker, s.method, s.specimen))


def suppress_small_counts(stratum: pb.StratumCounts, threshold: int) -> None:
    """Suppress cells with 1..threshold-1 results, and a complementary cell when only one is
    suppressed (the cells add up to tests, so a single hidden cell could be recomputed)."""
    if stratum.withheld:
        return
    hidden = [c for c in CELLS if 0 < getattr(stratum, c) < threshold]
    if len(hidden) == 1:
        others = sorted(
            (getattr(stratum, c), c) for c in CELLS if c not in hidden and getattr(stratum, c) > 0
        )
        if others:
            hidden.append(others[0][1])
        else:  # the only non-zero cell equals tests: hide tests too
            stratum.tests = 0
    for cell in hidden:
        setattr(stratum, cell, 0)
    if hidden:
        stratum.suppressed_cells.extend(sorted(hidden, key=CELLS.index))
        stratum.disclosure_note = (
            stratum.disclosure_note + "; " if stratum.disclosure_note else ""
        ) + f"cells under {threshold} suppressed with complementary suppression"


def apply(summary: pb.SiteSummary, policy: Disclosure) -> pb.SiteSummary:
    """The releasable summary; the input is not changed."""
    out = pb.SiteSummary()
    out.CopyFrom(summary)
    n = policy.min_denominator
    per_method = [s for s in summary.strata if s.method != ALL_METHODS]
    per_test = [s for s in summary.strata if s.method == ALL_METHODS]
    del out.strata[:]
    out.strata.extend(apply_min_denominator(per_method, n, policy.small_stratum_action))
    out.strata.extend(apply_min_denominator(per_test, n, policy.small_stratum_action))
    if policy.small_count_suppression:
        for stratum in out.strata:
            suppress_small_counts(stratum, policy.small_count_threshold)
    for table in out.concordance:
        pairs = (
            table.both_positive
            + table.index_positive_comparator_negative
            + table.index_negative_comparator_positive
            + table.both_negative
        )
        if pairs + table.excluded_failed < n:
            for field in (
                "both_positive",
                "index_positive_comparator_negative",
                "index_negative_comparator_positive",
                "both_negative",
                "excluded_failed",
            ):
                setattr(table, field, 0)
            table.withheld = True
            table.disclosure_note = f"withheld: fewer than {n} pairs"
    _merge_small_turnaround(out, n)
    if out.panel.patients < n:
        target = out.panel
        target.Clear()
        target.withheld = True
        target.disclosure_note = f"withheld: fewer than {n} patients"
    out.policy.CopyFrom(policy_message(policy))
    return out


def _merge_small_turnaround(summary: pb.SiteSummary, n: int) -> None:
    small = [h for h in summary.turnaround if h.total < n]
    if not small:
        return
    kept = [h for h in summary.turnaround if h.total >= n]
    merged = pb.TurnaroundHistogram(
        specimen="any",
        target_days=small[0].target_days,
        disclosure_note=f"merged: specimens with fewer than {n} tests",
    )
    counts: defaultdict[int, int] = defaultdict(int)
    for h in small:
        for i, c in enumerate(h.counts):
            counts[i] += c
        merged.within_target += h.within_target
        merged.total += h.total
    if merged.total >= n:
        merged.counts.extend(counts[i] for i in range(len(small[0].counts)))
    else:
        merged.within_target = merged.total = 0
        merged.withheld = True
        merged.disclosure_note = f"withheld: fewer than {n} tests even merged"
    del summary.turnaround[:]
    summary.turnaround.extend(kept + [merged])
