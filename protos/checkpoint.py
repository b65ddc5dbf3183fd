"""Checkpoints as in C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): a signed note
whose text is the log's origin line, its tree size in decimal, and its root hash in base64.

    rarenet.coordinator/3f9a51c2d04e8b17
    42
    5dnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=

    — rarenet.coordinator/3f9a51c2d04e8b17 <base64(key ID || Ed25519 signature)>

The coordinator signs its checkpoints with the key that signs its tree heads, under a key name
equal to its origin; the origin is derived from that key, so whoever pins the coordinator's key
knows its origin too. Witness cosignatures (protos/cosignature.py) are further signature lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import note
from protos.note import Note, NoteError

ORIGIN_PREFIX = "rarenet.coordinator/"
_SIZE = re.compile(r"(0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text: exactly the bytes every signature and cosignature covers."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"


def origin_for(coordinator_public_key: bytes) -> str:
    """This network's log origin: a fixed prefix and the first 16 hex digits of the SHA-256 of
    the coordinator's raw public key (the same key id its DSSE signatures carry)."""
    return ORIGIN_PREFIX + hashlib.sha256(coordinator_public_key).hexdigest()[:16]


def parse_body(text: str) -> Checkpoint:
    """A checkpoint from note text; raises NoteError unless it is origin, size, root hash."""
    if not text.endswith("\n"):
        raise NoteError("a checkpoint's text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint is an origin line, a size line and a root hash line")
    origin, size, root, *extensions = lines
    if not origin:
        raise NoteError("a checkpoint's origin line must not be empty")
    if not _SIZE.fullmatch(size) or int(size) >= 2**64:
        raise NoteError(
            f"a checkpoint's size must be a decimal without leading zeros, not {size!r}"
        )
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error as exc:
        raise NoteError("a checkpoint's root hash line is not base64") from exc
    if len(root_hash) != 32 or base64.b64encode(root_hash).decode("ascii") != root:
        raise NoteError("a checkpoint's root hash must be 32 bytes in canonical base64")
    if any(not line for line in extensions):
        raise NoteError("a checkpoint's extension lines must not be empty")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def log_verifier(origin: str, coordinator_public_key: bytes) -> note.Verifier:
    return note.ed25519_verifier(origin, coordinator_public_key)


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> Note:
    """The checkpoint as a note signed by the log's key under its origin."""
    return note.sign(checkpoint.body(), checkpoint.origin, key)


def open_checkpoint(data: bytes, origin: str, log_key: bytes) -> tuple[Checkpoint, Note]:
    """Parse a signed checkpoint and check the log's signature and origin."""
    parsed = note.parse(data)
    note.verified_by(parsed, [log_verifier(origin, log_key)])
    checkpoint = parse_body(parsed.text)
    if checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, parsed
