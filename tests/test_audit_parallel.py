"""A national bundle's leaves are checked by a pool of processes: the verdict is the same, check
for check, as one process gives, for an honest bundle and for a tampered one."""

from __future__ import annotations

from pathlib import Path

import pytest

import auditor.verify as verifying
from protos import wire
from tests.test_audit import bundle, first_leaf, rewrite  # noqa: F401 - the fixture, a re-signer


def checks(path: Path) -> list[tuple[str, bool, str]]:
    return [(c.name, c.ok, c.detail) for c in verifying.verify(path).checks]


def in_pool_and_alone(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    monkeypatch.setattr(verifying, "_cores", lambda: 2)
    monkeypatch.setattr(verifying, "PARALLEL_FROM", 1)
    pooled = checks(path)
    monkeypatch.setattr(verifying, "PARALLEL_FROM", 10**9)
    return pooled, checks(path)


def test_a_pool_gives_the_same_checks_as_one_process(bundle, monkeypatch) -> None:  # noqa: F811
    path, _ = bundle
    pooled, alone = in_pool_and_alone(path, monkeypatch)
    assert pooled == alone
    assert all(ok for _, ok, _ in pooled)
    assert sum(name.startswith("leaf ") for name, _, _ in pooled) == 3


def test_a_pool_finds_a_tampered_leaf_as_one_process_does(bundle, tmp_path, monkeypatch) -> None:  # noqa: F811
    path, key = bundle
    leaf = first_leaf(path)

    def flip(data: bytes) -> bytes:
        envelope = wire.parse_envelope(data)
        payload = bytearray(envelope.payload)
        payload[payload.index(b'"tests": ') + 9] ^= 1
        envelope.payload = bytes(payload)
        return wire.envelope_bytes(envelope)

    forged = rewrite(path, tmp_path / "forged.zip", key=key, change={leaf: flip})
    pooled, alone = in_pool_and_alone(forged, monkeypatch)
    assert pooled == alone
    number = leaf.split("/")[1].split(".")[0]
    failed = {name: detail for name, ok, detail in pooled if not ok}
    assert "does not verify" in failed[f"leaf {number}"]
