"""What a site summary's fields mean, checked before it is accepted: a well-signed summary from an
enrolled site can still be hostile or broken, and one site's summary must never hurt another
site's benchmark.

The wire contract checks types and ranges; these checks add meaning: cells add up to tests
(whatever is marked suppressed), panel counts lie within patients, names come from the standard's
vocabularies, sizes are bounded (strata, histogram bins, bytes), the sequence number fits the
ledger's 63-bit integers, and differential-privacy parameters are finite and bounded. Each refusal
says what is wrong and where, so the lab can fix its node or report a bug.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.errors import InvalidRequest
from coordinator.standards import Standard
from protos import wire
from protos.rarenet.v1 import summary_pb2 as pb

MAX_PAYLOAD_BYTES = 2 * 1024 * 1024  # a lab's quarterly summary is about 30 KB
MAX_STRATA = 5_000
MAX_TABLES = 1_000  # turnaround histograms, concordance tables, VAF histograms, panel biomarkers
MAX_BINS = 100  # turnaround histogram bins (the node sends 31), VAF bin edges (8)
MAX_SEQUENCE = 2**63 - 1  # SQLite integers are signed 64-bit
# More results than any lab reports in one stratum, histogram or table in a period (the largest
# report some tens of thousands of NSCLC tests a year). The benchmark's exact binomial limits cost
# memory in proportion to n, so a count of 2^30 would stall every site's benchmark.
MAX_COUNT = 100_000
MAX_EPSILON = 20.0
# The node's scale is its sensitivity bound over epsilon (node/privacy.py): 4 x the most results of
# one patient (about 10-20) over an epsilon of 0.1 or more stays well under this.
MAX_NOISE_SCALE = 1_000.0
CELLS = ("positive", "negative", "failed", "equivocal")
MECHANISMS = ("geometric",)  # the benchmark widens intervals for these (coordinator/stats.py)


@dataclass(frozen=True)
class Vocabulary:
    """The names a summary may use, drawn from the testing standard in force."""

    biomarkers: frozenset[str]
    methods: frozenset[str]
    specimens: frozenset[str]
    histology_groups: frozenset[str]

    @classmethod
    def of(cls, standard: Standard) -> Vocabulary:
        data = standard.data
        ranked = {k: v for k, v in data["reference_methods"].items() if k != "source"}
        biomarkers = set(data["positivity"]) | set(data["panel"]["required"])
        biomarkers |= {k for k in ranked if k != "default"}
        methods = {m for order in ranked.values() for m in order} | {wire.ALL_METHODS, wire.MERGED}
        specimens = {k for k in data["failure_rate"] if k != "source"} | {wire.MERGED}
        histologies = set(data["panel"].get("histologies", ())) | {"squamous"}
        return cls(
            frozenset(biomarkers),
            frozenset(methods),
            frozenset(specimens),
            frozenset(histologies | {"", "all", wire.MERGED}),
        )


def _name(value: str, allowed: frozenset[str], what: str, where: str) -> None:
    if value not in allowed:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise InvalidRequest(
            f"{where}: {what} {shown!r} is not in the standard's vocabulary "
            f"({', '.join(sorted(a for a in allowed if a))}); use the standard's names"
        )


def _too_many(where: str, what: str, count: int) -> None:
    raise InvalidRequest(
        f"{where}: {count:,} {what} is more than a lab reports in a period ({MAX_COUNT:,} at "
        "most); check the node's data"
    )


def _at_most(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise InvalidRequest(f"the summary has {count} {what}, more than the {limit} allowed")


def check_summary(summary: pb.SiteSummary, vocabulary: Vocabulary | None) -> None:
    """InvalidRequest naming the first field whose value makes no sense; None if all do."""
    if summary.sequence > MAX_SEQUENCE:
        raise InvalidRequest(
            f"sequence {summary.sequence} is beyond {MAX_SEQUENCE}; sequence numbers count "
            "summaries from 1"
        )
    _at_most(len(summary.strata), MAX_STRATA, "strata")
    for what, items in (
        ("turnaround histograms", summary.turnaround),
        ("concordance tables", summary.concordance),
        ("VAF histograms", summary.vaf),
        ("panel biomarkers", summary.panel.biomarkers),
        ("tests per specimen", summary.specimen_tests),
    ):
        _at_most(len(items), MAX_TABLES, what)
    _check_privacy(summary.policy.differential_privacy)
    seen: set[tuple[str, str, str, str]] = set()
    if vocabulary is not None:
        biomarkers, methods = vocabulary.biomarkers, vocabulary.methods
        specimens, histologies = vocabulary.specimens, vocabulary.histology_groups
    for s in summary.strata:  # the hot loop: messages are built only for a refusal
        key = (s.biomarker, s.method, s.specimen, s.histology_group)
        if vocabulary is not None and not (
            key[0] in biomarkers
            and key[1] in methods
            and key[2] in specimens
            and key[3] in histologies
        ):
            where = _stratum(s)
            _name(s.biomarker, vocabulary.biomarkers, "biomarker", where)
            _name(s.method, vocabulary.methods, "method", where)
            _name(s.specimen, vocabulary.specimens, "specimen", where)
            _name(s.histology_group, vocabulary.histology_groups, "histology group", where)
        if key in seen:
            raise InvalidRequest(f"{_stratum(s)} appears twice; each stratum is listed once")
        seen.add(key)
        tests = s.tests
        if tests > MAX_COUNT:
            _too_many(_stratum(s), "tests", tests)
        if (
            s.withheld
            or s.suppressed_cells
            or s.positive + s.negative + s.failed + s.equivocal != tests
        ):
            _check_cells(s, _stratum(s))
    for h in summary.turnaround:  # where a refusal is is said only once there is one
        if vocabulary is not None and h.specimen not in specimens:
            _name(h.specimen, specimens, "specimen", _turnaround(h))
        if len(h.counts) > MAX_BINS:
            _at_most(len(h.counts), MAX_BINS, f"bins in the {_turnaround(h)}")
        if h.withheld:
            continue
        total, binned = h.total, sum(h.counts)
        if total > MAX_COUNT:
            _too_many(_turnaround(h), "total", total)
        if binned != total or h.within_target > total:
            raise InvalidRequest(
                f"{_turnaround(h)}: the bins add up to {binned}, total is {total} and "
                f"{h.within_target} are within target; the bins must add up to the total and "
                "within target cannot exceed it"
            )
    sides = vocabulary.methods | vocabulary.specimens if vocabulary is not None else frozenset()
    for t in summary.concordance:
        pairs = (
            t.both_positive
            + t.index_positive_comparator_negative
            + t.index_negative_comparator_positive
            + t.both_negative
            + t.excluded_failed
        )
        if pairs > MAX_COUNT:
            _too_many(_table(t), "pairs", pairs)
        if t.kind not in ("inter_method", "tissue_plasma"):
            raise InvalidRequest(f"{_table(t)}: kind must be inter_method or tissue_plasma")
        if vocabulary is not None and not (
            t.biomarker in biomarkers and t.index_method in sides and t.comparator_method in sides
        ):
            where = _table(t)
            _name(t.biomarker, biomarkers, "biomarker", where)
            _name(t.index_method, sides, "index method", where)
            _name(t.comparator_method, sides, "comparator method", where)
    _check_panel(summary.panel, vocabulary)
    _check_specimen_tests(summary.specimen_tests, vocabulary)
    for v in summary.vaf:
        if vocabulary is not None and not (v.biomarker in biomarkers and v.method in methods):
            _name(v.biomarker, biomarkers, "biomarker", _vaf(v))
            _name(v.method, methods, "method", _vaf(v))
        edges = list(v.edges)
        if len(edges) > MAX_BINS:
            _at_most(len(edges), MAX_BINS, f"bin edges in the {_vaf(v)}")
        if not all(map(math.isfinite, edges)) or not all(map(operator.lt, edges, edges[1:])):
            raise InvalidRequest(f"{_vaf(v)}: bin edges must be finite and increasing")
        counts = v.counts
        results = sum(counts)
        if results > MAX_COUNT:
            _too_many(_vaf(v), "results", results)
        if v.withheld:  # withheld for disclosure control: the edges, no counts
            if counts:
                raise InvalidRequest(f"{_vaf(v)}: a withheld histogram carries no counts")
        elif edges and len(counts) != len(edges) - 1:
            raise InvalidRequest(
                f"{_vaf(v)}: {len(edges)} edges need {len(edges) - 1} counts, not {len(counts)}"
            )


def _turnaround(h: pb.TurnaroundHistogram) -> str:
    return f"turnaround histogram {h.specimen[:40]}"


def _table(t: pb.ConcordanceTable) -> str:
    return f"concordance table {t.kind[:40]} {t.biomarker[:40]}"


def _vaf(v: pb.VafHistogram) -> str:
    return f"VAF histogram {v.biomarker[:40]}/{v.method[:40]}"


def _stratum(s: pb.StratumCounts) -> str:
    return f"stratum {s.biomarker[:40]}/{s.method[:40]}/{s.specimen[:40]}"


def _check_cells(s: pb.StratumCounts, where: str) -> None:
    suppressed = list(s.suppressed_cells)
    unknown = [c for c in suppressed if c not in CELLS]
    if unknown or len(set(suppressed)) != len(suppressed):
        raise InvalidRequest(
            f"{where}: suppressed_cells may name each of {', '.join(CELLS)} once, not {unknown or suppressed}"
        )
    cells = {c: getattr(s, c) for c in CELLS}
    if s.withheld:
        if any(cells.values()):
            raise InvalidRequest(f"{where}: a withheld stratum releases no cells")
        return
    if any(cells[c] for c in suppressed):
        raise InvalidRequest(f"{where}: a suppressed cell is released as 0")
    released = sum(cells.values())
    if released > s.tests or (not suppressed and released != s.tests):
        raise InvalidRequest(
            f"{where}: cells do not add up to tests ({released} released, tests {s.tests}); "
            "without suppression they must add up to tests, with it they cannot exceed it"
        )


def _check_panel(panel: pb.PanelCoverage, vocabulary: Vocabulary | None) -> None:
    if panel.withheld:
        if panel.patients or panel.with_all_required or len(panel.biomarkers):
            raise InvalidRequest("panel coverage: a withheld panel releases no counts")
        return
    if panel.patients > MAX_COUNT:
        _too_many("panel coverage", "patients", panel.patients)
    if panel.with_all_required > panel.patients:
        raise InvalidRequest(
            f"panel coverage: {panel.with_all_required} patients with every required biomarker "
            f"of {panel.patients} patients; it cannot be more"
        )
    names: set[str] = set()
    for b in panel.biomarkers:
        if vocabulary is not None:
            _name(b.biomarker, vocabulary.biomarkers, "biomarker", "panel coverage")
        if b.biomarker in names:
            raise InvalidRequest(f"panel coverage: biomarker {b.biomarker} appears twice")
        names.add(b.biomarker)
        if b.with_valid_result > panel.patients:
            raise InvalidRequest(
                f"panel coverage: {b.with_valid_result} patients with a valid {b.biomarker} "
                f"result of {panel.patients} patients; it cannot be more"
            )


def _check_specimen_tests(
    tables: Sequence[pb.SpecimenTests], vocabulary: Vocabulary | None
) -> None:
    """Tests and failed tests per specimen: the failure rate per test is read from them."""
    specimens: set[str] = set()
    for t in tables:
        where = f"tests per specimen {t.specimen[:40]}"
        if vocabulary is not None:
            _name(t.specimen, vocabulary.specimens, "specimen", where)
        if t.specimen in specimens:
            raise InvalidRequest(f"{where}: the specimen appears twice; each is listed once")
        specimens.add(t.specimen)
        if t.withheld:
            if t.tests or t.failed:
                raise InvalidRequest(f"{where}: a withheld count releases no tests")
            continue
        if t.tests > MAX_COUNT:
            _too_many(where, "tests", t.tests)
        if t.failed > t.tests:
            raise InvalidRequest(
                f"{where}: {t.failed} failed tests of {t.tests} tests; it cannot be more"
            )


def _check_privacy(dp: pb.DifferentialPrivacy) -> None:
    where = "policy.differential_privacy"
    if not all(math.isfinite(x) for x in (dp.epsilon, dp.noise_scale)):
        raise InvalidRequest(f"{where}: epsilon and noise_scale must be finite numbers")
    if not dp.enabled:
        if dp.epsilon or dp.noise_scale:
            raise InvalidRequest(f"{where}: epsilon and noise_scale are 0 when DP is off")
        return
    if dp.mechanism not in MECHANISMS:
        raise InvalidRequest(
            f"{where}: mechanism {dp.mechanism[:40]!r} is not one the coordinator knows "
            f"({', '.join(MECHANISMS)})"
        )
    if not 0 < dp.epsilon <= MAX_EPSILON:
        raise InvalidRequest(f"{where}: epsilon must lie in (0, {MAX_EPSILON:g}]")
    if not 0 < dp.noise_scale <= MAX_NOISE_SCALE:
        raise InvalidRequest(
            f"{where}: noise_scale {dp.noise_scale:g} must lie in (0, {MAX_NOISE_SCALE:g}]; "
            "a larger scale would hide the site's results entirely"
        )
