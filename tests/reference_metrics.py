"""The row-by-row metrics engine (node/metrics.py until 2026-11), kept as the reference that the
pattern engine must equal exactly, counts and cell keys alike (tests/test_metrics_patterns.py).
It reads every row in primary-key order and adds each record's key as it goes."""

from __future__ import annotations

import datetime as dt
import sqlite3
from bisect import bisect_right
from collections import defaultdict
from itertools import combinations
from zlib import crc32

from node.cellkey import NAMED_TABLES, CellKeys, name_key, patient_part, record_key
from node.metrics import (
    _ALL_KEY,
    _SIDE,
    BIT,
    CELL,
    FAILED,
    SUCCEEDED,
    TAT_BINS,
    VALID,
    _call,
    _pair_cell,
    _part,
    _side_call,
    _stratum,
    _table,
)
from node.standard import NodeStandard
from node.vocabulary import BIOMARKERS, METHODS
from node.workdays import WorkingDays
from protos.periods import Period
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS


def compute(
    conn: sqlite3.Connection,
    period: Period,
    standard: NodeStandard,
    workdays: WorkingDays,
    keys: CellKeys | None = None,
) -> pb.SiteSummary:
    """All metrics of the period, before disclosure control (site, sequence and policy not yet set).
    `keys`, when given, receives the cell key of every count."""
    keys = keys if keys is not None else CellKeys()
    strata_keys = keys.strata
    pair_keys = keys.pairs
    tat_keys = keys.turnaround
    vaf_keys = keys.vaf
    vaf_counts = keys.vaf_counts
    patient_parts: dict[str, int] = {}
    part = 0  # the secret part of the current patient's record keys
    # Under cellkey.NAMED_TABLES (periods first released before COUNTED_UNITS) the table's method
    # or "all" entered the record key; under COUNTED_UNITS a result and its call share it.
    named = keys.key_scheme == NAMED_TABLES
    method_keys = {m: name_key(m) if named else 0 for m in METHODS}
    all_key = _ALL_KEY if named else 0
    pair_key = 0 if named else name_key("inter_method")  # a pair: a unit of its own
    biomarker_keys = {b: name_key(b) for b in BIOMARKERS}
    record = 0  # the record key of the current test and biomarker (a result of one method)
    call = 0  # the record key of its per-test call (method "all"): a record of its own
    test_record = 0  # the record key of the current test
    per_method: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_test: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    pairs: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    tat: dict[str, list[int]] = defaultdict(lambda: [0] * TAT_BINS)
    tests: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # specimen: [failed, succeeded]
    tests_keys = keys.specimen_tests
    vaf_edges = keys.vaf_edges = standard.vaf_edges
    vaf: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(vaf_edges) - 1))
    sides: dict[str, int] = defaultdict(int)  # patient: 6 bits per biomarker (tissue/plasma calls)
    valid: dict[str, int] = defaultdict(int)  # patient: 1 bit per biomarker with a valid result
    non_squamous: set[str] = set()
    non_squamous_histologies = set(standard.non_squamous)
    rank = standard.rank

    # specimen: [earliest received, latest reported, any valid result] of the current test
    test_span: dict[str, list] = {}
    group: list[
        tuple[str, str, str]
    ] = []  # (method, result, specimen) of the current test and biomarker
    current_test: str | None = None
    current_biomarker = ""  # of the current group; set before the group has a row

    def close_group() -> None:
        by_specimen: dict[str, list[str]] = defaultdict(list)
        for _, result, specimen in group:
            by_specimen[specimen].append(result)
        for specimen, results in by_specimen.items():
            cell = CELL[_call(results)]
            per_test[(current_biomarker, specimen)][cell] += 1
            strata_keys[(current_biomarker, ALL_METHODS, specimen)][cell] += call
        if len(group) > 1:
            for (m1, r1, _), (m2, r2, _) in combinations(group, 2):
                if m1 == m2:
                    continue
                if rank(current_biomarker, m1) <= rank(current_biomarker, m2):
                    key, cell = (current_biomarker, m2, m1), _pair_cell(r2, r1)
                else:
                    key, cell = (current_biomarker, m1, m2), _pair_cell(r1, r2)
                pairs[key][cell] += 1
                pair_keys[key][cell] += record + pair_key

    def close_test() -> None:
        for specimen, (received, reported, valid_result) in test_span.items():
            days = workdays.between(
                dt.date.fromisoformat(received), dt.date.fromisoformat(reported)
            )
            tat[specimen][min(days, TAT_BINS - 1)] += 1
            tat_keys[specimen][min(days, TAT_BINS - 1)] += test_record
            cell = SUCCEEDED if valid_result else FAILED
            tests[specimen][cell] += 1
            tests_keys[specimen][cell] += test_record

    rows = conn.execute(
        """SELECT test_id, biomarker, method, patient_key, received_date, reported_date, specimen, histology,
                  result, vaf
           FROM results
           WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL
           ORDER BY test_id, biomarker, method""",
        (period.start.isoformat(), period.end.isoformat()),
    )
    for (
        test_id,
        biomarker,
        method,
        patient,
        received,
        reported,
        specimen,
        histology,
        result,
        vaf_value,
    ) in rows:
        if test_id != current_test or biomarker != current_biomarker:
            if len(group) == 1:  # the common case: one method for this test and biomarker
                cell = CELL[group[0][1]]
                per_test[(current_biomarker, group[0][2])][cell] += 1
                strata_keys[(current_biomarker, ALL_METHODS, group[0][2])][cell] += call
            elif group:
                close_group()
            if test_id != current_test:
                if current_test is not None:
                    close_test()
                current_test, test_span = test_id, {}
                if patient not in patient_parts:
                    patient_parts[patient] = patient_part(patient)
                part = patient_parts[patient]
                test_record = part + crc32(test_id.encode())  # cellkey.record_key(part, test_id)
            current_biomarker, group = biomarker, []
            record = test_record + biomarker_keys[biomarker]  # ... + biomarker
            call = record + all_key  # ... (+ "all" under NAMED_TABLES): the per-test call
        group.append((method, result, specimen))
        cell = CELL[result]
        stratum = (biomarker, method, specimen)
        per_method[stratum][cell] += 1
        strata_keys[stratum][cell] += record + method_keys[method]  # ... (+ method): a result
        span = test_span.get(specimen)
        if span is None:
            test_span[specimen] = [received, reported, result in VALID]
        else:
            if received < span[0]:
                span[0] = received
            if reported > span[1]:
                span[1] = reported
            if result in VALID:
                span[2] = True
        if histology in non_squamous_histologies:
            non_squamous.add(patient)
        bit = BIT[biomarker]
        if result == "positive" or result == "negative":
            valid[patient] |= 1 << bit
        side = _SIDE.get(specimen)
        if side is not None:
            offset = 6 * bit + side
            sides[patient] |= 1 << (offset + 2) | (
                1 << offset
                if result == "positive"
                else 1 << (offset + 1)
                if result == "negative"
                else 0
            )
        if vaf_value is not None and result == "positive":
            i = bisect_right(vaf_edges, vaf_value) - 1
            if 0 <= i < len(vaf_edges) - 1:
                vaf[(biomarker, method)][i] += 1
                # Also per specimen, beside the keys: disclosure builds the released histograms
                # from the records of released strata only (red-team finding 6).
                vaf_counts[stratum][i] += 1
                vaf_keys[stratum][i] += record
    if current_test is not None:
        close_group()
        close_test()

    return pb.SiteSummary(
        period=period.label,
        standard_version=standard.version,
        strata=[_stratum(b, m, s, c) for (b, m, s), c in sorted(per_method.items())]
        + [_stratum(b, ALL_METHODS, s, c) for (b, s), c in sorted(per_test.items())],
        turnaround=[
            pb.TurnaroundHistogram(
                specimen=s,
                counts=c,
                target_days=standard.target_days,
                within_target=sum(c[: standard.target_days + 1]),
                total=sum(c),
            )
            for s, c in sorted(tat.items())
        ],
        concordance=[_table("inter_method", k, c) for k, c in sorted(pairs.items())]
        + _tissue_plasma(sides, keys, patient_parts),
        panel=_panel(valid, non_squamous, standard, keys, patient_parts),
        vaf=[
            pb.VafHistogram(biomarker=b, method=m, edges=vaf_edges, counts=c)
            for (b, m), c in sorted(vaf.items())
        ],
        specimen_tests=[
            pb.SpecimenTests(specimen=s, tests=sum(c), failed=c[FAILED])
            for s, c in sorted(tests.items())
        ],
    )


