"""Leaf data (protos/leaf.py): the two forms never collide, a header round-trips exactly, and no
byte string read as a leaf raises anything but ContractError."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protos import dsse, keys, leaf, wire
from protos.errors import ContractError
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import ledger_pb2 as lpb

KEY = keys.generate()
text = st.text(max_size=20)
sequence = st.integers(min_value=0, max_value=2**64 - 1)


@given(text, text, sequence, text, text, text)
def test_a_header_reads_back_as_itself_and_never_as_an_envelope(
    site: str, period: str, seq: int, kind: str, payload_sha: str, envelope_sha: str
) -> None:
    header = lpb.LeafHeader(
        site_id=site,
        period=period,
        sequence=seq,
        payload_type=kind,
        payload_sha256=payload_sha,
        envelope_sha256=envelope_sha,
    )
    data = leaf.header_data(header)
    read = leaf.classify(data)
    assert read.envelope is None and read.header == header


@given(text, text, sequence)
def test_an_envelope_leaf_reads_as_an_envelope_with_its_header(
    site: str, round_id: str, seq: int
) -> None:
    response = epb.EqaResponse(site_id=site, round_id=round_id, sequence=seq, schema_version=1)
    envelope = dsse.sign(wire.EQA_RESPONSE, wire.encode(response), KEY)
    data = wire.envelope_bytes(envelope)
    assert not data.startswith(leaf.LEAF_HEADER_PREFIX[:1])  # a serialised envelope never can
    read = leaf.classify(data)
    assert read.envelope == envelope
    assert read.header == leaf.header_for(envelope)
    assert read.header.period == "eqa:" + round_id and read.header.sequence == seq
    assert read.header.payload_sha256 == hashlib.sha256(envelope.payload).hexdigest()


@given(st.binary(max_size=200))
def test_any_bytes_are_a_leaf_or_a_contract_error(data: bytes) -> None:
    for candidate in (data, leaf.LEAF_HEADER_PREFIX + data):
        try:
            read = leaf.classify(candidate)
        except ContractError:
            continue
        rebuilt = (
            wire.envelope_bytes(read.envelope)
            if read.envelope is not None
            else leaf.header_data(read.header)
        )
        assert rebuilt == candidate  # only canonical bytes are accepted


def test_a_receipt_naming_another_header_is_refused() -> None:
    response = epb.EqaResponse(site_id="lab-a", round_id="R1", sequence=2, schema_version=1)
    envelope = dsse.sign(wire.EQA_RESPONSE, wire.encode(response), KEY)
    own = leaf.header_for(envelope)
    assert leaf.leaf_data(envelope, lpb.Receipt(leaf_header=own)) == leaf.header_data(own)
    assert leaf.leaf_data(envelope, lpb.Receipt()) == wire.envelope_bytes(envelope)
    other = lpb.LeafHeader()
    other.CopyFrom(own)
    other.sequence = 3
    with pytest.raises(ContractError, match="does not describe this envelope"):
        leaf.leaf_data(envelope, lpb.Receipt(leaf_header=other))
