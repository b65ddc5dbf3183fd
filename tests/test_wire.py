"""The payload codec against protobuf's own json_format, the reference implementation."""
from __future__ import annotations

import pytest
from google.protobuf import json_format
from hypothesis import given, settings, strategies as st

from protos import wire
from protos.errors import PayloadError
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb

words = st.text(max_size=12)
counts = st.integers(0, 2**32 - 1)
strata = st.builds(pb.StratumCounts, biomarker=words, method=words, specimen=words, tests=counts, positive=counts,
                   withheld=st.booleans(), suppressed_cells=st.lists(words, max_size=3))
summaries = st.builds(
    pb.SiteSummary, site_id=words, period=words, schema_version=counts, sequence=st.integers(0, 2**64 - 1),
    strata=st.lists(strata, max_size=4),
    policy=st.builds(pb.DisclosurePolicy, min_denominator=counts, differential_privacy=st.builds(
        pb.DifferentialPrivacy, enabled=st.booleans(), epsilon=st.floats(allow_nan=False, allow_infinity=False))),
    vaf=st.lists(st.builds(pb.VafHistogram, biomarker=words, edges=st.lists(st.floats(0, 100), max_size=4),
                           counts=st.lists(counts, max_size=4)), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(summaries)
def test_encode_is_read_by_json_format_and_decode_reads_json_format(message) -> None:
    ours = wire.encode(message)
    reference = pb.SiteSummary()
    json_format.Parse(ours.decode("utf-8"), reference)
    assert reference == message
    theirs = json_format.MessageToJson(message, preserving_proto_field_name=True).encode()
    assert wire.decode(theirs, pb.SiteSummary) == message
    assert wire.decode(ours, pb.SiteSummary) == message


def test_bytes_and_64_bit_integers_follow_the_json_mapping() -> None:
    head = lpb.TreeHead(tree_size=2**63 + 5, root_hash=b"\x00\xff" * 16, timestamp_ms=-5)
    text = wire.encode(head)
    assert b'"tree_size": "9223372036854775813"' in text and b'"timestamp_ms": "-5"' in text
    assert wire.decode(text, lpb.TreeHead) == head


@pytest.mark.parametrize("payload,words", [
    (b'{"site_id": "a", "site_id": "b"}', "duplicate key"),
    (b'{"site_id": 5}', "must be a string"),
    (b'{"sequence": -1}', "out of range"),
    (b'{"sequence": "12x"}', "must be an integer"),
    (b'{"schema_version": true}', "must be an integer"),
    (b'{"strata": {}}', "must be a list"),
    (b'{"strata": [5]}', "must be an object"),
    (b'{"strata": [{"tests": 1.5}]}', "must be an integer"),
    (b'{"patient_id": "P1"}', "unknown field"),
    (b'{"strata": [{"variant": "x"}]}', "unknown field 'strata[0].variant'"),
])
def test_malformed_payloads_are_refused_with_the_reason(payload, words) -> None:
    with pytest.raises(PayloadError, match=words.replace("[", r"\[").replace("]", r"\]")):
        wire.decode(payload, pb.SiteSummary)
