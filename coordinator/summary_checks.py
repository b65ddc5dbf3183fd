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

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.errors import InvalidRequest
from coordinator.standards import Standard
from protos import wire
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import JsonObject

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
_CELL_SET = frozenset(CELLS)
MECHANISMS = ("geometric",)  # the benchmark widens intervals for these (coordinator/stats.py)


@dataclass(frozen=True)
class Vocabulary:
    """The names a summary may use, drawn from the testing standard in force."""

    biomarkers: frozenset[str]
    methods: frozenset[str]
    specimens: frozenset[str]
    histology_groups: frozenset[str]

    @functools.cached_property
    def sides(self) -> frozenset[str]:
        """What a concordance table may compare: methods, and specimens (tissue vs plasma)."""
        return self.methods | self.specimens

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


def check_summary(
    summary: pb.SiteSummary, vocabulary: Vocabulary | None, fields: JsonObject | None = None
) -> None:
    """InvalidRequest naming the first field whose value makes no sense; None if all do.

    `fields`: the JSON object the summary was decoded from (wire.decode_fields), read in place of
    the message: the same values (an absent key or null is the field's default), read several
    times faster than the message's attributes. Without it, the message's fields are read out
    first (wire.fields_of)."""
    _check(wire.fields_of(summary) if fields is None else fields, vocabulary)


