"""The payload codec against protobuf's own json_format, the reference implementation."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from protos import wire
from protos.errors import PayloadError
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb

words = st.text(max_size=12)
counts = st.integers(0, 2**32 - 1)
strata = st.builds(
    pb.StratumCounts,
    biomarker=words,
    method=words,
    specimen=words,
    tests=counts,
    positive=counts,
    withheld=st.booleans(),
    suppressed_cells=st.lists(words, max_size=3),
)
summaries = st.builds(
    pb.SiteSummary,
    site_id=words,
    period=words,
    schema_version=counts,
    sequence=st.integers(0, 2**64 - 1),
    strata=st.lists(strata, max_size=4),
    policy=st.builds(
        pb.DisclosurePolicy,
        min_denominator=counts,
        differential_privacy=st.builds(
            pb.DifferentialPrivacy,
            enabled=st.booleans(),
            epsilon=st.floats(allow_nan=False, allow_infinity=False),
        ),
    ),
    vaf=st.lists(
        st.builds(
            pb.VafHistogram,
            biomarker=words,
            edges=st.lists(st.floats(0, 100), max_size=4),
            counts=st.lists(counts, max_size=4),
        ),
        max_size=2,
    ),
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


@pytest.mark.parametrize(
    "payload,words",
    [
        (b'{"site_id": "a", "site_id": "b"}', "duplicate key"),
        (b'{"strata": [{"method": "a", "method": "b"}]}', "duplicate key"),
        (b'{"site_id": "a", "site_id": "\\u003a"}', "duplicate key"),  # an escaped colon
        (b'{"site_id": 5}', "must be a string"),
        (b'{"sequence": -1}', "out of range"),
        (b'{"sequence": "12x"}', "must be an integer"),
        (b'{"schema_version": true}', "must be an integer"),
        (b'{"strata": {}}', "must be a list"),
        (b'{"strata": [5]}', "must be an object"),
        (b'{"strata": [{"tests": 1.5}]}', "must be an integer"),
        (b'{"patient_id": "P1"}', "unknown field"),
        (b'{"strata": [{"variant": "x"}]}', "unknown field 'strata[0].variant'"),
    ],
)
def test_malformed_payloads_are_refused_with_the_reason(payload, words) -> None:
    with pytest.raises(PayloadError, match=words.replace("[", r"\[").replace("]", r"\]")):
        wire.decode(payload, pb.SiteSummary)


def _descriptors(descriptor):
    yield descriptor
    for f in descriptor.fields:
        if f.message_type is not None:
            yield from _descriptors(f.message_type)


MESSAGE_TYPES: list[type[Message]] = [pb.SiteSummary, lpb.TreeHead, lpb.Receipt, epb.EqaResponse]
FIELD_NAMES = sorted(
    {f.name for t in MESSAGE_TYPES for d in _descriptors(t.DESCRIPTOR) for f in d.fields}
    | {"unknown"}
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "12", "-3", "1_0", " 7", "AAEC", "AA=", "1.5", "²"]
    )
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(decode) -> tuple:
    try:
        return "decoded", decode().SerializeToString(deterministic=True)
    except PayloadError as exc:
        return "refused", str(exc)


def _same_either_way(payload: bytes, message_type) -> None:
    fast = _outcome(lambda: wire.decode(payload, message_type))
    by_field = _outcome(
        lambda: wire._decode_by_field(wire._parse(payload, message_type), message_type)
    )
    assert fast == by_field, payload


def _typical(field) -> st.SearchStrategy:
    """Values a payload could hold for the field: the right kind, its string forms, and wrong kinds."""
    if field.message_type is not None:
        return st.deferred(lambda: _objects(field.message_type))
    kind = field.cpp_type
    right: st.SearchStrategy[object]
    if field.type == field.TYPE_BYTES:
        right = st.binary(max_size=6).map(lambda b: base64.b64encode(b).decode())
    elif kind == field.CPPTYPE_BOOL:
        right = st.booleans()
    elif kind in (field.CPPTYPE_DOUBLE, field.CPPTYPE_FLOAT):
        right = (
            st.floats() | st.integers(-10, 10) | st.sampled_from(["NaN", "Infinity", "-Infinity"])
        )
    elif kind == field.CPPTYPE_STRING:
        right = st.text(max_size=4)
    else:
        right = st.integers(0, 1000) | st.integers(0, 99).map(str) | st.just(3.0)
    return st.one_of(
        [right] * 9 + [leaves]
    )  # mostly the right kind, so that whole payloads are often valid


def _objects(descriptor) -> st.SearchStrategy:
    values = {
        f.name: (st.lists(_typical(f), max_size=3) | leaves if f.is_repeated else _typical(f))
        for f in descriptor.fields
    }
    values["unknown"] = leaves
    return st.fixed_dictionaries({}, optional=values)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.data())
def test_the_fast_decoding_path_agrees_with_the_field_by_field_path(data) -> None:
    """decode() tries the protobuf constructor first; whatever it accepts must be exactly what the
    field-by-field path makes of the payload, and whatever it refuses gets that path's reason."""
    message_type = data.draw(st.sampled_from(MESSAGE_TYPES))
    payload = data.draw(
        _objects(message_type.DESCRIPTOR)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6)
    )
    _same_either_way(json.dumps(payload).encode(), message_type)


