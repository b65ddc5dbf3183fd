"""`rarenet-audit verify` recomputes a network bundle's statistics in a forked child process while
it checks the signatures (auditor/forked.py). Every verdict line is the one verifying in a single
process gives, for a real bundle and for tampered ones (the child decodes the payloads: a
payload that is not a summary, or names another site, fails its leaf with the same reason, in
the same order of checks); a child that fails leaves the parent to do the work itself; no
process is left behind."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import auditor.verify as verify_module
from auditor.verify import verify
from protos import dsse, wire
from tests.test_audit import rewrite
from tests.test_audit_kept_benchmark import Network

Verdicts = list[tuple[str, bool, str]]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A real bundle (two labs, one of which revised its summary) and tampered copies, their
    manifests re-signed by the coordinator's key so that the leaf checks are reached."""
    root = tmp_path_factory.mktemp("forked")
    net = Network(root)
    try:
        net.submit("lab-0")
        net.submit("lab-1", profile="dna_only")
        net.submit("lab-0", rows=500)
        base = net.bundle("base")
        key, lab0 = net.data.signing_key(), net.nodes["lab-0"].config.signing_key()
    finally:
        net.close()
    with zipfile.ZipFile(base) as z:
        payload = wire.parse_envelope(z.read("envelopes/0.envelope")).payload
        other_receipt = z.read("receipts/1.envelope")
    assert b'"lab-0"' in payload

    def signed(data: bytes, payload_type: str = wire.SITE_SUMMARY) -> Callable[[bytes], bytes]:
        return lambda _old: wire.envelope_bytes(dsse.sign(payload_type, data, lab0))

    tampered: dict[str, dict[str, Any]] = {
        "not JSON": {"change": {"envelopes/0.envelope": signed(b'{"site_id": "lab-0", ')}},
        "unknown field": {
            "change": {"envelopes/0.envelope": signed(payload.replace(b"{", b'{"x": 1, ', 1))}
        },
        "another site, no proof": {
            "change": {"envelopes/0.envelope": signed(payload.replace(b'"lab-0"', b'"lab-1"'))},
            "remove": ["proofs/0.json"],
        },
        "not JSON, no receipt": {
            "change": {"envelopes/0.envelope": signed(b"[]")},
            "remove": ["receipts/0.envelope"],
        },
        "an EQA response": {"change": {"envelopes/0.envelope": signed(payload, wire.EQA_RESPONSE)}},
        "another leaf's receipt": {"change": {"receipts/0.envelope": lambda _d: other_receipt}},
        "a changed figure": {
            "change": {"report/benchmark.json": lambda d: d.replace(b'"valid":', b'"valid":1', 1)}
        },
    }
    made = {"as made": base}
    for n, (name, change) in enumerate(tampered.items()):
        made[name] = rewrite(base, root / f"tampered-{n}.zip", key=key, **change)
    yield made


def verdicts(path: Path) -> tuple[Verdicts, bool]:
    result = verify(path)
    return [(c.name, c.ok, c.detail) for c in result.checks], result.verified_report is not None


def no_child_left() -> bool:
    """This process has no child process, running or unreaped."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_every_verdict_is_the_single_process_one(bundles, monkeypatch) -> None:
    forked = {name: verdicts(path) for name, path in bundles.items()}
    assert no_child_left()
    monkeypatch.setattr(verify_module, "can_fork", lambda: False)
    for name, path in bundles.items():
        assert forked[name] == verdicts(path), name
    checks, verified = forked["as made"]
    assert verified and all(ok for _name, ok, _detail in checks)
    failed = {name: [c for c in checks if not c[1]] for name, (checks, _) in forked.items()}
    assert failed["not JSON"][0][:2] == ("leaf 0", False)
    assert "not a valid SiteSummary" in failed["not JSON"][0][2]
    assert "unknown field 'x'" in failed["unknown field"][0][2]
    assert "names site lab-1 but the key is lab-0's" in failed["another site, no proof"][0][2]
    assert "SiteSummary" in failed["not JSON, no receipt"][0][2]  # the payload is checked first
    assert "not a valid EqaResponse" in failed["an EQA response"][0][2]
    assert "names another envelope" in failed["another leaf's receipt"][0][2]
    assert [c[0] for c in failed["a changed figure"]] == ["statistics"]


def test_a_child_that_fails_leaves_the_work_to_the_parent(bundles, monkeypatch) -> None:
    tried = ("as made", "not JSON, no receipt", "a changed figure")
    expected = {name: verdicts(bundles[name]) for name in tried}

    def fails(*_args: Any) -> None:
        raise MemoryError("the child ran out of memory")

    monkeypatch.setattr(verify_module, "_recompute", fails)
    for name in tried:
        assert verdicts(bundles[name]) == expected[name], name
    assert no_child_left()


def test_a_child_that_says_the_report_agrees_with_other_envelopes_is_not_believed(
    bundles, monkeypatch
) -> None:
    """The verdict counts only for the envelopes the parent checked: sent with another digest of
    them, the parent recomputes itself, and the changed figure is found."""
    real: Any = verify_module._recompute

    def other_digest(*args: Any) -> None:
        *rest, send = args

        def altered(message: dict[str, Any]) -> None:
            if "same" in message:
                message = {**message, "same": True, "envelopes_sha256": "0" * 64}
            send(message)

        real(*rest, altered)

    monkeypatch.setattr(verify_module, "_recompute", other_digest)
    checks, verified = verdicts(bundles["a changed figure"])
    assert not verified
    assert [name for name, ok, _ in checks if not ok] == ["statistics"]


def test_a_childs_fields_for_bytes_other_than_those_checked_are_not_believed(
    bundles, monkeypatch
) -> None:
    """The fields a leaf's inclusion proof is built from count only for the very bytes the parent
    checked: a child that read other bytes (a file changed under it) names their digest, and the
    parent decodes its own envelope instead, so a leaf is judged on what it signed."""
    real: Any = verify_module._recompute
    expected = verdicts(bundles["as made"])

    def other_bytes(*args: Any) -> None:
        *rest, send = args

        def altered(message: dict[str, Any]) -> None:
            if "fields" in message:  # another period and sequence, from other bytes
                message = {
                    "fields": {
                        index: [kind, site, "2031Q1", 99, "0" * 64]
                        for index, (kind, site, *_rest) in message["fields"].items()
                    }
                }
            send(message)

        real(*rest, altered)

    monkeypatch.setattr(verify_module, "_recompute", other_bytes)
    assert verdicts(bundles["as made"]) == expected
    assert no_child_left()
