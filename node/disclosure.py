"""Disclosure control: one engine over every table the site releases, before anything is signed.

Two steps, over strata (per method and per test), turnaround histograms, tests per specimen,
concordance tables, panel coverage and VAF histograms alike:

1. Thresholds on true counts. A stratum with fewer than min_denominator tests is merged into a
   coarser one (specimen "any", then method "any") and withheld only if it is still small; a
   concordance table, a panel or a VAF histogram with too few tests, pairs or patients is merged
   or withheld the same way (marked, never left out).
2. Cell-key perturbation (node/cellkey.py) of every released count: bounded (at most +/-2 per
   cell), consistent (the same records always get the same noise, so nothing can be averaged away
   by asking again) and keyed by secret record keys, so that a figure derived by adding or
   subtracting released figures (a withheld stratum as "all" minus a method, April as Q2 minus May
   minus June, a revision minus its first version) is the true figure plus noise the deriver
   cannot remove. Sums (tests, totals, within_target) are sums of perturbed cells.

Rare-mutation signals stay visible: a true 0 is released as 0 and a non-zero count never as 0, so
0 MET exon 14 positives in 400 DNA-only tests reaches the benchmark as 0 in 400 +/- a few. The
threat model and the residual risks are in docs/privacy.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from node import cellkey
from node.cellkey import CellKeys
from node.config import Disclosure
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS

CELLS = ("positive", "negative", "failed", "equivocal")


def policy_message(policy: Disclosure, key_scheme: int = cellkey.KEY_SCHEME) -> pb.DisclosurePolicy:
    return pb.DisclosurePolicy(
        min_denominator=policy.min_denominator,
        small_stratum_action=policy.small_stratum_action,
        small_count_suppression=policy.small_count_suppression,
        small_count_threshold=policy.small_count_threshold if policy.small_count_suppression else 0,
        differential_privacy=pb.DifferentialPrivacy(enabled=False),  # no longer offered
        perturbation=cellkey.policy(key_scheme),
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


Identity = tuple[str, str, str]  # (biomarker, method, specimen) of a stratum as computed


def _identity(s: pb.StratumCounts) -> Identity:
    return (s.biomarker, s.method, s.specimen)


def apply_min_denominator(
    strata: list[pb.StratumCounts], n: int, action: str
) -> list[pb.StratumCounts]:
    """Strata under n tests are withheld, or merged upwards: first their specimens (specimen
    "any"), then, for per-method strata, their methods (method "any"). A merged stratum still
    under n is withheld. Strata of n or more are released as they are."""
    return [s for s, _ in merge_plan(strata, n, action)]


def merge_plan(
    strata: list[pb.StratumCounts], n: int, action: str
) -> list[tuple[pb.StratumCounts, list[Identity]]]:
    """apply_min_denominator, each released stratum with the computed strata it holds."""
    released = [(s, [_identity(s)]) for s in strata if s.tests >= n]
    small = [s for s in strata if s.tests < n]
    if action == "withhold":
        return released + [
            (_withheld(s.biomarker, s.method, s.specimen, n, "small stratum"), []) for s in small
        ]
    still_small: list[tuple[pb.StratumCounts, list[Identity]]] = []
    for group in _grouped(small, lambda s: (s.biomarker, s.method)):
        merged = _merged(group, group[0].method, f"merged: specimens with fewer than {n} tests")
        entry = (merged, [_identity(s) for s in group])
        (released if merged.tests >= n else still_small).append(entry)
    for group in _grouped([s for s, _ in still_small], lambda s: (s.biomarker,)):
        members = [m for s, ms in still_small if s.biomarker == group[0].biomarker for m in ms]
        method = ALL_METHODS if group[0].method == ALL_METHODS else "any"
        merged = _merged(group, method, f"merged: methods with fewer than {n} tests")
        released.append(
            (merged, members)
            if merged.tests >= n
            else (_withheld(merged.biomarker, method, "any", n, "too few tests even merged"), [])
        )
    return sorted(released, key=lambda e: (e[0].biomarker, e[0].method, e[0].specimen))


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


def apply(summary: pb.SiteSummary, policy: Disclosure, keys: CellKeys) -> pb.SiteSummary:
    """The releasable summary; the input is not changed. `keys` holds the cell keys
    node/metrics.py computed beside the counts."""
    out = pb.SiteSummary()
    out.CopyFrom(summary)
    n = policy.min_denominator
    per_method = [s for s in summary.strata if s.method != ALL_METHODS]
    per_test = [s for s in summary.strata if s.method == ALL_METHODS]
    del out.strata[:]
    method_plan = merge_plan(per_method, n, policy.small_stratum_action)
    plans = (method_plan, merge_plan(per_test, n, policy.small_stratum_action))
    linked = linked_specimens(summary.strata, [e for plan in plans for e in plan])
    computed = {_identity(s): s for s in summary.strata}
    # Twin cells keep the table's name in their keys (independent noise) where a linked specimen
    # has more than one method: there a per-test cell equal to a per-method cell would show
    # that the other methods' withheld or merged records add nothing to it. With one method, per
    # test and per method hold the same records by construction, and share their noise.
    methods = Counter((s.biomarker, s.specimen) for s in per_method)
    named = {bs for bs in linked if methods[bs] > 1}
    for plan in plans:
        for stratum, members in plan:
            if policy.small_count_suppression:
                suppress_small_counts(stratum, policy.small_count_threshold)
            zeros_linked = any((m[0], m[2]) in linked for m in members)
            member_keys = [
                _linked_keys(keys, m, computed[m]) if (m[0], m[2]) in named else keys.strata[m]
                for m in members
            ]
            _perturb_stratum(stratum, member_keys, zeros_linked)
            out.strata.append(stratum)
    _vaf(out, method_plan, keys, n)
    for table in out.concordance:
        _concordance(table, keys, n)
    _turnaround(out, keys, n)
    small_count = policy.small_count_threshold if policy.small_count_suppression else 0
    _specimen_tests(out, keys, n, {specimen for _, specimen in linked}, small_count)
    _panel(out.panel, keys, n)
    out.policy.CopyFrom(policy_message(policy, keys.key_scheme))
    return out


def linked_specimens(
    strata: Iterable[pb.StratumCounts], plan: list[tuple[pb.StratumCounts, list[Identity]]]
) -> set[tuple[str, str]]:
    """The (biomarker, specimen) pairs with a computed stratum (per method or per test) that is
    not released as itself (withheld, or merged into a coarser stratum). The released strata
    there are linked to it: per test minus per method gives it back. Their zeros are perturbed
    (cellkey.LINKED_ZERO), or a sibling's exact 0 beside a per-test 1 would prove that the
    withheld part holds a result. Elsewhere a 0 stays exact (the rare-signal rule)."""
    alone = {
        members[0]
        for s, members in plan
        if not s.withheld and len(members) == 1 and _identity(s) == members[0]
    }
    return {(s.biomarker, s.specimen) for s in strata if _identity(s) not in alone}


def _linked_keys(keys: CellKeys, member: Identity, computed: pb.StratumCounts) -> list[int]:
    """The cell keys of a computed stratum in a linked specimen tested by several methods, with
    the table's name in every record key (n x the CRC of its method or "all" for a cell of n
    records): twin cells there get independent noise, as under cellkey.NAMED_TABLES. With shared
    noise, a per-test cell holding exactly the records of a released per-method cell would show
    by their equal values that the withheld or merged stratum beside them adds nothing to it.
    Elsewhere (every stratum of the specimen released as itself, or one method only) twins share
    their noise: their difference is released anyway, or empty by construction. Under
    NAMED_TABLES metrics already named the table."""
    if keys.key_scheme == cellkey.NAMED_TABLES:
        return keys.strata[member]
    table = cellkey.name_key(member[1])
    return [
        k + getattr(computed, c) * table for k, c in zip(keys.strata[member], CELLS, strict=True)
    ]


def _sum_keys(members: list[list[int]], cell: int) -> int:
    return sum(keys[cell] for keys in members)


def _perturb_stratum(
    stratum: pb.StratumCounts, members: list[list[int]], zeros_linked: bool = False
) -> None:
    """Every cell gets its noise; tests is the sum of the perturbed cells. Suppressed cells stay
    0 on the wire and their noise goes into tests only (so tests says nothing exact about them).
    With `zeros_linked` (see linked_specimens), a true 0 is released as 0, 1 or 2."""
    if stratum.withheld:
        return
    hidden = set(stratum.suppressed_cells)
    true_cells = {c: getattr(stratum, c) for c in CELLS}
    cell_keys = {c: _sum_keys(members, i) for i, c in enumerate(CELLS)}
    if hidden:  # suppression zeroed these cells; their true counts are tests minus the others
        missing = stratum.tests - sum(true_cells.values())
        # The hidden cells together hold `missing`: perturbed as one cell (on the first hidden
        # cell) keyed by ALL the hidden cells' records, so a change in any of them redraws it.
        first = sorted(hidden, key=CELLS.index)[0]
        true_cells[first] += missing
        cell_keys[first] = sum(cell_keys[c] for c in hidden)
    perturbed = {c: cellkey.perturb(true_cells[c], cell_keys[c]) for c in CELLS}
    if zeros_linked:
        # An empty cell has no records, so no key of its own: the stratum's records' keys with
        # the cell's name (secret, and the same whenever the stratum holds the same records).
        stratum_key = sum(cell_keys.values()) + cellkey.name_key("linked_zero")
        for c in CELLS:
            if true_cells[c] == 0 and c not in hidden:
                perturbed[c] = cellkey.perturb_linked_zero(stratum_key + cellkey.name_key(c))
        note = "zeros perturbed: linked to a withheld or merged stratum"
        stratum.disclosure_note = f"{stratum.disclosure_note}; {note}".lstrip("; ")
    for c in CELLS:
        setattr(stratum, c, 0 if c in hidden else perturbed[c])
    if stratum.tests:
        stratum.tests = sum(perturbed.values())


_PAIR_CELLS = (
    "both_positive",
    "index_positive_comparator_negative",
    "index_negative_comparator_positive",
    "both_negative",
    "excluded_failed",
)


def _concordance(table: pb.ConcordanceTable, keys: CellKeys, n: int) -> None:
    if sum(getattr(table, f) for f in _PAIR_CELLS) < n:
        for f in _PAIR_CELLS:
            setattr(table, f, 0)
        table.withheld = True
        table.disclosure_note = f"withheld: fewer than {n} pairs"
        return
    cell_keys = (
        keys.pairs[(table.biomarker, table.index_method, table.comparator_method)]
        if table.kind == "inter_method"
        else keys.tissue_plasma[table.biomarker]
    )
    for i, f in enumerate(_PAIR_CELLS):
        setattr(table, f, cellkey.perturb(getattr(table, f), cell_keys[i]))


def sparse_bins_merged(counts: list[int], target: int, k: int) -> list[tuple[int, int, int]]:
    """Released turnaround bins as (first day, last day, day it is released at): adjacent days
    merged until each range holds k or more tests, never across the target (so "within target"
    stays what it was). A range of k or more is released at its median test's day; a side with
    fewer than k tests in all (often the slow tail: "more than target") is one range released at
    its first day (target + 1: "target + 1 or more"), so no sparse bin shows one test's day."""
    out: list[tuple[int, int, int]] = []
    target = min(target, len(counts) - 1)
    for low, high in ((0, target), (target + 1, len(counts) - 1)):
        if low > high:
            continue
        ranges: list[list[int]] = []  # [first, last, tests]
        start, held = low, 0
        for day in range(low, high + 1):
            held += counts[day]
            if held >= k:
                ranges.append([start, day, held])
                start, held = day + 1, 0
        if ranges:
            ranges[-1][1] = high  # what is left after the last full range joins it
            ranges[-1][2] += held
        else:
            out.append((low, high, low))
            continue
        for first, last, tests in ranges:
            running, middle = 0, first
            for day in range(first, last + 1):
                running += counts[day]
                if 2 * running >= tests:
                    middle = day
                    break
            out.append((first, last, middle))
    return out