ODD_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**32,
    2**64,
    10**400,
    1.5,
    3.0,
    "NaN",
    "nan",
    "Infinity",
    "inf",
    "5",
    " 7",
    "1_0",
    "+5",
    "²",
    "5.0",
    "AAEC",
    "AA=",
    "",
    [],
    [1],
    ["a"],
    {},
    {"unknown": 1},
]


def _valid_payloads() -> list[tuple[type, dict]]:
    head = lpb.TreeHead(tree_size=7, root_hash=b"\x01" * 32, timestamp_ms=5)
    return [
        (
            pb.SiteSummary,
            json.loads(
                wire.encode(
                    pb.SiteSummary(
                        site_id="lab-a",
                        period="2026Q3",
                        schema_version=1,
                        sequence=3,
                        strata=[
                            pb.StratumCounts(
                                biomarker="EGFR",
                                method="pcr",
                                specimen="tissue",
                                tests=5,
                                positive=1,
                                negative=4,
                                suppressed_cells=["failed"],
                            )
                        ],
                        policy=pb.DisclosurePolicy(
                            min_denominator=10,
                            small_count_suppression=True,
                            differential_privacy=(
                                pb.DifferentialPrivacy(enabled=True, epsilon=1.0)
                            ),
                        ),
                        vaf=[pb.VafHistogram(biomarker="EGFR", edges=[0.0, 5.0], counts=[1])],
                    )
                )
            ),
        ),
        (
            lpb.Receipt,
            json.loads(
                wire.encode(lpb.Receipt(site_id="lab-a", sequence=3, leaf_index=6, tree_head=head))
            ),
        ),
        (
            epb.EqaResponse,
            json.loads(wire.encode(epb.EqaResponse(site_id="lab-a", round_id="r1", sequence=2))),
        ),
    ]


@pytest.mark.parametrize(
    "message_type,valid", _valid_payloads(), ids=lambda v: getattr(v, "__name__", "")
)
def test_the_fast_path_agrees_with_odd_values_in_every_place(message_type, valid) -> None:
    """Each odd value in each place of an otherwise valid payload: both decoding paths agree."""
    for path in _leaf_paths(valid):
        if not path:
            continue
        for odd in ODD_VALUES:
            tree = json.loads(json.dumps(valid))
            node = tree
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = odd
            _same_either_way(json.dumps(tree).encode(), message_type)


def _leaf_paths(tree, path=()):
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return [path]
    return [path] + [p for key, value in items for p in _leaf_paths(value, path + (key,))]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(summaries, st.data())
def test_the_fast_path_agrees_on_valid_summaries_with_one_value_changed(message, data) -> None:
    tree = json.loads(wire.encode(message))
    path = data.draw(st.sampled_from([p for p in _leaf_paths(tree) if p]))
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(
        leaves
        | st.lists(leaves, max_size=2)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), leaves, max_size=2)
    )
    _same_either_way(json.dumps(tree).encode(), pb.SiteSummary)


