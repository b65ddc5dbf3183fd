"""Payload types and payload encoding: the protobuf JSON mapping, produced once and signed as bytes.

Payloads are JSON so that a lab's privacy officer and an auditor can read exactly what was
signed; they are decoded strictly (an unknown field is an error, not silently dropped).
"""
from __future__ import annotations

import hashlib
import json
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from protos.errors import PayloadError
from protos.rarenet.v1.envelope_pb2 import Envelope

SCHEMA_VERSION = 1

# StratumCounts.method of per-test strata: one call per test and biomarker, whatever the methods.
ALL_METHODS = "all"
# StratumCounts.method/specimen of strata merged for disclosure control.
MERGED = "any"

SITE_SUMMARY = "application/vnd.rarenet.site-summary.v1+json"
ENROLL = "application/vnd.rarenet.enroll.v1+json"
RECEIPT = "application/vnd.rarenet.receipt.v1+json"
TREE_HEAD = "application/vnd.rarenet.tree-head.v1+json"
BENCHMARK_REQUEST = "application/vnd.rarenet.benchmark-request.v1+json"
SITE_BENCHMARK = "application/vnd.rarenet.site-benchmark.v1+json"
STANDARD = "application/vnd.rarenet.standard.v1+toml"

M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    """The payload bytes of a message: protobuf JSON, field names as in the .proto, keys sorted."""
    text = json_format.MessageToJson(
        message,
        preserving_proto_field_name=True,
        sort_keys=True,
        indent=2,
        always_print_fields_with_no_presence=True,
    )
    return text.encode("utf-8") + b"\n"


def decode(payload: bytes, message_type: type[M]) -> M:
    """Parse payload bytes as message_type; PayloadError on anything that is not exactly that."""
    message = message_type()
    name = message_type.DESCRIPTOR.name
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"payload is not a valid {name}: not UTF-8 JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"payload is not a valid {name}: a JSON object is required")
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except (json_format.ParseError, RecursionError) as exc:
        raise PayloadError(f"payload is not a valid {name}: {exc}") from exc
    return message


def envelope_bytes(envelope: Envelope) -> bytes:
    """The deterministic serialisation of an envelope: the ledger's leaf data."""
    return envelope.SerializeToString(deterministic=True)


def envelope_sha256(envelope: Envelope) -> str:
    return hashlib.sha256(envelope_bytes(envelope)).hexdigest()


def parse_envelope(data: bytes) -> Envelope:
    envelope = Envelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:
        raise PayloadError(f"not a serialised Envelope: {exc}") from exc
    return envelope