def _check(summary: JsonObject, vocabulary: Vocabulary | None) -> None:
    sequence = summary.get("sequence") or 0
    if sequence > MAX_SEQUENCE:
        raise InvalidRequest(
            f"sequence {sequence} is beyond {MAX_SEQUENCE}; sequence numbers count summaries from 1"
        )
    strata = summary.get("strata") or ()
    turnaround = summary.get("turnaround") or ()
    concordance = summary.get("concordance") or ()
    vaf = summary.get("vaf") or ()
    panel = summary.get("panel") or {}
    specimen_tests = summary.get("specimen_tests") or ()
    _at_most(len(strata), MAX_STRATA, "strata")
    for what, items in (
        ("turnaround histograms", turnaround),
        ("concordance tables", concordance),
        ("VAF histograms", vaf),
        ("panel biomarkers", panel.get("biomarkers") or ()),
        ("tests per specimen", specimen_tests),
    ):
        _at_most(len(items), MAX_TABLES, what)
    _check_privacy((summary.get("policy") or {}).get("differential_privacy") or {})
    seen: set[tuple[str, str, str, str]] = set()
    if vocabulary is not None:
        biomarkers, methods = vocabulary.biomarkers, vocabulary.methods
        specimens, histologies = vocabulary.specimens, vocabulary.histology_groups
    for s in strata:  # the hot loop: messages are built only for a refusal
        get = s.get
        key = (
            get("biomarker") or "",
            get("method") or "",
            get("specimen") or "",
            get("histology_group") or "",
        )
        if vocabulary is not None and not (
            key[0] in biomarkers
            and key[1] in methods
            and key[2] in specimens
            and key[3] in histologies
        ):
            where = _stratum(s)
            _name(key[0], vocabulary.biomarkers, "biomarker", where)
            _name(key[1], vocabulary.methods, "method", where)
            _name(key[2], vocabulary.specimens, "specimen", where)
            _name(key[3], vocabulary.histology_groups, "histology group", where)
        if key in seen:
            raise InvalidRequest(f"{_stratum(s)} appears twice; each stratum is listed once")
        seen.add(key)
        tests = get("tests") or 0
        if tests > MAX_COUNT:
            _too_many(_stratum(s), "tests", tests)
        if (
            get("withheld")
            or get("suppressed_cells")
            or (get("positive") or 0)
            + (get("negative") or 0)
            + (get("failed") or 0)
            + (get("equivocal") or 0)
            != tests
        ):
            _check_cells(s)
    for h in turnaround:  # where a refusal is is said only once there is one
        if vocabulary is not None and (h.get("specimen") or "") not in specimens:
            _name(h.get("specimen") or "", specimens, "specimen", _turnaround(h))
        bins = h.get("counts") or ()
        if len(bins) > MAX_BINS:
            _at_most(len(bins), MAX_BINS, f"bins in the {_turnaround(h)}")
        if h.get("withheld"):
            continue
        total, binned, within = h.get("total") or 0, sum(bins), h.get("within_target") or 0
        if total > MAX_COUNT:
            _too_many(_turnaround(h), "total", total)
        if binned != total or within > total:
            raise InvalidRequest(
                f"{_turnaround(h)}: the bins add up to {binned}, total is {total} and "
                f"{within} are within target; the bins must add up to the total and "
                "within target cannot exceed it"
            )
    sides = vocabulary.sides if vocabulary is not None else frozenset()
    for t in concordance:
        get = t.get
        pairs = (
            (get("both_positive") or 0)
            + (get("index_positive_comparator_negative") or 0)
            + (get("index_negative_comparator_positive") or 0)
            + (get("both_negative") or 0)
            + (get("excluded_failed") or 0)
        )
        if pairs > MAX_COUNT:
            _too_many(_table(t), "pairs", pairs)
        if get("kind") not in ("inter_method", "tissue_plasma"):
            raise InvalidRequest(f"{_table(t)}: kind must be inter_method or tissue_plasma")
        biomarker = get("biomarker") or ""
        index, comparator = get("index_method") or "", get("comparator_method") or ""
        if vocabulary is not None and not (
            biomarker in biomarkers and index in sides and comparator in sides
        ):
            where = _table(t)
            _name(biomarker, biomarkers, "biomarker", where)
            _name(index, sides, "index method", where)
            _name(comparator, sides, "comparator method", where)
    _check_panel(panel, vocabulary)
    _check_specimen_tests(specimen_tests, vocabulary)
    for v in vaf:
        get = v.get
        biomarker, method = get("biomarker") or "", get("method") or ""
        if vocabulary is not None and not (biomarker in biomarkers and method in methods):
            _name(biomarker, biomarkers, "biomarker", _vaf(v))
            _name(method, methods, "method", _vaf(v))
        edges = get("edges") or ()
        if len(edges) > MAX_BINS:
            _at_most(len(edges), MAX_BINS, f"bin edges in the {_vaf(v)}")
        edges = list(map(float, edges))  # a float field's value may be written as an integer
        if not all(map(math.isfinite, edges)) or not all(map(operator.lt, edges, edges[1:])):
            raise InvalidRequest(f"{_vaf(v)}: bin edges must be finite and increasing")
        counts = get("counts") or ()
        results = sum(counts)
        if results > MAX_COUNT:
            _too_many(_vaf(v), "results", results)
        if get("withheld"):  # withheld for disclosure control: the edges, no counts
            if counts:
                raise InvalidRequest(f"{_vaf(v)}: a withheld histogram carries no counts")
        elif edges and len(counts) != len(edges) - 1:
            raise InvalidRequest(
                f"{_vaf(v)}: {len(edges)} edges need {len(edges) - 1} counts, not {len(counts)}"
            )


# Where a refusal is: the names of the table, read from its JSON object (absent or null: "").
def _text(table: JsonObject, name: str) -> str:
    return str(table.get(name) or "")[:40]


def _turnaround(h: JsonObject) -> str:
    return f"turnaround histogram {_text(h, 'specimen')}"


def _table(t: JsonObject) -> str:
    return f"concordance table {_text(t, 'kind')} {_text(t, 'biomarker')}"


def _vaf(v: JsonObject) -> str:
    return f"VAF histogram {_text(v, 'biomarker')}/{_text(v, 'method')}"


def _stratum(s: JsonObject) -> str:
    return f"stratum {_text(s, 'biomarker')}/{_text(s, 'method')}/{_text(s, 'specimen')}"