def _typed(value: object) -> object:
    """value with each number's type kept, so that 1 and 1.0 (or True) compare unequal."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value if value == value else "nan")


def _as_orjson_reads(value: object) -> object:
    """What the standard reader made of a text, as orjson reads the same text: integers past
    64 bits as floats (OverflowError if not even a float holds them: orjson refuses those)."""
    if isinstance(value, dict):
        return {key: _as_orjson_reads(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_orjson_reads(item) for item in value]
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=500, deadline=None)
@given(json_texts, st.booleans(), st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]))
def test_the_quick_reader_reads_what_the_standard_reader_reads_or_stands_aside(
    value, ascii_only, separators
) -> None:
    """orjson's reading (without the duplicate-key check, which the tests below try) is used only
    where it is what the standard library's strict reader makes of the same bytes."""
    payload = json.dumps(value, ensure_ascii=ascii_only, separators=separators).encode("utf-8")
    quick = wire._parse_quickly(payload)
    if quick is None:
        return
    try:
        expected = _as_orjson_reads(wire._parse(payload, pb.SiteSummary))
    except OverflowError:
        raise AssertionError(f"orjson read a number no float holds: {payload!r}") from None
    assert _typed(quick) == _typed(expected)


def _dict_paths(tree, path=()):
    """The path of every object in a JSON tree."""
    found = [path] if isinstance(tree, dict) else []
    items = (
        tree.items()
        if isinstance(tree, dict)
        else enumerate(tree)
        if isinstance(tree, list)
        else ()
    )
    return found + [p for key, item in items for p in _dict_paths(item, path + (key,))]


