"""Benchmarks for one period: load the signed inputs from the database, call the method
(method.benchmark, versioned, pure), add the flag messages. The statistics, the flag rules and the
keys of the result are the method's: see method/benchmark.py and docs/method.md.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from coordinator import decoded_cache, flag_store, kept_benchmark, messages, store
from method import METHOD_VERSION
from method.inputs import EqaRoundInput, Inputs, periods_for_trends, window_length
from method.report_bytes import benchmark_bytes
from method.standard import Standard
from protos import wire
from protos.periods import parse as parse_period
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb

__all__ = [
    "EqaRoundInput",
    "Decoded",
    "Inputs",
    "compute",
    "compute_from",
    "ComputedReport",
    "compute_report",
    "fingerprint",
    "for_site",
    "inputs",
    "latest_leaves",
    "latest_summaries",
    "periods_for_trends",
    "stored_fingerprint",
    "stored_leaves",
]


def for_site(*args: Any, **kwargs: Any) -> Any:
    """method.benchmark.for_site (the method, with numpy and scipy, is loaded when first used:
    commands that only read what was kept start in a fraction of a second)."""
    from method.benchmark import for_site as method_for_site

    return method_for_site(*args, **kwargs)


EARLIER_EQA_ROUNDS = 2  # the persistent-poor-performance rule looks at 3 consecutive rounds


Decoded = dict[int, pb.SiteSummary]
"""Summaries already decoded in this run, by leaf index. A leaf's payload never changes, so a
summary is decoded once however many periods' windows read it; one database per dict."""


def latest_leaves(conn: sqlite3.Connection, period: str) -> list[tuple[str, int]]:
    """(site id, leaf index) of each site's highest accepted sequence for the period, by site,
    revoked sites included. Reads no payload."""
    return conn.execute(
        """SELECT s.site_id, s.leaf_index FROM summaries s
           WHERE s.period = ? AND s.sequence = (SELECT MAX(sequence) FROM summaries t
                                                WHERE t.site_id = s.site_id AND t.period = s.period)
           ORDER BY s.site_id""",
        (period,),
    ).fetchall()


def latest_summaries(
    conn: sqlite3.Connection,
    period: str,
    decoded: Decoded | None = None,
    fresh: Decoded | None = None,
) -> dict[str, tuple[int, pb.SiteSummary]]:
    """site id: (leaf index, summary) of the highest accepted sequence for the period, revoked sites
    included. A summary already in `decoded` (this run's, see Decoded) is not read again; one kept
    decoded in the database (coordinator/decoded_cache.py) is parsed from its binary; any other is
    decoded from its signed payload and also added to `fresh` (to keep for later runs)."""
    leaves = latest_leaves(conn, period)
    known = {} if decoded is None else decoded
    known.update(decoded_cache.find(conn, (leaf for _site, leaf in leaves if leaf not in known)))
    missing = [leaf for _site, leaf in leaves if leaf not in known]
    for leaf, payload in store.rows_by_leaf(conn, "summaries", "payload", missing):
        known[leaf] = wire.decode(payload.encode("utf-8"), pb.SiteSummary)
        if fresh is not None:
            fresh[leaf] = known[leaf]
    return {site: (leaf, known[leaf]) for site, leaf in leaves}


def _window(period: str, standard: Standard | None) -> int:
    p = parse_period(period)
    quarters = standard.window_quarters if standard is not None else 4
    return max(4, window_length(p, quarters))


def _window_labels(period: str, standard: Standard | None) -> list[str]:
    return [q.label for q in periods_for_trends(parse_period(period), _window(period, standard))]