def _turnaround(summary: pb.SiteSummary, keys: CellKeys, n: int) -> None:
    """Specimens with fewer than n tests are merged into specimen "any" (withheld if still
    small); sparse bins are merged (sparse_bins_merged); every released bin is perturbed;
    within_target and total are sums of perturbed bins."""
    kept = [h for h in summary.turnaround if h.total >= n]
    small = [h for h in summary.turnaround if h.total < n]
    histograms = [(h, [keys.turnaround[h.specimen]]) for h in kept]
    if small:
        merged = pb.TurnaroundHistogram(
            specimen="any",
            target_days=small[0].target_days,
            disclosure_note=f"merged: specimens with fewer than {n} tests",
        )
        total = sum(h.total for h in small)
        if total >= n:
            merged.counts.extend(
                sum(h.counts[i] for h in small) for i in range(len(small[0].counts))
            )
            histograms.append((merged, [keys.turnaround[h.specimen] for h in small]))
        else:
            merged.withheld = True
            merged.disclosure_note = f"withheld: fewer than {n} tests even merged"
    for h, members in histograms:
        counts = [0] * len(h.counts)
        for first, last, at in sparse_bins_merged(list(h.counts), h.target_days, n):
            true = sum(h.counts[first : last + 1])
            key = sum(_sum_keys(members, i) for i in range(first, last + 1))
            counts[at] = cellkey.perturb(true, key)
        del h.counts[:]
        h.counts.extend(counts)
        h.within_target = sum(counts[: h.target_days + 1])
        h.total = sum(counts)
    del summary.turnaround[:]
    summary.turnaround.extend(kept + ([merged] if small else []))


