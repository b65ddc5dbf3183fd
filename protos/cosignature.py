"""Ed25519 checkpoint cosignatures as in C2SP tlog-cosignature (cosignature/v1).

A cosignature is one more signature line on a checkpoint note:

    — <witness name> base64(key ID || u64 timestamp, big-endian || Ed25519 signature)

with key ID = SHA-256(name || 0x0A || 0x04 || public key)[:4], over the message

    cosignature/v1
    time <timestamp, decimal seconds since the epoch>
    <the checkpoint's note text>

It says: as of that time, the largest consistent tree this witness has seen for the log has
this root hash. In rarenet every enrolled site is a witness and cosigns with its site key, under
an opaque name: WITNESS_PREFIX + the first 16 hex digits of the key's id (SHA-256 of the raw
public key, as dsse.keyid), so that a checkpoint every lab receives names no lab. Auditors map
witness keys to sites through a full audit bundle's keys/witnesses.json. Nodes before this
version cosigned as WITNESS_PREFIX + site id (`witness_name`); those names still verify.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protos import note
from protos.keys import public_raw
from protos.note import NoteError

COSIGNATURE_V1 = 0x04
WITNESS_PREFIX = "rarenet.witness/"


WITNESS_ID_HEX = 16


def witness_id(public_key: bytes) -> str:
    """The opaque id of a witness key: the first 16 hex digits of SHA-256 of the raw key."""
    return hashlib.sha256(public_key).hexdigest()[:WITNESS_ID_HEX]


def opaque_witness_name(public_key: bytes) -> str:
    """The name a site cosigns under: derived from its key, never its site id."""
    return WITNESS_PREFIX + witness_id(public_key)


def witness_name(site_id: str) -> str:
    """The legacy name nodes before opaque witness names cosigned under (it names the site):
    still verified, never made by this version's nodes."""
    return WITNESS_PREFIX + site_id


def witness_of(name: str) -> str | None:
    """What follows the prefix of a rarenet witness name (a witness id, or a legacy site id),
    or None if it is not a rarenet witness name."""
    return name.removeprefix(WITNESS_PREFIX) if name.startswith(WITNESS_PREFIX) else None


def cosigners_of_key(public_key: bytes, site_id: str = "") -> list[Cosigner]:
    """The cosigners one witness key may appear as: its opaque name, and (for checkpoints
    cosigned by earlier nodes, when the site is known) its legacy name."""
    names = [opaque_witness_name(public_key)] + ([witness_name(site_id)] if site_id else [])
    return [Cosigner(name, public_key) for name in names]


def key_id(name: str, public_key: bytes) -> bytes:
    note.check_name(name)
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_V1]) + public_key
    ).digest()[:4]


def message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


@dataclass(frozen=True)
class Cosigner:
    """A witness key as verifiers configure it: name and raw Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who, and when they said they saw the checkpoint."""

    cosigner: Cosigner
    timestamp: int


def cosign(
    checkpoint_text: str, name: str, key: Ed25519PrivateKey, timestamp: int
) -> note.Signature:
    """The signature line a witness adds to the checkpoint note."""
    note.check_text(checkpoint_text)
    if not 0 <= timestamp < 2**63:
        raise NoteError(f"a cosignature's timestamp must be in [0, 2^63), not {timestamp}")
    signed = key.sign(message(checkpoint_text, timestamp))
    return note.Signature(
        name, key_id(name, public_raw(key)), struct.pack(">Q", timestamp) + signed
    )


def verify_line(checkpoint_text: str, line: note.Signature, cosigner: Cosigner) -> Cosignature:
    """Check one signature line made by this cosigner; raises NoteError if it does not verify."""
    if (line.name, line.key_id) != (cosigner.name, cosigner.key_id):
        raise NoteError(f"the signature line of {line.name} is not from cosigner {cosigner.name}")
    if len(line.signature) != 8 + 64:
        raise NoteError(f"the cosignature of {line.name} is not a timestamped Ed25519 signature")
    (timestamp,) = struct.unpack(">Q", line.signature[:8])
    if timestamp >= 2**63:
        raise NoteError(f"the cosignature of {line.name} has a timestamp beyond 2^63 - 1")
    try:
        Ed25519PublicKey.from_public_bytes(cosigner.public_key).verify(
            line.signature[8:], message(checkpoint_text, timestamp)
        )
    except InvalidSignature as exc:
        raise NoteError(
            f"the cosignature of {line.name} does not verify on this checkpoint"
        ) from exc
    return Cosignature(cosigner, timestamp)


def verified_cosignatures(
    parsed: note.Note, cosigners: list[Cosigner]
) -> tuple[list[Cosignature], list[str]]:
    """The cosignatures on the note by known cosigners, and a reason for each line from a known
    cosigner that does not verify (lines from unknown keys are ignored, as signed-note says)."""
    known = {(c.name, c.key_id): c for c in cosigners}
    good: list[Cosignature] = []
    bad: list[str] = []
    for line in parsed.signatures:
        cosigner = known.get((line.name, line.key_id))
        if cosigner is None:
            continue
        try:
            found = verify_line(parsed.text, line, cosigner)
        except NoteError as exc:
            bad.append(str(exc))
            continue
        if all(c.cosigner != cosigner for c in good):
            good.append(found)
    return good, bad
