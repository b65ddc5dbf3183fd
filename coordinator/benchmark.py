"""Benchmarks for one period: load the signed inputs from the database, call the method
(method.benchmark, versioned, pure), add the flag messages. The statistics, the flag rules and the
keys of the result are the method's: see method/benchmark.py and docs/method.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from coordinator import messages
from method import benchmark as method_benchmark
from method.inputs import EqaRoundInput, Inputs, periods_for_trends
from method.standard import Standard
from protos import wire
from protos.periods import parse as parse_period
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb

for_site = method_benchmark.for_site

__all__ = [
    "EqaRoundInput",
    "Inputs",
    "compute",
    "compute_from",
    "for_site",
    "inputs",
    "latest_summaries",
    "periods_for_trends",
]

EARLIER_EQA_ROUNDS = 2  # the persistent-poor-performance rule looks at 3 consecutive rounds


def latest_summaries(
    conn: sqlite3.Connection, period: str
) -> dict[str, tuple[int, pb.SiteSummary]]:
    """site id: (leaf index, summary) of the highest accepted sequence for the period, revoked sites included."""
    rows = conn.execute(
        """SELECT s.site_id, s.leaf_index, s.payload FROM summaries s
           WHERE s.period = ? AND s.sequence = (SELECT MAX(sequence) FROM summaries t
                                                WHERE t.site_id = s.site_id AND t.period = s.period)
           ORDER BY s.site_id""",
        (period,),
    )
    return {
        site: (leaf, wire.decode(payload.encode("utf-8"), pb.SiteSummary))
        for site, leaf, payload in rows
    }


def _window(period: str, standard: Standard | None) -> int:
    p = parse_period(period)
    quarters = standard.window_quarters if standard is not None else 4
    return max(4, method_benchmark.window_length(p, quarters))


def inputs(conn: sqlite3.Connection, period: str, standard: Standard | None = None) -> Inputs:
    p = parse_period(period)
    by_period = {
        q.label: latest_summaries(conn, q.label)
        for q in periods_for_trends(p, _window(period, standard))
    }
    revoked = {r[0] for r in conn.execute("SELECT site_id FROM sites WHERE status = 'revoked'")}
    closed = conn.execute(
        "SELECT announcement, truth, deadline FROM eqa_rounds WHERE truth IS NOT NULL AND deadline <= ?"
        " ORDER BY deadline, round_id",
        (p.end.isoformat(),),
    ).fetchall()
    current = sum(1 for *_, deadline in closed if deadline >= p.start.isoformat())
    rounds = []
    first = max(0, len(closed) - current - EARLIER_EQA_ROUNDS)
    for announcement, truth, _ in closed[first:] if current else []:
        round_ = wire.decode(wire.parse_envelope(announcement).payload, epb.EqaRound)
        responses = {}
        for leaf, site, payload in conn.execute(
            "SELECT leaf_index, site_id, payload FROM eqa_responses WHERE round_id = ? ORDER BY sequence",
            (round_.round_id,),
        ):
            responses[site] = (leaf, wire.decode(payload.encode("utf-8"), epb.EqaResponse))
        rounds.append(EqaRoundInput(round_, bytes(truth), responses))
    return Inputs(by_period, revoked, rounds)


def compute(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    return compute_from(inputs(conn, period, standard), period, standard, progress)


def compute_from(
    data: Inputs, period: str, standard: Standard, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The method's benchmark of the signed inputs, with the flag messages written."""
    if progress:
        progress(f"{len(data.by_period.get(parse_period(period).label, {}))} site summaries")
    result = messages.write(method_benchmark.compute(data, period, standard))
    if progress:
        progress(f"{len(result['flags'])} flags")
    return result