def _tissue_plasma(
    sides: dict[str, int], keys: CellKeys, patient_parts: dict[str, int]
) -> list[pb.ConcordanceTable]:
    """Same patient, same biomarker, both a tissue and a plasma result: plasma is the index."""
    tables: dict[str, list[int]] = {}
    for patient, bits in sides.items():
        for biomarker, bit in BIT.items():
            six = bits >> (6 * bit) & 0b111111
            tissue, plasma = _side_call(six & 0b111), _side_call(six >> 3)
            if tissue and plasma:
                cell = _pair_cell(plasma, tissue)
                tables.setdefault(biomarker, [0, 0, 0, 0, 0])[cell] += 1
                keys.tissue_plasma[biomarker][cell] += record_key(
                    _part(patient_parts, patient), "tissue_plasma", biomarker
                )
    return [_table("tissue_plasma", (b, "plasma", "tissue"), c) for b, c in sorted(tables.items())]


def _panel(
    valid: dict[str, int],
    non_squamous: set[str],
    standard: NodeStandard,
    keys: CellKeys,
    patient_parts: dict[str, int],
) -> pb.PanelCoverage:
    """Among non-squamous patients: who has a valid result for each required biomarker, and for all."""
    required = [b for b in standard.required_panel if b in BIT]
    need = sum(1 << BIT[b] for b in required)
    masks = [valid.get(p, 0) for p in non_squamous]
    patient_keys = [record_key(_part(patient_parts, p), "panel") for p in non_squamous]
    keys.panel_patients = sum(patient_keys)
    keys.panel_all = sum(k for k, m in zip(patient_keys, masks, strict=True) if m & need == need)
    for b in standard.required_panel:
        keys.panel_biomarkers[b] = sum(
            k for k, m in zip(patient_keys, masks, strict=True) if b in BIT and m >> BIT[b] & 1
        )
    return pb.PanelCoverage(
        patients=len(masks),
        biomarkers=[
            pb.BiomarkerCoverage(
                biomarker=b, with_valid_result=sum(1 for m in masks if m >> BIT[b] & 1)
            )
            for b in standard.required_panel
        ],
        with_all_required=sum(1 for m in masks if m & need == need),
    )