def _revoked(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT site_id FROM sites WHERE status = 'revoked'")}


def _eqa_rounds(conn: sqlite3.Connection, period: str) -> list[tuple[epb.EqaRound, bytes]]:
    """The closed EQA rounds a period's benchmark reads, with their truth files: those whose
    deadline falls in the period and, if any does, up to EARLIER_EQA_ROUNDS before them."""
    p = parse_period(period)
    closed = conn.execute(
        "SELECT announcement, truth, deadline FROM eqa_rounds WHERE truth IS NOT NULL AND deadline <= ?"
        " ORDER BY deadline, round_id",
        (p.end.isoformat(),),
    ).fetchall()
    current = sum(1 for *_, deadline in closed if deadline >= p.start.isoformat())
    first = max(0, len(closed) - current - EARLIER_EQA_ROUNDS)
    return [
        (wire.decode(wire.parse_envelope(announcement).payload, epb.EqaRound), bytes(truth))
        for announcement, truth, _ in (closed[first:] if current else [])
    ]


def _response_rows(conn: sqlite3.Connection, round_id: str) -> list[tuple[int, str, str]]:
    """(leaf index, site, payload) of a round's responses, oldest first (the latest counts)."""
    return conn.execute(
        "SELECT leaf_index, site_id, payload FROM eqa_responses WHERE round_id = ? ORDER BY sequence",
        (round_id,),
    ).fetchall()


def inputs(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard | None = None,
    decoded: Decoded | None = None,
    fresh: Decoded | None = None,
) -> Inputs:
    """What a benchmark of the period reads (see latest_summaries for `decoded` and `fresh`)."""
    by_period = {
        label: latest_summaries(conn, label, decoded, fresh)
        for label in _window_labels(period, standard)
    }
    rounds = []
    for round_, truth in _eqa_rounds(conn, period):
        responses = {}
        for leaf, site, payload in _response_rows(conn, round_.round_id):
            responses[site] = (leaf, wire.decode(payload.encode("utf-8"), epb.EqaResponse))
        rounds.append(EqaRoundInput(round_, truth, responses))
    return Inputs(by_period, _revoked(conn), rounds)


def _digest(
    period: str,
    standard: Standard,
    leaves: dict[str, list[tuple[str, int]]],
    revoked: set[str],
    rounds: list[tuple[epb.EqaRound, bytes, dict[str, int]]],
) -> str:
    material = {
        "period": parse_period(period).label,
        "method_version": METHOD_VERSION,
        "standard_sha256": standard.sha256,
        "summaries": {
            label: [[site, leaf] for site, leaf in rows] for label, rows in leaves.items()
        },
        "revoked": sorted(revoked),
        "eqa_rounds": [
            {
                "round_sha256": hashlib.sha256(
                    round_.SerializeToString(deterministic=True)
                ).hexdigest(),
                "truth_sha256": hashlib.sha256(truth).hexdigest(),
                "responses": sorted(responses.items()),
            }
            for round_, truth, responses in rounds
        ],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def fingerprint(data: Inputs, period: str, standard: Standard) -> str:
    """What a benchmark of `data` is a function of (sha256): the period, the method version, the
    standard, and the exact leaves that went in (summaries of the whole window, EQA rounds and
    responses) with the revoked sites. Two computations with one fingerprint give one result."""
    return _digest(
        period,
        standard,
        {
            label: [(site, leaf) for site, (leaf, _s) in sorted(rows.items())]
            for label, rows in data.by_period.items()
        },
        data.revoked,
        [
            (r.round, r.truth, {site: leaf for site, (leaf, _r) in r.responses.items()})
            for r in data.eqa_rounds
        ],
    )


def stored_fingerprint(conn: sqlite3.Connection, period: str, standard: Standard) -> str:
    """The fingerprint of the benchmark `inputs(conn, period, standard)` would read now, found
    from the stored rows without decoding a summary."""
    rounds = []
    for round_, truth in _eqa_rounds(conn, period):
        responses = {site: leaf for leaf, site, _payload in _response_rows(conn, round_.round_id)}
        rounds.append((round_, truth, responses))
    leaves = {label: latest_leaves(conn, label) for label in _window_labels(period, standard)}
    return _digest(period, standard, leaves, _revoked(conn), rounds)


@dataclass(frozen=True)
class StoredLeaves:
    """What a benchmark of the period reads, found from the stored rows without decoding a
    summary: the fingerprint of its inputs (as stored_fingerprint), every leaf index it reads
    (the window's latest summaries and the EQA responses), and its EQA rounds with their truth."""

    fingerprint: str
    leaves: list[int]
    eqa_rounds: list[tuple[epb.EqaRound, bytes]]


def stored_leaves(conn: sqlite3.Connection, period: str, standard: Standard) -> StoredLeaves:
    """StoredLeaves of the benchmark `inputs(conn, period, standard)` would read now."""
    rounds = []
    for round_, truth in _eqa_rounds(conn, period):
        responses = {site: leaf for leaf, site, _payload in _response_rows(conn, round_.round_id)}
        rounds.append((round_, truth, responses))
    by_label = {label: latest_leaves(conn, label) for label in _window_labels(period, standard)}
    leaves = [leaf for rows in by_label.values() for _site, leaf in rows]
    leaves += [leaf for _r, _t, responses in rounds for leaf in responses.values()]
    return StoredLeaves(
        _digest(period, standard, by_label, _revoked(conn), rounds),
        leaves,
        [(round_, truth) for round_, truth, _ in rounds],
    )


def compute(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None = None,
    decoded: Decoded | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """The benchmark of the period's stored inputs. `decoded`: this run's decoded summaries (see
    Decoded). With `keep`, what this run derived is kept in the database for later runs: the
    summaries it decoded (coordinator/decoded_cache.py) and the result's flags under the inputs'
    fingerprint (coordinator/flag_store.py, for later reports' flag history), and for the newest
    period the whole result as its audit bundle writes it (coordinator/kept_benchmark.py). A run
    that writes the report's benchmark.json too calls `compute_report` instead: one encoding."""
    return _computed(conn, period, standard, progress, decoded, keep, encode=False)[0]


def period_flags(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None = None,
    decoded: Decoded | None = None,
) -> flag_store.SiteFlags:
    """The period's flags by site from compute(..., keep=True), with what it keeps. The flags'
    messages (prose, which a flag history does not show) are written only when the whole result
    is kept for an audit bundle: at 3,000 labs they cost about 0.8 s."""
    result = _computed(conn, period, standard, progress, decoded, True, encode=False, prose=False)
    return flag_store.by_site(result[0])


class ComputedReport(NamedTuple):
    """A benchmark as the `benchmark` command computes it (compute_report)."""

    result: dict[str, Any]
    report: bytes  # benchmark.json: method.report_bytes.benchmark_bytes(result)
    inputs_sha256: str  # the fingerprint of its inputs (as audit_bundle.build's `report` is asked)


def compute_report(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None = None,
    decoded: Decoded | None = None,
) -> ComputedReport:
    """compute(..., keep=True), with benchmark.json's bytes of the result encoded once: the bytes
    the report writes (report.write_benchmark) are the bytes kept for the audit bundle."""
    result, report, inputs_sha256 = _computed(
        conn, period, standard, progress, decoded, True, encode=True
    )
    assert report is not None and inputs_sha256 is not None
    return ComputedReport(result, report, inputs_sha256)


def _computed(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None,
    decoded: Decoded | None,
    keep: bool,
    encode: bool,
    prose: bool = True,
) -> tuple[dict[str, Any], bytes | None, str | None]:
    """(result, its benchmark_bytes if asked for or kept, the inputs' fingerprint if kept): see
    compute. Without `prose` the flags' messages are left out unless the result is encoded."""
    fresh: Decoded = {}
    data = inputs(conn, period, standard, decoded, fresh)
    label = parse_period(period).label
    kept = keep and kept_benchmark.wanted(conn, label)
    result = compute_from(data, period, standard, progress, prose or encode or kept)
    report = benchmark_bytes(result) if encode or kept else None
    if not keep:
        return result, report, None
    inputs_sha256 = fingerprint(data, period, standard)
    for problem in (
        decoded_cache.keep(conn, fresh),
        flag_store.keep(conn, label, inputs_sha256, flag_store.by_site(result)),
        kept_benchmark.keep(conn, label, inputs_sha256, report)
        if kept and report is not None
        else None,
    ):
        if problem and progress:
            progress(problem)
    return result, report, inputs_sha256


def compute_from(
    data: Inputs,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None = None,
    prose: bool = True,
) -> dict[str, Any]:
    """The method's benchmark of the signed inputs, with the flag messages written (without
    `prose`, not: for the flags alone)."""
    if progress:
        progress(f"{len(data.by_period.get(parse_period(period).label, {}))} site summaries")
    from method import benchmark as method_benchmark

    result = method_benchmark.compute(data, period, standard)
    if prose:
        messages.write(result)
    if progress:
        progress(f"{len(result['flags'])} flags")
    return result
