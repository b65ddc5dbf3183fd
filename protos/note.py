"""Signed notes as in C2SP signed-note (https://c2sp.org/signed-note), Ed25519 only.

    <text ending in a newline>
    <blank line>
    — <key name> base64(4-byte key ID || signature)      (one line per signature)

The text is everything up to the last blank line. A signature line names a key by (name, key ID);
verifiers ignore lines from keys they do not know, must verify lines from keys they know, and
reject a note that no known key signed. Key IDs are
SHA-256(name || 0x0A || signature type || public key)[:4]; signature type 0x01 is a plain
Ed25519 signature over the text (this module), 0x04 a timestamped cosignature
(protos/cosignature.py). A verifier key ("vkey") is written name+hex(key ID)+base64(type || key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protos.errors import SignatureError
from protos.keys import public_raw

ED25519 = 0x01
DASH = "\N{EM DASH} "
MAX_SIGNATURES = 100  # the specification asks for at least 16


class NoteError(SignatureError):
    """A note is malformed, or its signatures do not verify."""


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    check_name(name)
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    ).digest()[:4]


def check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


@dataclass(frozen=True)
class Signature:
    """One signature line: the key's name and ID, and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{DASH}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """A note's text (with its final newline) and its signature lines, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")

    def with_signature(self, signature: Signature) -> Note:
        """This note with one more signature line; a line from the same key replaces its own."""
        kept = tuple(
            s for s in self.signatures if (s.name, s.key_id) != (signature.name, signature.key_id)
        )
        return Note(self.text, kept + (signature,))


@dataclass(frozen=True)
class Verifier:
    """A trusted key: its name, ID, and how to check a signature line made with it."""

    name: str
    key_id: bytes
    public_key: bytes
    signature_type: int = ED25519

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


def ed25519_verifier(name: str, public_key: bytes) -> Verifier:
    return Verifier(name, key_id(name, ED25519, public_key), public_key)


def vkey(verifier: Verifier) -> str:
    material = base64.b64encode(bytes([verifier.signature_type]) + verifier.public_key)
    return f"{verifier.name}+{verifier.key_id.hex()}+{material.decode('ascii')}"


def parse_vkey(text: str) -> Verifier:
    """An Ed25519 (type 0x01) verifier key, name+hex(key ID)+base64(0x01 || public key)."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"a verifier key is name+keyid+key, not {text!r}")
    name, hex_id, material = parts
    try:
        raw = base64.b64decode(material, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"verifier key {text!r} is not hex and base64 where it should be") from exc
    if len(raw) != 33 or raw[0] != ED25519 or len(wanted) != 4:
        raise NoteError(f"verifier key {text!r} is not an Ed25519 (type 0x01) key")
    verifier = ed25519_verifier(name, raw[1:])
    if verifier.key_id != wanted:
        raise NoteError(f"verifier key {text!r} names key ID {hex_id}, not its own")
    return verifier


def sign_text(text: str, name: str, key: Ed25519PrivateKey) -> Signature:
    """An Ed25519 (type 0x01) signature line over the note text."""
    check_text(text)
    return Signature(name, key_id(name, ED25519, public_raw(key)), key.sign(text.encode("utf-8")))


def sign(text: str, name: str, key: Ed25519PrivateKey) -> Note:
    return Note(text, (sign_text(text, name, key),))


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text must not contain control characters other than newline")


def parse(data: bytes) -> Note:
    """The text and signature lines of a signed note; nothing is verified here."""
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("a signed note must be UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in whole):
        raise NoteError("a signed note must not contain control characters other than newline")
    split = whole.rfind("\n\n")
    if split < 0 or not whole.endswith("\n"):
        raise NoteError("a signed note is text, a blank line, and signature lines")
    text, block = whole[: split + 1], whole[split + 2 :]
    signatures = [parse_line(line) for line in block.removesuffix("\n").split("\n")]
    if len(signatures) > MAX_SIGNATURES:
        raise NoteError(f"the note has {len(signatures)} signatures, more than {MAX_SIGNATURES}")
    return Note(text, tuple(signatures))


def parse_line(line: str) -> Signature:
    """One signature line, "— name base64(key ID || signature)", without its newline."""
    line = line.removesuffix("\n")
    if not line.startswith(DASH):
        raise NoteError(f"not a signature line: {line[:60]!r}")
    name, sep, encoded = line[len(DASH) :].partition(" ")
    check_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise NoteError(f"the signature of {name} is not base64") from exc
    if not sep or len(raw) < 5:
        raise NoteError(f"the signature line of {name} is too short")
    return Signature(name, raw[:4], raw[4:])


def verified_by(note: Note, verifiers: Iterable[Verifier]) -> list[Verifier]:
    """The known keys whose signature lines verify on the note; raises NoteError if a known key's
    line does not verify, or if no known key signed at all."""
    known = {(v.name, v.key_id): v for v in verifiers}
    text = note.text.encode("utf-8")
    good: list[Verifier] = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(text, signature.signature):
            raise NoteError(f"the signature of {signature.name} on the note does not verify")
        if verifier not in good:
            good.append(verifier)
    if not good:
        raise NoteError(
            "the note carries no signature from a known key "
            f"({', '.join(sorted(v.name for v in known.values())) or 'none given'})"
        )
    return good


def open_note(data: bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse and verify: the note, if at least one known key signed it and none failed."""
    note = parse(data)
    verified_by(note, verifiers)
    return note