_TEST_CELLS = ("failed", "succeeded")  # node/metrics.py FAILED, SUCCEEDED


def _specimen_tests(
    summary: pb.SiteSummary, keys: CellKeys, n: int, linked: set[str], small_count: int = 0
) -> None:
    """Tests and failed tests per specimen, merged as turnaround is (the same tests): specimens
    with fewer than n tests are merged into specimen "any", withheld if still small. Both cells
    (failed, succeeded) are perturbed and tests is their sum. Where a specimen has a withheld or
    merged stratum (`linked`), a true 0 is a linked zero: failed tests minus a biomarker's
    released failed calls would otherwise prove whether the withheld stratum's tests failed
    (tests/test_privacy_redteam.py). With small-count suppression (`small_count`, its
    threshold), a specimen with a cell of 1 to threshold - 1 is withheld: the table has only two
    cells, so hiding one hides both, and the benchmark must not read a hidden count as 0."""
    kept = [t for t in summary.specimen_tests if t.tests >= n]
    small = [t for t in summary.specimen_tests if t.tests < n]
    released = [(t, [t.specimen]) for t in kept]
    merged = None
    if small:
        merged = pb.SpecimenTests(
            specimen="any", disclosure_note=f"merged: specimens with fewer than {n} tests"
        )
        if sum(t.tests for t in small) >= n:
            merged.tests = sum(t.tests for t in small)
            merged.failed = sum(t.failed for t in small)
            released.append((merged, [t.specimen for t in small]))
        else:
            merged.withheld = True
            merged.disclosure_note = f"withheld: fewer than {n} tests even merged"
    for table, members in released:
        true_cells = (table.failed, table.tests - table.failed)
        if any(0 < c < small_count for c in true_cells):
            specimen = table.specimen
            table.Clear()
            table.specimen = specimen
            table.withheld = True
            table.disclosure_note = (
                f"withheld: a cell under {small_count} (small-count suppression)"
            )
            continue
        cell_keys = [_sum_keys([keys.specimen_tests[m] for m in members], i) for i in range(2)]
        cells = [cellkey.perturb(c, k) for c, k in zip(true_cells, cell_keys, strict=True)]
        if linked.intersection(members):
            table_key = sum(cell_keys) + cellkey.name_key("linked_zero")
            for i, name in enumerate(_TEST_CELLS):
                if true_cells[i] == 0:
                    cells[i] = cellkey.perturb_linked_zero(table_key + cellkey.name_key(name))
            note = "zeros perturbed: linked to a withheld or merged stratum"
            table.disclosure_note = f"{table.disclosure_note}; {note}".lstrip("; ")
        table.failed = cells[0]
        table.tests = sum(cells)
    del summary.specimen_tests[:]
    summary.specimen_tests.extend(kept + ([merged] if merged is not None else []))


