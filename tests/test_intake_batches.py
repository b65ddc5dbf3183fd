"""The intake answers each envelope of a batch on its own: the batch's signers' keys and sites'
last sequence numbers are read once for the batch (coordinator/intake.py), and each envelope is
still accepted or refused exactly as it would be alone. Real keys, a real SQLite store in
tmp_path; the intake's own thread does the work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator import enrolment, store
from coordinator.config import init
from coordinator.errors import AlreadyRecorded, NotAuthenticated, NotPermitted
from coordinator.intake import Intake
from coordinator.ledger import Ledger
from coordinator.standards import load as load_standard
from coordinator.summary_checks import Vocabulary
from protos import dsse, keys, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.rarenet.v1.envelope_pb2 import Envelope


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Intake]:
    data = init(tmp_path / "coordinator")
    conn = store.connect(data.db)
    ledger = Ledger(conn, data.signing_key())
    running = Intake(conn, ledger, data.db, vocabulary=Vocabulary.of(load_standard(data.standard)))
    yield running
    running.close()
    conn.close()


def _enrol(conn, site: str, key: Ed25519PrivateKey) -> None:
    token, _ = enrolment.add_site(conn, site)
    request = cpb.EnrollPayload(site_id=site, token=token, public_key=keys.public_raw(key))
    enrolment.enroll(conn, dsse.sign(wire.ENROLL, wire.encode(request), key))


def _rotate(conn, site: str, old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> None:
    request = cpb.EnrollPayload(
        site_id=site,
        public_key=keys.public_raw(new),
        previous_keyid=dsse.keyid(old.public_key()),
    )
    enrolment.enroll(conn, dsse.sign(wire.ENROLL, wire.encode(request), new, old))


def _summary(site: str, sequence: int, key: Ed25519PrivateKey, positive: int = 0) -> Envelope:
    payload = wire.encode(
        pb.SiteSummary(
            site_id=site,
            period="2026Q1",
            schema_version=1,
            sequence=sequence,
            standard_version="2026.1",
            strata=[
                pb.StratumCounts(
                    biomarker="EGFR",
                    method="pcr",
                    specimen="tissue",
                    histology_group="all",
                    tests=20,
                    positive=positive or sequence,
                    negative=20 - (positive or sequence),
                )
            ],
        )
    )
    return dsse.sign(wire.SITE_SUMMARY, payload, key)


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def _submit_all(intake: Intake, plug: Envelope, envelopes: list[Envelope]) -> list[object]:
    """What each caller got (a SubmitResponse or the error raised): `plug` first, alone, then
    each of `envelopes` from a thread of its own, queued in this order while the intake holds the
    plug at its commit, so that they are checked and committed together, after it."""
    sent = [plug, *envelopes]
    answers: list[object] = [None] * len(sent)

    def call(i: int) -> None:
        try:
            answers[i] = intake.submit(sent[i], leaf_header=True)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each caller got
            answers[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(sent))]
    with intake.lock:  # the intake cannot commit: what is sent queues up behind the plug
        threads[0].start()
        _wait(lambda: intake._queue.qsize() == 0, "the intake did not take the plug")
        time.sleep(0.5)  # the intake checks the plug's batch and waits to commit it
        for queued, thread in enumerate(threads[1:], start=1):
            thread.start()
            _wait(lambda n=queued: intake._queue.qsize() == n, "an envelope was not queued")
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_each_envelope_of_a_batch_is_answered_as_it_would_be_alone(intake: Intake) -> None:
    conn = intake.conn
    lab_a, lab_b, lab_c, lab_d_old, lab_d_new, stranger = (keys.generate() for _ in range(6))
    for site, key in (("lab-a", lab_a), ("lab-b", lab_b), ("lab-c", lab_c), ("lab-d", lab_d_old)):
        _enrol(conn, site, key)
    _rotate(conn, "lab-d", lab_d_old, lab_d_new)
    enrolment.revoke(conn, "lab-c")
    tampered = _summary("lab-a", 9, lab_a)
    tampered.payload = tampered.payload.replace(b'"positive": 9', b'"positive": 8')

    sent = {
        "lab-a 1": _summary("lab-a", 1, lab_a),
        "lab-a 2, after its 1 in the same batch": _summary("lab-a", 2, lab_a),
        "lab-b 2, below its ledgered 3": _summary("lab-b", 2, lab_b),
        "stranger": _summary("lab-e", 1, stranger),
        "lab-b 4": _summary("lab-b", 4, lab_b),
        "lab-c, revoked": _summary("lab-c", 1, lab_c),
        "lab-d, retired key": _summary("lab-d", 1, lab_d_old),
        "lab-d, current key": _summary("lab-d", 1, lab_d_new),
        "lab-a, tampered": tampered,
        "lab-a 1 again, changed": _summary("lab-a", 1, lab_a, positive=5),
        "lab-a 1 again, the same envelope": _summary("lab-a", 1, lab_a),
    }
    plug, *given = _submit_all(intake, _summary("lab-b", 3, lab_b), list(sent.values()))
    assert isinstance(plug, cpb.SubmitResponse)  # lab-b's 3 is in the ledger before the batch
    answers = dict(zip(sent, given))

    refused = {name: answer for name, answer in answers.items() if isinstance(answer, Exception)}
    assert {name: type(error) for name, error in refused.items()} == {
        "lab-b 2, below its ledgered 3": AlreadyRecorded,
        "stranger": NotAuthenticated,
        "lab-c, revoked": NotPermitted,
        "lab-d, retired key": NotAuthenticated,
        "lab-a, tampered": NotAuthenticated,
        "lab-a 1 again, changed": AlreadyRecorded,
    }
    assert "last accepted sequence 3" in str(refused["lab-b 2, below its ledgered 3"])
    assert "no site has enrolled" in str(refused["stranger"])
    assert "revoked" in str(refused["lab-c, revoked"])
    assert "retired" in str(refused["lab-d, retired key"])
    assert "signature check failed for site lab-a" in str(refused["lab-a, tampered"])
    assert "last accepted sequence 2" in str(refused["lab-a 1 again, changed"])
    twin = answers.pop("lab-a 1 again, the same envelope")  # its original's answer
    assert twin == answers["lab-a 1"]

    accepted = {name: a for name, a in answers.items() if isinstance(a, cpb.SubmitResponse)}
    receipts = {name: wire.decode(a.receipt.payload, lpb.Receipt) for name, a in accepted.items()}
    assert {name: (r.site_id, r.sequence) for name, r in receipts.items()} == {
        "lab-a 1": ("lab-a", 1),
        "lab-a 2, after its 1 in the same batch": ("lab-a", 2),
        "lab-b 4": ("lab-b", 4),
        "lab-d, current key": ("lab-d", 1),
    }
    # appended in the order sent, after the one ledgered before, under one signed tree head
    assert [r.leaf_index for r in receipts.values()] == [1, 2, 3, 4]
    assert len({a.signed_tree_head.SerializeToString() for a in accepted.values()}) == 1
    assert plug.signed_tree_head != next(iter(accepted.values())).signed_tree_head
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone() == (5,)
    assert conn.execute("SELECT COUNT(*) FROM summaries").fetchone() == (5,)
    assert conn.execute(
        "SELECT site_id, sequence FROM summaries ORDER BY leaf_index"
    ).fetchall() == [("lab-b", 3), ("lab-a", 1), ("lab-a", 2), ("lab-b", 4), ("lab-d", 1)]


def test_last_sequences_hold_across_batches_and_a_restart(tmp_path: Path) -> None:
    """The ledger keeps each site's last sequence as batches commit and reads it from the table
    again after a restart: a replay is refused either way, the next number accepted."""
    data = init(tmp_path / "coordinator")
    lab = keys.generate()

    def started() -> Intake:
        conn = store.connect(data.db)
        return Intake(conn, Ledger(conn, data.signing_key()), data.db)

    first = started()
    _enrol(first.conn, "lab-a", lab)
    for sequence in (1, 2):  # one batch each
        first.submit(_summary("lab-a", sequence, lab), leaf_header=True)
    with pytest.raises(AlreadyRecorded, match="last accepted sequence 2"):
        first.submit(_summary("lab-a", 2, lab, positive=7), leaf_header=True)
    first.close()
    first.conn.close()

    again = started()
    with pytest.raises(AlreadyRecorded, match="last accepted sequence 2"):
        again.submit(_summary("lab-a", 1, lab, positive=7), leaf_header=True)
    receipt = again.submit(_summary("lab-a", 3, lab), leaf_header=True).receipt
    assert wire.decode(receipt.payload, lpb.Receipt).sequence == 3
    with pytest.raises(AlreadyRecorded, match="last accepted sequence 3"):
        again.submit(_summary("lab-a", 3, lab, positive=7), leaf_header=True)
    again.close()
    again.conn.close()
