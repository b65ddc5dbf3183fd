"""DSSE-style envelopes: sign bytes, verify bytes, never re-serialise what was signed.

    PAE(type, body) = b"DSSEv1 " + len(type) + b" " + type + b" " + len(body) + b" " + body

A signature's keyid is the lower-case hex SHA-256 of the raw 32-byte Ed25519 public key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protos.errors import SignatureError
from protos.keys import public_raw
from protos.rarenet.v1.envelope_pb2 import Envelope, Signature


def pae(payload_type: str, payload: bytes) -> bytes:
    """The pre-authentication encoding that every signature covers."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def keyid(public_key: bytes | Ed25519PublicKey) -> str:
    raw = public_key if isinstance(public_key, bytes) else public_raw(public_key)
    return hashlib.sha256(raw).hexdigest()


def sign(payload_type: str, payload: bytes, *keys: Ed25519PrivateKey) -> Envelope:
    """A new envelope over payload, signed by every key given (in order)."""
    message = pae(payload_type, payload)
    return Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=[Signature(keyid=keyid(k.public_key()), sig=k.sign(message)) for k in keys],
    )


def add_signature(envelope: Envelope, key: Ed25519PrivateKey) -> Envelope:
    envelope.signatures.append(
        Signature(
            keyid=keyid(key.public_key()),
            sig=key.sign(pae(envelope.payload_type, envelope.payload)),
        )
    )
    return envelope


def sole_signer(envelope: Envelope) -> str:
    """The keyid of an envelope that must carry exactly one signature, as a site's submission
    does. Intake and auditors both call this, so they agree on which signature counts: the only
    one. SignatureError for none or more than one (a junk signature in front of a good one would
    otherwise be accepted by one reader and rejected by another)."""
    count = len(envelope.signatures)
    if count != 1:
        raise SignatureError(
            f"the envelope carries {count} signatures; a site's submission is signed by exactly "
            "one key, the site's enrolled key"
        )
    return str(envelope.signatures[0].keyid)


def verify(
    envelope: Envelope, trusted: Mapping[str, bytes], *, expected_type: str | None = None
) -> set[str]:
    """Check the envelope's signatures against trusted {keyid: raw public key}.

    Returns the keyids whose signatures verified (at least one). Raises SignatureError when the
    payload type is not the expected one, when no signature is by a trusted key, or when a
    signature by a trusted key does not verify (one bad signature spoils the envelope).
    """
    if expected_type is not None and envelope.payload_type != expected_type:
        raise SignatureError(
            f"payload type is {envelope.payload_type!r}, expected {expected_type!r}"
        )
    if not envelope.signatures:
        raise SignatureError("the envelope carries no signature")
    message = pae(envelope.payload_type, envelope.payload)
    verified: set[str] = set()
    for signature in envelope.signatures:
        raw = trusted.get(signature.keyid)
        if raw is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature.sig, message)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"the signature by key {signature.keyid[:16]}… does not verify: "
                "the envelope was changed after signing or was signed by another key"
            ) from exc
        verified.add(signature.keyid)
    if not verified:
        names = ", ".join(s.keyid[:16] + "…" for s in envelope.signatures)
        raise SignatureError(f"no signature is by a trusted key (signed by {names})")
    return verified
