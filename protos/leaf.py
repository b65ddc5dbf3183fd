"""The ledger's leaf data: a small header per accepted envelope (see ledger.proto).

    leaf data = LEAF_HEADER_PREFIX || LeafHeader (deterministic protobuf serialisation)

The header names the site, period, sequence and payload type and commits to the payload's and
the envelope's SHA-256, so every header up to a tree head tells an auditor which submissions the
ledger holds for a period without holding the summaries themselves. The header follows from the
envelope alone: a node, the coordinator and an auditor compute the same bytes.

Leaves appended before headers existed hold the serialised envelope itself; their receipts carry
no `leaf_header`. `classify` tells the two forms apart from the bytes: a serialised Envelope never
begins with a zero byte, the prefix always does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from protos import wire
from protos.errors import ContractError
from protos.rarenet.v1 import action_pb2 as apb
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.rarenet.v1.envelope_pb2 import Envelope

LEAF_HEADER_PREFIX = b"\x00rarenet.leaf-header.v1\x00"
EQA_PERIOD_PREFIX = "eqa:"
ACTION_PERIOD_PREFIX = "action:"

# gRPC metadata a node sends with Submit to say it checks receipts of header-form leaves. Nodes
# from before leaf headers do not send it; their envelopes are appended whole, as before, so the
# receipts they check keep verifying (both forms commit to the whole envelope).
LEAF_FORM_METADATA = ("rarenet-leaf-form", "header.v1")


def period_of(payload_type: str, payload: bytes) -> tuple[str, str, int]:
    """(site id, period, sequence) of a submitted payload; an EQA response's period is eqa:ROUND,
    a corrective action's action:ACTION_ID."""
    if payload_type == wire.SITE_SUMMARY:
        summary = wire.decode(payload, pb.SiteSummary)
        return summary.site_id, summary.period, summary.sequence
    if payload_type == wire.EQA_RESPONSE:
        response = wire.decode(payload, epb.EqaResponse)
        return response.site_id, EQA_PERIOD_PREFIX + response.round_id, response.sequence
    if payload_type == wire.CORRECTIVE_ACTION:
        action = wire.decode(payload, apb.CorrectiveAction)
        return action.site_id, ACTION_PERIOD_PREFIX + action.action_id, action.sequence
    raise ContractError(f"payload type {payload_type!r} is not one a ledger leaf holds")


def make_header(
    envelope: Envelope, site_id: str, period: str, sequence: int, envelope_sha256: str
) -> lpb.LeafHeader:
    """The header of an envelope whose payload the caller has decoded already."""
    return lpb.LeafHeader(
        site_id=site_id,
        period=period,
        sequence=sequence,
        payload_type=envelope.payload_type,
        payload_sha256=hashlib.sha256(envelope.payload).hexdigest(),
        envelope_sha256=envelope_sha256,
    )


def header_for(envelope: Envelope) -> lpb.LeafHeader:
    """The header of an envelope, from its bytes and its decoded payload."""
    site_id, period, sequence = period_of(envelope.payload_type, envelope.payload)
    return make_header(envelope, site_id, period, sequence, wire.envelope_sha256(envelope))


def header_data(header: lpb.LeafHeader) -> bytes:
    """The leaf data of a header."""
    return LEAF_HEADER_PREFIX + bytes(header.SerializeToString(deterministic=True))


def leaf_data(envelope: Envelope, receipt: lpb.Receipt) -> bytes:
    """The leaf data the coordinator appended for an envelope it receipted: its header when the
    receipt names one (which must be the envelope's own), else the serialised envelope."""
    if not receipt.HasField("leaf_header"):
        return wire.envelope_bytes(envelope)
    own = header_for(envelope)
    if receipt.leaf_header != own:
        raise ContractError(
            "the receipt's leaf header does not describe this envelope "
            f"(it names {describe(receipt.leaf_header)}, the envelope is {describe(own)})"
        )
    return header_data(own)


def describe(header: lpb.LeafHeader) -> str:
    return f"site {header.site_id}, period {header.period}, sequence {header.sequence}"


@dataclass(frozen=True)
class Leaf:
    """What one leaf's data says: its header, and for a whole-envelope leaf the envelope."""

    header: lpb.LeafHeader
    envelope: Envelope | None  # set only for a leaf of the older, whole-envelope form


def parse_header(data: bytes) -> lpb.LeafHeader:
    """The header in header-form leaf data; ContractError unless it is exactly one, canonically."""
    if not data.startswith(LEAF_HEADER_PREFIX):
        raise ContractError("not a leaf header (the prefix is missing)")
    header = lpb.LeafHeader()
    try:
        header.ParseFromString(data[len(LEAF_HEADER_PREFIX) :])
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError or worse on junk
        raise ContractError(f"not a leaf header: {exc}") from exc
    if header_data(header) != data:
        raise ContractError("the leaf header is not in its canonical serialisation")
    return header


def classify(data: bytes) -> Leaf:
    """Read any leaf's data, in either form; ContractError when it is neither."""
    if data.startswith(LEAF_HEADER_PREFIX):
        return Leaf(parse_header(data), None)
    envelope = wire.parse_envelope(data)
    if wire.envelope_bytes(envelope) != data:
        raise ContractError(
            "the leaf is neither a leaf header nor a canonically serialised envelope"
        )
    return Leaf(header_for(envelope), envelope)
