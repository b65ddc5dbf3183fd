"""Whose key signed the manifest, and whether the auditor pinned it.

A key's fingerprint is the full lower-case hex SHA-256 of its raw 32-byte Ed25519 public key (the
same as its DSSE key id), as `rarenet-coordinator key show` prints it. Without a pinned key the
bundle vouches for itself: anyone can make one that verifies, so the verdict says so loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditor.bundle import BundleUnreadable
from protos import dsse, keys
from protos.errors import ContractError

MANIFEST_TYPE = "application/vnd.rarenet.audit-manifest.v1+json"


def fingerprint(raw: bytes) -> str:
    return dsse.keyid(raw)


def pem_raw(pem: bytes) -> bytes:
    """The raw public key of a PEM (or raw 32-byte) Ed25519 public key; ContractError if not one."""
    if len(pem) == 32:
        return pem
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ContractError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ContractError("not an Ed25519 public key")
    return keys.public_raw(key)


def load_pinned(path: Path) -> bytes:
    """The auditor's pinned key; BundleUnreadable (exit 2) when the file cannot serve as one."""
    try:
        return pem_raw(path.read_bytes())
    except OSError as exc:
        raise BundleUnreadable(f"the pinned key {path} cannot be read: {exc}") from exc
    except ContractError as exc:
        raise BundleUnreadable(
            f"the pinned key {path} is {exc}; pass the PEM file `rarenet-coordinator key show` "
            "printed"
        ) from exc


@dataclass(frozen=True)
class Signer:
    """The verdict on MANIFEST.sig: ok, why, the key the rest of the bundle is checked against
    (None when the manifest did not verify), its fingerprint and whether it was pinned."""

    ok: bool
    detail: str
    raw: bytes | None
    fingerprint: str
    pinned: bool


def _signs(raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def manifest_signer(
    files: dict[str, bytes], manifest: dict[str, Any], pinned: bytes | None
) -> Signer:
    message = dsse.pae(MANIFEST_TYPE, files["MANIFEST.json"])
    signature = files["MANIFEST.sig"]
    claimed = str(manifest.get("coordinator_keyid", ""))
    try:
        bundled: bytes | None = pem_raw(files["keys/coordinator.pem"])
    except (KeyError, ContractError):
        bundled = None
    if pinned is not None:
        fp = fingerprint(pinned)
        if not _signs(pinned, signature, message):
            if bundled is not None and _signs(bundled, signature, message):
                why = (
                    f"the manifest is signed by key {fingerprint(bundled)}, you pinned {fp}: this "
                    "bundle is not from the coordinator whose key you hold (if the centre changed "
                    "its key, get the new one from it by another channel)"
                )
            elif claimed and claimed != fp:
                why = (
                    f"the manifest names key {claimed}, you pinned {fp}, and its signature does "
                    "not verify with the pinned key"
                )
            else:
                why = (
                    f"MANIFEST.sig does not verify with the pinned key {fp}: MANIFEST.json was "
                    "changed after it was signed"
                )
            return Signer(False, why, None, fp, True)
        if claimed != fp:
            return Signer(
                False, f"MANIFEST.json names key {claimed or '(none)'}, not {fp}", None, fp, True
            )
        if bundled != pinned:
            return Signer(
                False,
                f"keys/coordinator.pem is not the pinned key {fp} (the openssl steps would use it)",
                None,
                fp,
                True,
            )
        return Signer(True, f"signed by the pinned coordinator key {fp}", pinned, fp, True)
    if bundled is None:
        return Signer(
            False,
            "the bundle holds no readable keys/coordinator.pem and no key is pinned: pass "
            "--coordinator-key with the key the centre gave you",
            None,
            "",
            False,
        )
    fp = fingerprint(bundled)
    if not _signs(bundled, signature, message):
        return Signer(
            False,
            f"MANIFEST.sig does not verify with the bundle's own key {fp}: MANIFEST.json was "
            "changed after it was signed, or signed by another key",
            None,
            fp,
            False,
        )
    if claimed != fp:
        return Signer(
            False, f"MANIFEST.json names key {claimed or '(none)'}, not {fp}", None, fp, False
        )
    return Signer(
        True,
        f"signed by coordinator key {fp}, the bundle's own: NOT pinned",
        bundled,
        fp,
        False,
    )