def _panel(panel: pb.PanelCoverage, keys: CellKeys, n: int) -> None:
    """Withheld under n patients; else every count perturbed, and the per-biomarker and
    all-required counts capped at the (perturbed) number of patients."""
    if panel.patients < n:
        panel.Clear()
        panel.withheld = True
        panel.disclosure_note = f"withheld: fewer than {n} patients"
        return
    panel.patients = cellkey.perturb(panel.patients, keys.panel_patients)
    for b in panel.biomarkers:
        b.with_valid_result = min(
            panel.patients,
            cellkey.perturb(b.with_valid_result, keys.panel_biomarkers.get(b.biomarker, 0)),
        )
    panel.with_all_required = min(
        [panel.patients, cellkey.perturb(panel.with_all_required, keys.panel_all)]
        + [b.with_valid_result for b in panel.biomarkers]
    )


# Methods that report a variant allele fraction: a released stratum of one of them always has a
# VAF histogram (zero or not), so that whether a histogram exists says nothing about withheld data.
VAF_METHODS = frozenset({"ngs_dna", "ngs_rna", "ngs_dna_rna", "ddpcr"})


def _vaf(
    out: pb.SiteSummary,
    method_plan: list[tuple[pb.StratumCounts, list[Identity]]],
    keys: CellKeys,
    n: int,
) -> None:
    """VAF histograms from the positives of released per-method strata only: one histogram per
    biomarker x method of the released strata (method "any" for strata merged over methods),
    summing their specimens' bins. A withheld stratum's positives are in no histogram (a
    positive of a withheld cytology stratum would otherwise light its bin in its method's
    histogram). A histogram is released when its method reports VAF or its strata hold a
    positive with a VAF; a withheld stratum of such a method gets a withheld histogram row."""
    edges = list(keys.vaf_edges)
    bins = max(len(edges) - 1, 0)
    released: dict[tuple[str, str], tuple[list[int], list[list[int]], set[str]]] = {}
    withheld: set[tuple[str, str]] = set()
    for stratum, members in method_plan:
        where = (stratum.biomarker, stratum.method)
        if stratum.withheld:
            withheld.add(where)
            continue
        counts, member_keys, methods = released.setdefault(where, ([0] * bins, [], set()))
        for member in members:
            methods.add(member[1])
            if member in keys.vaf_counts:
                for i, c in enumerate(keys.vaf_counts[member][:bins]):
                    counts[i] += c
                member_keys.append(keys.vaf[member])
    histograms = []
    for (biomarker, method), (counts, member_keys, methods) in released.items():
        if not (methods & VAF_METHODS or any(counts)):
            continue
        note = f"merged: methods with fewer than {n} tests" if method == "any" else ""
        perturbed = [cellkey.perturb(c, _sum_keys(member_keys, i)) for i, c in enumerate(counts)]
        histograms.append(
            pb.VafHistogram(
                biomarker=biomarker,
                method=method,
                edges=edges,
                counts=perturbed,
                disclosure_note=note,
            )
        )
    for biomarker, method in sorted(withheld - released.keys()):
        if method in VAF_METHODS or method == "any":
            histograms.append(
                pb.VafHistogram(
                    biomarker=biomarker,
                    method=method,
                    edges=edges,
                    withheld=True,
                    disclosure_note=f"withheld: its strata have fewer than {n} tests",
                )
            )
    del out.vaf[:]
    out.vaf.extend(sorted(histograms, key=lambda h: (h.biomarker, h.method)))
