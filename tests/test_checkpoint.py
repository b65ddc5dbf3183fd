"""Signed notes, checkpoints and cosignatures, byte for byte against published vectors: the C2SP
specifications' examples, Go's sumdb note tests, and a checkpoint signed by sum.golang.org
(tests/fixtures/signed-note/SOURCE.md says where each comes from)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import checkpoint, cosignature, keys, merkle, note
from protos.note import NoteError

VECTORS = json.loads(
    (Path(__file__).parent / "fixtures" / "signed-note" / "vectors.json").read_text()
)


def go_signer(skey: str) -> tuple[str, Ed25519PrivateKey]:
    """A Go sumdb private key string, PRIVATE+KEY+name+hash+base64(0x01 || seed)."""
    _, _, name, _, material = skey.split("+", 4)
    raw = base64.b64decode(material)
    assert raw[0] == note.ED25519
    return name, Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_c2sp_signed_note_example_verifies_with_its_verifier_key() -> None:
    case = VECTORS["c2sp_signed_note_example"]
    verifier = note.parse_vkey(case["vkey"])
    opened = note.open_note(case["note"].encode(), [verifier])
    assert opened.text == case["text"]
    assert opened.encode() == case["note"].encode()  # parse and print are byte-exact
    assert note.vkey(verifier) == case["vkey"]
    tampered = case["note"].replace("example message", "example massage").encode()
    with pytest.raises(NoteError, match="does not verify"):
        note.open_note(tampered, [verifier])


def test_go_note_signing_is_byte_identical_to_go() -> None:
    case = VECTORS["go_note_peter_neumann"]
    name, key = go_signer(case["skey"])
    signed = note.sign(case["text"], name, key)
    assert signed.encode().decode() == case["note"]
    verifier = note.ed25519_verifier(name, keys.public_raw(key))
    assert note.vkey(verifier) == case["vkey"]
    assert note.parse_vkey(case["vkey"]) == verifier


def test_unknown_keys_are_ignored_and_a_note_no_known_key_signed_is_refused() -> None:
    case = VECTORS["go_note_peter_neumann"]
    peter, enoch = note.parse_vkey(case["vkey"]), note.parse_vkey(case["enoch_vkey"])
    both = (case["note"] + case["enoch_line"]).encode()
    parsed = note.parse(both)
    assert [s.name for s in parsed.signatures] == ["PeterNeumann", "EnochRoot"]
    assert note.verified_by(parsed, [peter]) == [peter]
    assert note.verified_by(parsed, [peter, enoch]) == [peter, enoch]
    with pytest.raises(NoteError, match="no signature from a known key"):
        note.verified_by(note.parse(case["note"].encode()), [enoch])
    # Same name, other key ID: ignored, so still no known signature.
    stranger = note.Verifier("PeterNeumann", b"\0\0\0\0", peter.public_key)
    with pytest.raises(NoteError, match="no signature from a known key"):
        note.verified_by(parsed, [stranger])


@pytest.mark.parametrize(
    "bad",
    [
        b"no blank line\n\xe2\x80\x94 a AAAAAAA=\n",
        b"text\n\n\xe2\x80\x94 a AAAAAAA=",  # no final newline
        b"text\n\n- a AAAAAAAA\n",  # not an em dash
        b"text\n\n\xe2\x80\x94 a+b AAAAAAAA\n",  # '+' in a key name
        b"text\n\n\xe2\x80\x94 a !!!!\n",  # not base64
        b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAAA\n",  # a control character
        b"\xff\n\n\xe2\x80\x94 a AAAAAAAA\n",  # not UTF-8
    ],
)
def test_malformed_notes_are_refused(bad: bytes) -> None:
    with pytest.raises(NoteError):
        note.parse(bad)


def test_sum_golang_org_checkpoint_parses_and_verifies() -> None:
    """A checkpoint signed by a reference implementation in production (Go's checksum database)."""
    case = VECTORS["sum_golang_org_checkpoint"]
    verifier = note.parse_vkey(case["vkey"])
    opened = note.open_note(case["note"].encode(), [verifier])
    parsed = checkpoint.parse_body(opened.text)
    assert (parsed.origin, parsed.size) == (case["origin"], case["size"])
    assert parsed.body() == opened.text
    with pytest.raises(NoteError):
        note.open_note(case["note"].replace("6476701", "6476702").encode(), [verifier])


def test_go_tree_note_format_is_reproduced() -> None:
    case = VECTORS["go_tlog_format_tree"]
    record_hash = merkle.leaf_hash(case["record"].encode())
    made = checkpoint.Checkpoint("go.sum database tree", case["size"], record_hash)
    assert made.body() == case["text"]
    assert checkpoint.parse_body(case["text"]) == made


def test_c2sp_checkpoint_and_cosignature_examples_parse_exactly() -> None:
    case = VECTORS["c2sp_checkpoint_example"]
    parsed = note.parse(case["cosigned_note"].encode())
    body = checkpoint.parse_body(parsed.text)
    assert (body.origin, body.size) == ("example.com/behind-the-sofa", 20852163)
    assert parsed.encode().decode() == case["cosigned_note"]
    witness = parsed.signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert len(witness.signature) == 8 + 64  # a timestamped Ed25519 signature
    timestamp = int.from_bytes(witness.signature[:8], "big")
    assert timestamp == case["cosignature_timestamp"]
    assert cosignature.message(parsed.text, timestamp).decode() == case["cosigned_message"]


@pytest.mark.parametrize(
    "text",
    [
        "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2==\n",  # not 32 bytes
        "origin\n12\n",
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",  # empty extension
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        checkpoint.parse_body(text)


def test_coordinator_checkpoint_round_trip_and_origin_binding() -> None:
    key = keys.generate()
    raw = keys.public_raw(key)
    origin = checkpoint.origin_for(raw)
    made = checkpoint.Checkpoint(origin, 3, merkle.leaf_hash(b"x"))
    signed = checkpoint.sign(made, key).encode()
    assert signed.decode().startswith(f"{origin}\n3\n")
    assert signed.decode().split("\n\n")[1].startswith(f"\N{EM DASH} {origin} ")
    assert checkpoint.open_checkpoint(signed, origin, raw)[0] == made
    other = keys.generate()
    with pytest.raises(NoteError):
        checkpoint.open_checkpoint(signed, origin, keys.public_raw(other))
    forged = checkpoint.sign(checkpoint.Checkpoint("elsewhere/log", 3, made.root_hash), key)
    with pytest.raises(NoteError):
        checkpoint.open_checkpoint(forged.encode(), origin, raw)


def test_cosignature_v1_key_id_message_and_verification() -> None:
    witness_key = keys.generate()
    raw = keys.public_raw(witness_key)
    name = cosignature.witness_name("lab-a")
    cosigner = cosignature.Cosigner(name, raw)
    # Key IDs: type 0x04 for cosignatures, 0x01 for plain note signatures, per signed-note.
    assert (
        cosigner.key_id
        == __import__("hashlib").sha256(name.encode() + b"\n\x04" + raw).digest()[:4]
    )
    assert cosigner.key_id != note.key_id(name, note.ED25519, raw)
    log_key = keys.generate()
    made = checkpoint.Checkpoint("log.example/a", 7, merkle.leaf_hash(b"y"))
    signed = checkpoint.sign(made, log_key)
    line = cosignature.cosign(made.body(), name, witness_key, 1_700_000_000)
    assert line.signature[:8] == (1_700_000_000).to_bytes(8, "big")
    cosigned = note.parse(signed.with_signature(line).encode())
    found, bad = cosignature.verified_cosignatures(cosigned, [cosigner])
    assert [(c.cosigner, c.timestamp) for c in found] == [(cosigner, 1_700_000_000)] and not bad
    # The log's own signature still verifies on the cosigned note, and cosignatures are not
    # plain note signatures (a type 0x01 verifier of the witness key ignores them).
    note.verified_by(cosigned, [checkpoint.log_verifier("log.example/a", keys.public_raw(log_key))])
    with pytest.raises(NoteError):
        note.verified_by(cosigned, [note.ed25519_verifier(name, raw)])
    # Moved onto another checkpoint, the cosignature fails; a changed timestamp fails too.
    other = checkpoint.sign(checkpoint.Checkpoint("log.example/a", 7, bytes(32)), log_key)
    moved = note.parse(other.with_signature(line).encode())
    assert cosignature.verified_cosignatures(moved, [cosigner]) == (
        [],
        [f"the cosignature of {name} does not verify on this checkpoint"],
    )
    shifted = note.Signature(line.name, line.key_id, (1).to_bytes(8, "big") + line.signature[8:])
    with pytest.raises(NoteError):
        cosignature.verify_line(made.body(), shifted, cosigner)
