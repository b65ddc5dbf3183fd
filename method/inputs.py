"""What a benchmark is computed from, all of it signed (typed inputs of method.benchmark)."""

from __future__ import annotations

from dataclasses import dataclass

from protos.periods import Period
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb


@dataclass
class EqaRoundInput:
    """A closed EQA round as signed: the round (with its revealed salt), the truth file, and each
    site's latest response {site: (leaf index, response)}."""

    round: epb.EqaRound
    truth: bytes
    responses: dict[str, tuple[int, epb.EqaResponse]]


@dataclass
class Inputs:
    """The latest summary of each site for the period and the periods before it
    ({period: {site: (leaf, summary)}}: the trend and pooling window), the revoked sites, and the
    closed EQA rounds whose deadline falls in the period or, for the persistent-poor-performance
    rule, up to two before it."""

    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]]
    revoked: set[str]
    eqa_rounds: list[EqaRoundInput]


def window_length(period: Period, quarters: int) -> int:
    """How many periods of period's kind make a window of `quarters` quarters."""
    return {"quarter": quarters, "month": 3 * quarters}.get(period.kind, max(1, quarters // 4))


def periods_for_trends(period: Period, count: int = 4) -> list[Period]:
    """The last `count` periods of the same kind, oldest first, ending with `period`."""
    periods = [period]
    while len(periods) < count:
        periods.insert(0, periods[0].previous())
    return periods
