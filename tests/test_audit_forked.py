"""`rarenet-audit verify` recomputes a network bundle's statistics in a forked child process while
it checks the signatures (auditor/forked.py), giving the child each payload it reads. Every
verdict line is the one verifying in a single process gives, for a real bundle and for tampered
ones (the child decodes the payloads: a payload that is not a summary, or names another site,
fails its leaf with the same reason, in the same order of checks), with the report written by
method.report_bytes (compared by digest) or by json.dumps as before (compared figure by figure);
a child that fails leaves the parent to do the work itself; the child's verdict counts only for
the very payloads and report the parent read; no process is left behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import auditor.verify as verify_module
from auditor.forked import Forked
from auditor.verify import verify
from method.report_bytes import benchmark_bytes
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
        # large enough that its missed MET exon 14 cases are flagged (the flags are reworded)
        net.submit("lab-1", rows=12000, profile="dna_only")
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

    def unsigned_change(data: bytes) -> bytes:
        envelope = wire.parse_envelope(data)
        envelope.payload = envelope.payload.replace(b'"lab-0"', b'"lab-1"')
        return wire.envelope_bytes(envelope)

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
        "a payload changed after signing": {"change": {"envelopes/0.envelope": unsigned_change}},
        "a changed figure": {
            "change": {"report/benchmark.json": lambda d: d.replace(b'"valid":', b'"valid":1', 1)}
        },
        "written by report_bytes": {"change": {REPORT: lambda d: benchmark_bytes(json.loads(d))}},
        "written by report_bytes, reworded": {
            "change": {REPORT: lambda d: reworded(benchmark_bytes(json.loads(d)))}
        },
        "written by report_bytes, a changed figure": {
            "change": {REPORT: lambda d: changed(benchmark_bytes(json.loads(d)))}
        },
        "written by json.dumps": {"change": {REPORT: lambda d: as_json_dumps(json.loads(d))}},
        "written by json.dumps, a changed figure": {
            "change": {REPORT: lambda d: changed(as_json_dumps(json.loads(d)))}
        },
    }
    made = {"as made": base}
    for n, (name, change) in enumerate(tampered.items()):
        made[name] = rewrite(base, root / f"tampered-{n}.zip", key=key, **change)
    yield made


REPORT = "report/benchmark.json"


def as_json_dumps(report: dict[str, Any]) -> bytes:
    """As coordinators wrote benchmark.json before method.report_bytes."""
    text = json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode() + b"\n"


def changed(report: bytes) -> bytes:
    """One count in the report made larger."""
    assert b'"valid":' in report
    return report.replace(b'"valid":', b'"valid":1', 1)


def reworded(report: bytes) -> bytes:
    """Every flag message of the report written otherwise (prose: not compared)."""
    parsed = json.loads(report)
    flags = [flag for site in parsed["sites"].values() for flag in site["flags"]]
    assert flags, "the fixture's network raises flags"
    for flag in flags:
        flag["message"] = 'reworded: "quoted", \\ and 中文'
    return benchmark_bytes(parsed)


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
    assert "does not verify" in failed["a payload changed after signing"][0][2]
    for name in (
        "a changed figure",
        "written by report_bytes, a changed figure",
        "written by json.dumps, a changed figure",
    ):
        assert [c[0] for c in failed[name]] == ["statistics"], name
        assert "/valid" in failed[name][0][2], name  # where it differs is said
    for name in ("written by report_bytes", "written by report_bytes, reworded"):
        assert not failed[name] and forked[name][1], name
    assert not failed["written by json.dumps"] and forked["written by json.dumps"][1]


def test_payloads_the_parent_decodes_for_the_child_give_the_same_verdicts(
    bundles, monkeypatch
) -> None:
    """While the child is behind, the parent decodes payloads and gives them serialised, and
    checks their signatures once all are given (each envelope read again): with every payload so
    given, each verdict is still the single-process one (a payload that does not decode is given
    as signed, and fails its leaf with the same reason)."""
    tried = (
        "as made",
        "not JSON",
        "unknown field",
        "another site, no proof",
        "an EQA response",
        "another leaf's receipt",
        "a payload changed after signing",
        "written by report_bytes",
        "written by report_bytes, a changed figure",
    )
    monkeypatch.setattr(verify_module, "can_fork", lambda: False)
    alone = {name: verdicts(bundles[name]) for name in tried}
    monkeypatch.undo()
    forms: list[bytes] = []
    real_frames: Any = verify_module._payload_frames

    def noted(*args: Any) -> tuple[bytes, bytes]:
        head, body = real_frames(*args)
        forms.append(head[41:42])
        return head, body

    monkeypatch.setattr(verify_module, "_payload_frames", noted)
    monkeypatch.setattr(Forked, "behind", lambda _self: 1)  # the child always behind
    for name in tried:
        assert verdicts(bundles[name]) == alone[name], name
    # decoded here, but for the payloads that do not decode: not JSON, an unknown field (as
    # signed summaries), a summary signed as an EQA response (as a signed EQA response)
    assert sorted(form for form in forms if form != b"s") == [b"Q", b"S", b"S"]
    assert no_child_left()


def child_verdicts(bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """{bundle: the child's verdict as the parent received it}, of each bundle verified."""
    real: Any = verify_module._verdict
    received: dict[str, Any] = {}
    name = ""

    def recorded(*args: Any) -> Any:
        received[name] = real(*args)
        return received[name]

    monkeypatch.setattr(verify_module, "_verdict", recorded)
    for name in bundles:
        verify(bundles[name])
    return received


def test_a_report_written_as_the_recomputation_is_compared_by_digest(bundles, monkeypatch) -> None:
    """The recomputation written by method.report_bytes is the report's bytes but for the flag
    messages: the child says so by their digest. A report written otherwise is given to the child
    and compared figure by figure (its SHA-256 sent back); a changed figure is found either way."""
    tried = (
        "written by report_bytes",
        "written by report_bytes, reworded",
        "written by report_bytes, a changed figure",
        "written by json.dumps",
    )
    received = child_verdicts({name: bundles[name] for name in tried}, monkeypatch)
    for name in tried[:2]:
        assert received[name]["same"] is True and "prose_free_sha256" in received[name], name
    by_figures = received["written by report_bytes, a changed figure"]
    assert by_figures["same"] is False and "report_sha256" in by_figures
    old = received["written by json.dumps"]
    with zipfile.ZipFile(bundles["written by json.dumps"]) as z:
        assert old == {
            **old,
            "same": True,
            "report_sha256": hashlib.sha256(z.read(REPORT)).hexdigest(),
        }


def test_without_a_child_a_report_written_as_the_recomputation_is_not_compared_piece_by_piece(
    bundles, monkeypatch
) -> None:
    monkeypatch.setattr(verify_module, "can_fork", lambda: False)

    def not_called(*_args: Any) -> bool:
        raise AssertionError("the report's bytes are the recomputation's: compared by digest")

    monkeypatch.setattr(verify_module, "_same_bytes", not_called)
    monkeypatch.setattr(verify_module, "_same_figures", not_called)
    for name in ("written by report_bytes", "written by report_bytes, reworded"):
        checks, verified = verdicts(bundles[name])
        assert verified and all(ok for _name, ok, _detail in checks), name


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


def test_a_childs_digest_of_another_report_is_not_believed(bundles, monkeypatch) -> None:
    """The child's digest of the report counts only if it is the digest of the report read by the
    parent: a child that names the digest of the report as made, for a bundle whose report was
    changed, is not believed; the parent recomputes and finds the changed figure."""
    with zipfile.ZipFile(bundles["written by report_bytes"]) as z:
        as_made = verify_module._prose_free_sha256(z.read(REPORT))
    real: Any = verify_module._recompute

    def other_report(*args: Any) -> None:
        *rest, send = args

        def altered(message: dict[str, Any]) -> None:
            if "same" in message or message.get("want") == "report":
                envelopes = verify_module._envelopes_digest(received)
                message = {
                    "same": True,
                    "prose_free_sha256": as_made,
                    "envelopes_sha256": envelopes,
                }
            send(message)

        received: list[tuple[int, str]] = []
        take = rest[-1]

        body_next = [False]  # a payload's head and its body come in turn

        def noted() -> bytes | None:  # the child's envelopes digest, as an honest child makes it
            frame = take()
            if body_next[0]:
                body_next[0] = False
            elif frame is not None and frame[:1] == b"P":
                received.append((int.from_bytes(frame[1:9], "big"), frame[9:41].hex()))
                body_next[0] = True
            return frame

        real(*rest[:-1], noted, altered)

    monkeypatch.setattr(verify_module, "_recompute", other_report)
    checks, verified = verdicts(bundles["written by report_bytes, a changed figure"])
    assert not verified
    assert [name for name, ok, _ in checks if not ok] == ["statistics"]
    assert no_child_left()


def test_the_verdict_is_on_the_report_the_parent_read_whatever_the_file_holds_later(
    bundles, tmp_path, monkeypatch
) -> None:
    """The bundle's file replaced while it is verified (by the report as made, as the child
    starts): the child recomputes from what the parent read and gives it, and the report the
    parent read, with its changed figure, fails."""
    path = tmp_path / "bundle.zip"
    shutil.copyfile(bundles["written by report_bytes, a changed figure"], path)
    honest = tmp_path / "honest.zip"
    shutil.copyfile(bundles["written by report_bytes"], honest)
    real: Any = verify_module._recompute

    def replacing(*args: Any) -> None:
        os.replace(honest, path)
        real(*args)

    monkeypatch.setattr(verify_module, "_recompute", replacing)
    checks, verified = verdicts(path)
    assert not honest.exists()  # the child did replace the file
    assert not verified
    assert [name for name, ok, _ in checks if not ok] == ["statistics"]


def test_the_parent_gives_without_waiting_for_the_child_to_take(tmp_path) -> None:
    """Many times the pipe's room is given while the child takes nothing yet (it waits for a file
    the parent makes once it gave all): the parent does not wait; the child then takes every
    piece, in order."""
    go = tmp_path / "go"
    pieces = [bytes([n]) * 2**20 for n in range(24)]

    def work(take: Callable[[], bytes | None], send: Callable[[dict[str, Any]], None]) -> None:
        while not go.exists():
            time.sleep(0.01)
        taken = hashlib.sha256()
        count = 0
        while (piece := take()) is not None:
            taken.update(piece)
            count += 1
        send({"count": count, "sha256": taken.hexdigest()})

    child = Forked(work)
    try:
        given: list[bool] = []
        giver = threading.Thread(target=lambda: given.extend(child.give(p) for p in pieces))
        giver.start()
        giver.join(timeout=30)
        assert not giver.is_alive(), "the parent waited for the child to take"
        assert given == [True] * len(pieces)
        go.touch()
        assert child.give_no_more()  # the child's take gives None once it took every piece
        expected = hashlib.sha256(b"".join(pieces)).hexdigest()
        assert child.receive() == {"count": len(pieces), "sha256": expected}
    finally:
        child.stop()
    assert no_child_left()


def test_giving_to_a_child_that_ended_says_so(tmp_path) -> None:
    def work(take: Callable[[], bytes | None], send: Callable[[dict[str, Any]], None]) -> None:
        raise MemoryError("the child ran out of memory")

    child = Forked(work)
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it ended (not reaped yet)
        assert not child.give(bytes(2**20))  # its end of the pipe is closed
        assert not child.give(b"more") and not child.flush()
        assert child.receive() is None  # it sent nothing
    finally:
        child.stop()
    assert no_child_left()
