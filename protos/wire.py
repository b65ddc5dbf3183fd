"""Payload types and payload encoding: the protobuf JSON mapping, produced once and signed as bytes.

Payloads are JSON so that a lab's privacy officer and an auditor can read exactly what was
signed; they are decoded strictly (an unknown field is an error, not silently dropped). The codec
here walks the message descriptors directly (the tests check it against protobuf's json_format,
which is several times slower on the coordinator's hot path).

Decoding tries a fast path first: orjson reads the payload (duplicate keys found by counting), and
the JSON objects go to the protobuf constructor, which checks types and ranges in C, after the few
conversions and checks it would not do (64-bit integers written as strings, base64 bytes, special
floats, strict booleans, lists). Anything it does not accept goes through the field-by-field path
over the standard library's reader, which accepts exactly what the JSON mapping allows and names
what is wrong; the tests check that both paths agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from functools import partial
from operator import methodcaller
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import orjson
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
    64-bit integers as strings, bytes as base64, every scalar field printed), keys sorted.

    Byte for byte what the standard library writes with sort_keys, indent=2 and
    ensure_ascii=False (the tests check it), written by orjson; a finite float is written as
    Python's repr, as the standard library does."""
    return (
        orjson.dumps(_to_dict(message), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )


def decode(payload: bytes, message_type: type[M]) -> M:
    """Parse payload bytes as message_type; PayloadError on anything that is not exactly that:
    not UTF-8 JSON, not an object, a duplicate or unknown key, a value of the wrong type or range."""
    return decode_fields(payload, message_type)[0]


def decode_fields(payload: bytes, message_type: type[M]) -> tuple[M, JsonObject | None]:
    """decode(), and the JSON object the message was made from (the fast path), for a caller
    that reads many of its fields: a dict lookup costs a fraction of a message attribute's read.
    Its values are the message's: 64-bit integers, bytes and special floats converted, an absent
    key or null is the field's default, a float field's value may be an integer. None when the
    field-by-field path made the message (`fields_of` reads its fields out the same way)."""
    data = _parse_quickly(payload)
    if data is None:
        data = _parse(payload, message_type)
    try:
        fields = _prepare(message_type.DESCRIPTOR)(data)
        return message_type(**fields), fields
    except Exception:  # noqa: BLE001 - the field-by-field path decides, and says why
        return _decode_by_field(_parse(payload, message_type), message_type), None


def fields_of(message: Message) -> JsonObject:
    """Every field of a message as plain values, as `decode_fields` gives them: a set message
    field as a dict, a repeated field as a list, 64-bit integers as integers, bytes as bytes."""
    return _to_dict(message, mapped=False)


def _parse_quickly(payload: bytes) -> JsonObject | None:
    """The JSON object orjson reads, when that is surely what `_parse` would read; else None
    (`_parse` then reads it, and names what is wrong).

    orjson keeps the last of duplicate keys where `_parse` refuses them, so duplicates are looked
    for. A payload that begins with what orjson writes of the object it read (indented by two, as
    `encode` writes every node's summary) holds each key it read once, so none twice. Any other
    is checked by counting colons. In a payload without a backslash every string is written as it
    is, so each colon the compact re-encoding of what was read holds (one per key read, and those
    inside its strings) stands for a colon of the payload; a dropped duplicate takes at least its
    own colon with it, and nothing orjson writes adds one. The counts are equal only without
    duplicates. orjson refuses what `_parse` also refuses, and reads
    numbers as it does except NaN and Infinity (refused: `_parse` decides) and integers past 64
    bits (read as floats: the constructor refuses those in integer fields, and in a float field
    the value is the same)."""
    if b"\\" in payload:
        return None
    try:
        data = orjson.loads(payload)
        if type(data) is not dict:
            return None
        if payload.startswith(orjson.dumps(data, option=orjson.OPT_INDENT_2)):
            return data  # the rest is whitespace: orjson read one object
        if orjson.dumps(data).count(b":") != payload.count(b":"):
            return None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    return data


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


# What the protobuf constructor is given: the JSON object with what it would not check or convert
# as the JSON mapping says done first. It checks plain strings, 32-bit integers (no booleans or
# floats, in range), nested objects and unknown keys itself. It would take an integer for a
# boolean, a boolean for a float, a string or an object for a list, and no 64-bit integer written
# as a string, base64 bytes or special float. A field needing none of that is not looked at, nor
# is a nested message needing none (most of a summary's strata need one look at two fields).
# Each step returns the value to give the constructor, or raises on anything unusual.
Step: TypeAlias = Callable[[Any], Any]
_STEPS: dict[AnyDescriptor, Step | None] = {}
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_DIGITS = re.compile(r"-?[0-9]+")


class _Unusual(Exception):
    """A value the constructor must not be given as it is."""


def _prepare(descriptor: AnyDescriptor) -> Step:
    return _message_step(descriptor) or _is_object


def _is_object(value: Any) -> Any:
    if type(value) is not dict:
        raise _Unusual
    return value


def _message_step(descriptor: AnyDescriptor) -> Step | None:
    """The step of an object of this message type, or None if the constructor can be given it as
    it is (cached; a message type that contains itself gets a step that looks its own up)."""
    if descriptor in _STEPS:
        found = _STEPS[descriptor]
        if found is _planning:  # the message type contains itself
            return lambda value: _prepare(descriptor)(value)
        return found
    _STEPS[descriptor] = _planning
    fields = [(f.name, step) for f in descriptor.fields if (step := _field_step(f)) is not None]
    _STEPS[descriptor] = found = _object_step(tuple(fields)) if fields else None
    if all(step in _TYPE_CHECKS for _, step in fields):
        _TYPES_ONLY[descriptor] = tuple((name, _TYPE_CHECKS[step]) for name, step in fields)
    return found


def _planning(value: Any) -> Any:
    """Marks a message type whose fields are being planned."""
    raise RuntimeError("a message type was used while its fields were planned")


def _object_step(fields: tuple[tuple[str, Step], ...]) -> Step:
    def step(value: Any) -> Any:
        if type(value) is not dict:
            raise _Unusual
        for name, field_step in fields:
            item = value.get(name)
            if item is not None:  # null is the default value, for the constructor too
                value[name] = field_step(item)
        return value

    return step


def _field_step(field: AnyFieldDescriptor) -> Step | None:
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        assert field.message_type is not None  # a message field names its type
        item_step = _message_step(field.message_type)
    else:
        item_step = _scalar_step(field)
    if not field.is_repeated:
        return item_step
    if item_step is None:
        return _is_list
    if field.message_type is not None and field.message_type in _TYPES_ONLY:
        return partial(_each_typed, _TYPES_ONLY[field.message_type])
    return partial(_each, item_step, _PASSED.get(item_step, frozenset()))


def _is_list(value: Any) -> Any:
    if type(value) is not list:
        raise _Unusual
    return value


def _each(item_step: Step, passed: frozenset[type], value: Any) -> Any:
    """Each item through its step, unless all are of types it lets through as they are."""
    if type(value) is not list:
        raise _Unusual
    if set(map(type, value)) <= passed:
        return value
    return [item_step(item) for item in value]


def _each_typed(fields: tuple[tuple[str, frozenset[type]], ...], value: Any) -> Any:
    """A list of objects whose fields need no more than their type checked (a summary's strata):
    each field of all of them at once."""
    if type(value) is not list or not set(map(type, value)) <= _OBJECT:
        raise _Unusual
    for name, types in fields:
        if not set(map(type, map(methodcaller("get", name), value))) <= types:
            raise _Unusual
    return value


def _scalar_step(field: AnyFieldDescriptor) -> Step | None:
    cpp = field.cpp_type
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _base64
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return _boolean
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return _number
    if cpp in _AS_STRING:
        return _integer_or_digits
    if cpp == FieldDescriptor.CPPTYPE_STRING or cpp in _INTEGERS:
        return None
    return _unsupported


def _base64(value: Any) -> Any:
    if type(value) is not str:
        raise _Unusual
    return base64.b64decode(value, validate=True)


def _boolean(value: Any) -> Any:
    if type(value) is not bool:
        raise _Unusual
    return value


def _number(value: Any) -> Any:
    if type(value) is float or type(value) is int:
        return value
    if type(value) is str and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    raise _Unusual


def _integer_or_digits(value: Any) -> Any:
    if type(value) is int:
        return value
    if type(value) is str and _DIGITS.fullmatch(value):
        return int(value)
    raise _Unusual


def _unsupported(value: Any) -> Any:
    raise _Unusual


# The types a scalar step lets through unchanged.
_PASSED: dict[Step, frozenset[type]] = {
    _boolean: frozenset({bool}),
    _number: frozenset({float, int}),
    _integer_or_digits: frozenset({int}),
}
# The steps that only check a value's type, and the types they let through (None: absent or null,
# the default); message types whose fields need no other step, with their fields' types.
_TYPE_CHECKS: dict[Step, frozenset[type]] = {
    _boolean: frozenset({bool, type(None)}),
    _is_list: frozenset({list, type(None)}),
}
_TYPES_ONLY: dict[AnyDescriptor, tuple[tuple[str, frozenset[type]], ...]] = {}
_OBJECT = frozenset({dict})


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


def _base64_text(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _float_json(value: float) -> object:
    if value != value or value in (float("inf"), float("-inf")):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return orjson.Fragment(float.__repr__(value))


# How each field of a message type is written: (name, the message's own writer for a message
# field, the scalar writer (None: as it is), repeated).
_Writing: TypeAlias = tuple[str, bool, Callable[[Any], object] | None, bool]
_WRITINGS: dict[AnyDescriptor, tuple[_Writing, ...]] = {}


def _writing(descriptor: AnyDescriptor) -> tuple[_Writing, ...]:
    writing = _WRITINGS.get(descriptor)
    if writing is None:
        fields: list[_Writing] = []
        for f in descriptor.fields:
            scalar: Callable[[Any], object] | None = None
            if f.type == FieldDescriptor.TYPE_BYTES:
                scalar = _base64_text
            elif f.cpp_type in _AS_STRING:
                scalar = str
            elif f.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
                scalar = _float_json
            is_message = f.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
            fields.append((f.name, is_message, scalar, f.is_repeated))
        writing = _WRITINGS[descriptor] = tuple(fields)
    return writing


def _to_dict(message: Message, mapped: bool = True) -> JsonObject:
    """The message as the JSON mapping writes it (64-bit integers as strings, bytes as base64,
    ...); without `mapped`, its scalars as they are (`fields_of`)."""
    out: JsonObject = {}
    for name, is_message, scalar, repeated in _writing(message.DESCRIPTOR):
        value = getattr(message, name)
        if is_message:
            if repeated:
                out[name] = [_to_dict(item, mapped) for item in value]
            elif message.HasField(name):
                out[name] = _to_dict(value, mapped)
        elif scalar is None or not mapped:
            out[name] = list(value) if repeated else value
        else:
            out[name] = [scalar(item) for item in value] if repeated else scalar(value)
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