def _check_cells(s: JsonObject) -> None:
    """A stratum's cells against its tests, withholding and suppression (the message saying where
    is written only for a refusal)."""
    get = s.get
    suppressed = get("suppressed_cells") or []
    if len(set(suppressed)) != len(suppressed) or not _CELL_SET.issuperset(suppressed):
        unknown = [c for c in suppressed if c not in CELLS]
        raise InvalidRequest(
            f"{_stratum(s)}: suppressed_cells may name each of {', '.join(CELLS)} once, not "
            f"{unknown or list(suppressed)}"
        )
    positive, negative = get("positive") or 0, get("negative") or 0
    failed, equivocal = get("failed") or 0, get("equivocal") or 0
    tests = get("tests") or 0
    if get("withheld"):
        if positive or negative or failed or equivocal:
            raise InvalidRequest(f"{_stratum(s)}: a withheld stratum releases no cells")
        return
    if any(get(c) for c in suppressed):
        raise InvalidRequest(f"{_stratum(s)}: a suppressed cell is released as 0")
    released = positive + negative + failed + equivocal
    if released > tests or (not suppressed and released != tests):
        raise InvalidRequest(
            f"{_stratum(s)}: cells do not add up to tests ({released} released, tests {tests}); "
            "without suppression they must add up to tests, with it they cannot exceed it"
        )


def _check_panel(panel: JsonObject, vocabulary: Vocabulary | None) -> None:
    patients, complete = panel.get("patients") or 0, panel.get("with_all_required") or 0
    biomarkers = panel.get("biomarkers") or ()
    if panel.get("withheld"):
        if patients or complete or len(biomarkers):
            raise InvalidRequest("panel coverage: a withheld panel releases no counts")
        return
    if patients > MAX_COUNT:
        _too_many("panel coverage", "patients", patients)
    if complete > patients:
        raise InvalidRequest(
            f"panel coverage: {complete} patients with every required biomarker "
            f"of {patients} patients; it cannot be more"
        )
    names: set[str] = set()
    for b in biomarkers:
        name, valid = b.get("biomarker") or "", b.get("with_valid_result") or 0
        if vocabulary is not None:
            _name(name, vocabulary.biomarkers, "biomarker", "panel coverage")
        if name in names:
            raise InvalidRequest(f"panel coverage: biomarker {name} appears twice")
        names.add(name)
        if valid > patients:
            raise InvalidRequest(
                f"panel coverage: {valid} patients with a valid {name} "
                f"result of {patients} patients; it cannot be more"
            )


def _check_specimen_tests(tables: Sequence[JsonObject], vocabulary: Vocabulary | None) -> None:
    """Tests and failed tests per specimen: the failure rate per test is read from them."""
    specimens: set[str] = set()
    for t in tables:
        specimen, tests, failed = t.get("specimen") or "", t.get("tests") or 0, t.get("failed") or 0
        where = f"tests per specimen {specimen[:40]}"
        if vocabulary is not None:
            _name(specimen, vocabulary.specimens, "specimen", where)
        if specimen in specimens:
            raise InvalidRequest(f"{where}: the specimen appears twice; each is listed once")
        specimens.add(specimen)
        if t.get("withheld"):
            if tests or failed:
                raise InvalidRequest(f"{where}: a withheld count releases no tests")
            continue
        if tests > MAX_COUNT:
            _too_many(where, "tests", tests)
        if failed > tests:
            raise InvalidRequest(
                f"{where}: {failed} failed tests of {tests} tests; it cannot be more"
            )


def _check_privacy(dp: JsonObject) -> None:
    where = "policy.differential_privacy"
    epsilon, scale = float(dp.get("epsilon") or 0), float(dp.get("noise_scale") or 0)
    if not all(math.isfinite(x) for x in (epsilon, scale)):
        raise InvalidRequest(f"{where}: epsilon and noise_scale must be finite numbers")
    if not dp.get("enabled"):
        if epsilon or scale:
            raise InvalidRequest(f"{where}: epsilon and noise_scale are 0 when DP is off")
        return
    mechanism = dp.get("mechanism") or ""
    if mechanism not in MECHANISMS:
        raise InvalidRequest(
            f"{where}: mechanism {mechanism[:40]!r} is not one the coordinator knows "
            f"({', '.join(MECHANISMS)})"
        )
    if not 0 < epsilon <= MAX_EPSILON:
        raise InvalidRequest(f"{where}: epsilon must lie in (0, {MAX_EPSILON:g}]")
    if not 0 < scale <= MAX_NOISE_SCALE:
        raise InvalidRequest(
            f"{where}: noise_scale {scale:g} must lie in (0, {MAX_NOISE_SCALE:g}]; "
            "a larger scale would hide the site's results entirely"
        )
