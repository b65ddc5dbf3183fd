"""A VAF histogram the node withholds for disclosure control (edges, no counts) passes intake's
field checks; counts with a withheld flag, or the wrong number of counts, do not."""

from __future__ import annotations

import pytest

from coordinator.errors import InvalidRequest
from coordinator.summary_checks import check_summary
from protos.rarenet.v1 import summary_pb2 as pb

EDGES = [0.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0]


def summary_with(histogram: pb.VafHistogram) -> pb.SiteSummary:
    return pb.SiteSummary(site_id="lab-a", period="2026Q3", sequence=1, vaf=[histogram])


def test_a_withheld_histogram_without_counts_passes() -> None:
    withheld = pb.VafHistogram(biomarker="EGFR", method="any", edges=EDGES, withheld=True)
    check_summary(summary_with(withheld), None)


def test_counts_must_match_the_edges_unless_withheld() -> None:
    with pytest.raises(InvalidRequest, match="8 edges need 7 counts, not 0"):
        check_summary(summary_with(pb.VafHistogram(biomarker="EGFR", edges=EDGES)), None)
    carrying = pb.VafHistogram(biomarker="EGFR", edges=EDGES, counts=[1] * 7, withheld=True)
    with pytest.raises(InvalidRequest, match="a withheld histogram carries no counts"):
        check_summary(summary_with(carrying), None)
