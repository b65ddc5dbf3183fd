"""Payload types and payload encoding: the protobuf JSON mapping, produced once and signed as bytes.

Payloads are JSON so that a lab's privacy officer and an auditor can read exactly what was
signed; they are decoded strictly (an unknown field is an error, not silently dropped). The codec
here walks the message descriptors directly (the tests check it against protobuf's json_format,
which is several times slower on the coordinator's hot path).

Decoding tries a fast path first: the JSON objects go to the protobuf constructor, which checks
types and ranges in C, after the few conversions and checks it would not do (64-bit integers
written as strings, base64 bytes, special floats, strict booleans). Anything it does not accept
goes through the field-by-field path, which accepts exactly what the JSON mapping allows and names
what is wrong; the tests check that both paths agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
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
EQA_ROUND = "application/vnd.rarenet.eqa-round.v1+json"
EQA_RESPONSE = "application/vnd.rarenet.eqa-response.v1+json"
EQA_SCORE = "application/vnd.rarenet.eqa-score.v1+json"
EQA_SCORE_REQUEST = "application/vnd.rarenet.eqa-score-request.v1+json"
CORRECTIVE_ACTION = "application/vnd.rarenet.corrective-action.v1+json"

M = TypeVar("M", bound=Message)

if TYPE_CHECKING:
    # A message's DESCRIPTOR is the pure-Python class or the C (upb) one, as the stubs say.
    from google._upb import _message as _upb

    AnyDescriptor: TypeAlias = Descriptor | _upb.Descriptor
    AnyFieldDescriptor: TypeAlias = FieldDescriptor | _upb.FieldDescriptor

# A JSON object as json.loads returns it.
JsonObject: TypeAlias = dict[str, Any]


def encode(message: Message) -> bytes:
    """The payload bytes of a message: its protobuf JSON mapping (field names as in the .proto,
    64-bit integers as strings, bytes as base64, every scalar field printed), keys sorted."""
    return (
        json.dumps(_to_dict(message), sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8")
        + b"\n"
    )


def decode(payload: bytes, message_type: type[M]) -> M:
    """Parse payload bytes as message_type; PayloadError on anything that is not exactly that:
    not UTF-8 JSON, not an object, a duplicate or unknown key, a value of the wrong type or range."""
    try:
        return message_type(**_converted(message_type.DESCRIPTOR, _parse(payload, message_type)))
    except PayloadError:
        raise
    except Exception:  # noqa: BLE001 - the field-by-field path decides, and says why
        return _decode_by_field(_parse(payload, message_type), message_type)


def _parse(payload: bytes, message_type: type[Message]) -> JsonObject:
    name = message_type.DESCRIPTOR.name
    try:
        data = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"payload is not a valid {name}: not UTF-8 JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"payload is not a valid {name}: a JSON object is required")
    return data


def _decode_by_field(data: JsonObject, message_type: type[M]) -> M:
    message = message_type()
    try:
        _fill(message, data, "")
    except (TypeError, ValueError, OverflowError, binascii.Error, RecursionError) as exc:
        raise PayloadError(f"payload is not a valid {message_type.DESCRIPTOR.name}: {exc}") from exc
    return message


_BOOL, _FLOAT, _INT64, _BYTES, _MESSAGE, _UNSUPPORTED = range(6)
_PLANS: dict[AnyDescriptor, dict[str, tuple[int | None, bool, AnyDescriptor | None]]] = {}
_DIGITS = re.compile(r"-?[0-9]+")
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _plan(descriptor: AnyDescriptor) -> dict[str, tuple[int | None, bool, AnyDescriptor | None]]:
    """name: (conversion kind or None, repeated, message descriptor) for the fields the constructor
    would not check or convert as the JSON mapping says; plain strings and 32-bit integers are
    left to it."""
    plan = _PLANS.get(descriptor)
    if plan is None:
        plan = {}
        for f in descriptor.fields:
            if f.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                kind = _MESSAGE
            elif f.type == FieldDescriptor.TYPE_BYTES:
                kind = _BYTES
            elif f.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
                kind = _BOOL
            elif f.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
                kind = _FLOAT
            elif f.cpp_type in _AS_STRING:
                kind = _INT64
            elif f.cpp_type == FieldDescriptor.CPPTYPE_STRING or f.cpp_type in _INTEGERS:
                kind = None
            else:
                kind = _UNSUPPORTED
            if kind is not None or f.is_repeated:
                plan[f.name] = (kind, f.is_repeated, f.message_type)
        _PLANS[descriptor] = plan
    return plan


def _converted(descriptor: AnyDescriptor, data: JsonObject) -> JsonObject:
    """data with the conversions of _plan made (in place); raises on anything unusual."""
    plan = _plan(descriptor)
    for name in plan.keys() & data.keys():
        kind, repeated, message_type = plan[name]
        value = data[name]
        if repeated:
            if type(value) is not list:
                raise TypeError(name)
            if kind is not None:
                data[name] = [_convert(kind, item, message_type) for item in value]
        else:
            assert kind is not None  # _plan lists a single field only to convert it
            data[name] = _convert(kind, value, message_type)
    return data


def _convert(kind: int, value: object, message_type: AnyDescriptor | None) -> object:
    if kind == _MESSAGE:
        if type(value) is not dict or message_type is None:
            raise TypeError("an object is required")
        return _converted(message_type, value)
    if kind == _INT64:
        if type(value) is int or (type(value) is str and _DIGITS.fullmatch(value)):
            return int(value)
    elif kind == _BOOL:
        if type(value) is bool:
            return value
    elif kind == _FLOAT:
        if type(value) is float or type(value) is int:
            return float(value)
        if type(value) is str and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
    elif kind == _BYTES:
        if type(value) is str:
            return base64.b64decode(value, validate=True)
    raise TypeError("not the usual form")


_INTEGERS = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_AS_STRING = {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64}
_FIELDS: dict[AnyDescriptor, dict[str, AnyFieldDescriptor]] = {}


def _fields(descriptor: AnyDescriptor) -> dict[str, AnyFieldDescriptor]:
    fields = _FIELDS.get(descriptor)
    if fields is None:
        fields = _FIELDS[descriptor] = {f.name: f for f in descriptor.fields}
    return fields


def _no_duplicates(pairs: list[tuple[str, object]]) -> JsonObject:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return data


def _scalar(field: AnyFieldDescriptor, value: object, where: str) -> object:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            if not isinstance(value, str):
                raise TypeError(f"{where} must be base64 text")
            return base64.b64decode(value, validate=True)
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a string")
        return value
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"{where} must be true or false")
        return value
    if cpp in _INTEGERS:
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where} must be an integer")
        low, high = _INTEGERS[cpp]
        if not low <= value <= high:
            raise ValueError(f"{where} is out of range")
        return value
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} must be a number")
        return float(value)
    raise TypeError(f"{where}: field type not supported in payloads")


def _fill(message: Message, data: JsonObject, path: str) -> None:
    fields = _fields(message.DESCRIPTOR)
    message.SetInParent()
    for key, value in data.items():
        where = path + key
        field = fields.get(key)
        if field is None:
            raise ValueError(f"unknown field {where!r}")
        if value is None:
            continue
        is_message = field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
        if field.is_repeated:
            if not isinstance(value, list):
                raise TypeError(f"{where} must be a list")
            target = getattr(message, key)
            for i, item in enumerate(value):
                if is_message:
                    if not isinstance(item, dict):
                        raise TypeError(f"{where}[{i}] must be an object")
                    _fill(target.add(), item, f"{where}[{i}].")
                else:
                    target.append(_scalar(field, item, f"{where}[{i}]"))
        elif is_message:
            if not isinstance(value, dict):
                raise TypeError(f"{where} must be an object")
            _fill(getattr(message, key), value, where + ".")
        else:
            setattr(message, key, _scalar(field, value, where))


def _json_scalar(field: AnyFieldDescriptor, value: Any) -> object:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.cpp_type in _AS_STRING:
        return str(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return value


def _to_dict(message: Message) -> JsonObject:
    out: JsonObject = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                out[field.name] = [_to_dict(item) for item in value]
            else:
                out[field.name] = [_json_scalar(field, item) for item in value]
        elif field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if message.HasField(field.name):
                out[field.name] = _to_dict(value)
        else:
            out[field.name] = _json_scalar(field, value)
    return out


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