def _render(tree, separator: str) -> str:
    """JSON text of a tree whose objects may be lists of (key, value) pairs, duplicates kept."""
    if isinstance(tree, tuple):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k, ensure_ascii=False)}{separator}{_render(v, separator)}"
                for k, v in tree
            )
            + "}"
        )
    if isinstance(tree, dict):
        return _render(tuple(tree.items()), separator)
    if isinstance(tree, list):
        return "[" + ", ".join(_render(item, separator) for item in tree) + "]"
    return json.dumps(tree, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(
    summaries,
    st.data(),
    st.sampled_from([": ", ":", " : ", "\n:\t"]),
    st.sampled_from(["x", "a:b", "", "::", 7, None, [":"], {"k:": ":"}]),
)
def test_a_duplicate_key_anywhere_is_refused(message, data, separator, other) -> None:
    """A key written twice in any object, whatever its values hold (colons too) and however the
    text is spaced, is refused as the standard reader refuses it, never read as the last value."""
    tree = json.loads(wire.encode(message))
    path = data.draw(st.sampled_from([p for p in _dict_paths(tree) if p or tree]))
    node = tree
    for key in path:
        node = node[key]
    if not node:
        node["site_id"] = "lab"
    key = data.draw(st.sampled_from(sorted(node)))
    pairs = list(node.items())
    pairs.insert(data.draw(st.integers(0, len(pairs))), (key, other))
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    replaced = tuple(pairs)
    if path:
        parent[path[-1]] = replaced
    else:
        tree = replaced
    payload = _render(tree, separator).encode("utf-8")
    with pytest.raises(PayloadError, match="duplicate key"):
        wire.decode(payload, pb.SiteSummary)


def test_a_key_written_twice_in_encode_s_own_layout_is_refused() -> None:
    """A payload laid out exactly as encode lays it out reads quickly because orjson writes it
    back unchanged; one with any line written twice (a key twice in that layout) is not written
    back the same, and its duplicate is refused as the standard reader refuses it."""
    lines = wire.encode(_rich_summary()).decode("utf-8").split("\n")
    assert wire._parse_quickly("\n".join(lines).encode("utf-8")) is not None
    twice = 0
    for i, line in enumerate(lines):
        if '": ' not in line or line.rstrip().endswith(("{", "[")):
            continue
        copy = line if line.endswith(",") else line + ","
        payload = "\n".join(lines[:i] + [copy] + lines[i:]).encode("utf-8")
        with pytest.raises(PayloadError, match="duplicate key"):
            wire.decode(payload, pb.SiteSummary)
        twice += 1
    assert twice > 40


def _rich_summary() -> pb.SiteSummary:
    return pb.SiteSummary(
        site_id="lab-a",
        period="2026Q3",
        schema_version=1,
        sequence=2**40,
        strata=[
            pb.StratumCounts(biomarker="EGFR", method="pcr", tests=3, negative=3),
            pb.StratumCounts(biomarker="ALK", tests=1, suppressed_cells=["failed"]),
        ],
        turnaround=[pb.TurnaroundHistogram(specimen="tissue", counts=[1, 2], total=3)],
        panel=pb.PanelCoverage(
            patients=4, biomarkers=[pb.BiomarkerCoverage(biomarker="EGFR", with_valid_result=2)]
        ),
        vaf=[pb.VafHistogram(biomarker="EGFR", edges=[0.0, 5.0, 100.0001], counts=[1, 2])],
        policy=pb.DisclosurePolicy(
            differential_privacy=pb.DifferentialPrivacy(enabled=True, epsilon=0.5)
        ),
    )


def test_a_real_quarterly_summary_takes_the_quick_reader() -> None:
    """The speed of the coordinator's intake rests on it: a summary as nodes write it has no
    backslash, and orjson's reading of it is used."""
    message = pb.SiteSummary(
        site_id="lab-a",
        period="2026Q3",
        sequence=2**40,
        strata=[pb.StratumCounts(biomarker="EGFR", tests=3, negative=3, withheld=False)],
        vaf=[pb.VafHistogram(biomarker="EGFR", edges=[0.0, 5.0, 100.0001], counts=[1, 2])],
        policy=pb.DisclosurePolicy(
            differential_privacy=pb.DifferentialPrivacy(epsilon=float("nan"))
        ),
    )
    payload = wire.encode(message)
    assert wire._parse_quickly(payload) == json.loads(payload)
    decoded = wire.decode(payload, pb.SiteSummary)
    assert decoded.sequence == 2**40 and list(decoded.vaf[0].edges) == [0.0, 5.0, 100.0001]
    assert (
        decoded.policy.differential_privacy.epsilon != decoded.policy.differential_privacy.epsilon
    )


any_text = st.text(
    max_size=8
)  # every code point a protobuf string may hold, control characters too
any_float = st.floats(width=64)
exact_summaries = st.builds(
    pb.SiteSummary,
    site_id=any_text,
    period=any_text,
    sequence=st.integers(0, 2**64 - 1),
    strata=st.lists(
        st.builds(
            pb.StratumCounts,
            biomarker=any_text,
            disclosure_note=any_text,
            tests=counts,
            withheld=st.booleans(),
            suppressed_cells=st.lists(any_text, max_size=2),
        ),
        max_size=3,
    ),
    policy=st.builds(
        pb.DisclosurePolicy,
        differential_privacy=st.builds(
            pb.DifferentialPrivacy, epsilon=any_float, noise_scale=any_float
        ),
        perturbation=st.builds(pb.Perturbation, noise_variance=any_float),
    ),
    vaf=st.lists(
        st.builds(pb.VafHistogram, edges=st.lists(any_float, max_size=4), counts=st.lists(counts)),
        max_size=2,
    ),
)
exact_messages = (
    exact_summaries
    | st.builds(
        lpb.Receipt,
        site_id=any_text,
        leaf_index=st.integers(0, 2**64 - 1),
        tree_head=st.builds(
            lpb.TreeHead,
            tree_size=st.integers(0, 2**64 - 1),
            root_hash=st.binary(max_size=33),
            timestamp_ms=st.integers(-(2**63), 2**63 - 1),
        ),
    )
    | st.builds(epb.EqaResponse, site_id=any_text, round_id=any_text)
)


@settings(max_examples=300, deadline=None)
@given(exact_messages)
def test_encode_writes_exactly_what_the_standard_library_writes(message) -> None:
    """Signed payloads are bytes: what orjson writes must be the standard library's json.dumps
    (sort_keys, indent=2, ensure_ascii=False) of the same JSON mapping, byte for byte, and read
    back as the message."""
    ours = wire.encode(message)
    standard = (
        json.dumps(json.loads(ours), sort_keys=True, indent=2, ensure_ascii=False).encode("utf-8")
        + b"\n"
    )
    assert ours == standard
    reference = type(message)()
    json_format.Parse(ours.decode("utf-8"), reference)
    assert json_format.MessageToDict(reference) == json_format.MessageToDict(message)  # NaN too
