"""The national run's own parts (bench/national_*.py, enrolment.add_sites): the ledger check fails
on every kind of tampering it exists to catch, the template summaries are the node's own bytes,
and sites are added many at once or not at all."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.national_check import (
    Given,
    LedgerCheckFailed,
    check_ledger,
    latest_head,
    read_given,
    write_given,
)
from bench.national_labs import QUARTERS, TEMPLATE_SITE, _make, _Spec, make_pool
from coordinator import enrolment
from coordinator import store as coordinator_store
from coordinator.errors import AlreadyRecorded, InvalidRequest
from coordinator.standards import DEFAULT_STANDARD
from node import config as node_config
from node import store as node_store
from node import summary
from node.standard import parse as parse_standard
from protos import dsse, keys, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import ledger_pb2 as lpb
from tests.conftest import PERIOD

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ledgered(coordinator, node_factory, synthetic_csv, tmp_path: Path):
    """Two labs' summaries of PERIOD submitted over gRPC: the coordinator's database, its public
    key file, each lab's record of what it sent and was given, and the coordinator's key."""
    given: dict[str, list[Given]] = {}
    for site_id in ("lab-a", "lab-b"):
        node = node_factory(site_id)
        node.ingest(synthetic_csv(site_id, rows=600))
        standard = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))
        _, payload = summary.build(node.conn, node.config, standard, PERIOD, 1)
        envelope = dsse.sign(wire.SITE_SUMMARY, payload, node.config.signing_key())
        response = node.client.submit(envelope)
        given[site_id] = [
            Given(
                PERIOD.label,
                1,
                wire.envelope_sha256(envelope),
                wire.envelope_bytes(response.receipt),
            )
        ]
    key = coordinator.service.key
    pem = tmp_path / "coordinator.pem"
    pem.write_bytes(keys.public_pem(keys.public_raw(key)))
    coordinator.stop(grace=1)
    return coordinator.service.data.db, pem, given, key


def _update(db: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(sql, args)
    conn.close()


def test_the_ledger_check_passes_on_an_honest_ledger(ledgered) -> None:
    db, pem, given, _ = ledgered
    checked = check_ledger(db, pem, given)
    assert "2 leaves" in checked.summary
    assert (checked.tree_size, checked.root) == latest_head(db)


def test_the_ledger_check_in_its_own_process_reads_what_the_labs_were_given(
    ledgered, tmp_path: Path
) -> None:
    """`python -m bench.national_check` (run beside the benchmark) checks the same: it passes on
    the honest ledger and names the tree head it checked; it fails once a lab's record differs."""
    db, pem, given, _ = ledgered
    given_file = tmp_path / "given.json"
    write_given(given_file, given)
    assert read_given(given_file) == given
    argv = [sys.executable, "-m", "bench.national_check", str(db), str(pem), str(given_file)]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    summary, receipts_line, head_line = done.stdout.strip().splitlines()
    assert "2 leaves" in summary and receipts_line == "verify-receipts: 0 receipts at 0 nodes"
    size, root = latest_head(db)
    assert head_line == f"head {size} {root.hex()}"
    given["lab-a"] = [Given(PERIOD.label, 1, given["lab-a"][0].envelope_sha256, b"another")]
    write_given(given_file, given)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and "another envelope or receipt" in done.stderr


def test_a_receipt_not_signed_by_the_coordinator_fails(ledgered) -> None:
    db, pem, given, _ = ledgered
    receipt = wire.parse_envelope(given["lab-b"][0].receipt)
    forged = wire.envelope_bytes(dsse.sign(wire.RECEIPT, receipt.payload, keys.generate()))
    _update(db, "UPDATE ledger SET receipt = ? WHERE site_id = 'lab-b'", forged)
    given["lab-b"] = [Given(PERIOD.label, 1, given["lab-b"][0].envelope_sha256, forged)]
    with pytest.raises(LedgerCheckFailed, match="leaf 1 .*receipt does not verify"):
        check_ledger(db, pem, given)


def test_a_receipt_other_than_the_one_the_lab_was_given_fails(ledgered) -> None:
    db, pem, given, _ = ledgered
    given["lab-a"] = [Given(PERIOD.label, 1, given["lab-a"][0].envelope_sha256, b"another")]
    with pytest.raises(LedgerCheckFailed, match="another envelope or receipt than the lab sent"):
        check_ledger(db, pem, given)


def test_a_stored_envelope_other_than_the_receipted_one_fails(ledgered) -> None:
    db, pem, given, _ = ledgered
    conn = sqlite3.connect(db)
    (blob,) = conn.execute("SELECT envelope FROM ledger WHERE site_id = 'lab-a'").fetchone()
    conn.close()
    _update(db, "UPDATE ledger SET envelope = ? WHERE site_id = 'lab-a'", bytes(blob) + b" ")
    with pytest.raises(LedgerCheckFailed, match="stored envelope is not the one receipted"):
        check_ledger(db, pem, given)


def test_a_leaf_hash_that_is_not_its_data_fails(ledgered) -> None:
    db, pem, given, _ = ledgered
    _update(db, "UPDATE ledger SET leaf_hash = ? WHERE leaf_index = 0", bytes(32))
    with pytest.raises(LedgerCheckFailed, match="leaf 0 .*not the hash of its leaf data"):
        check_ledger(db, pem, given)


def test_a_signed_tree_head_over_another_root_fails(ledgered) -> None:
    db, pem, given, key = ledgered
    head = lpb.TreeHead(tree_size=2, root_hash=bytes(32), timestamp_ms=1)
    signed = wire.envelope_bytes(dsse.sign(wire.TREE_HEAD, wire.encode(head), key))
    _update(db, "UPDATE tree_heads SET signed = ? WHERE tree_size = 2", signed)
    with pytest.raises(LedgerCheckFailed, match="tree head .* is not the root of the 2 leaves"):
        check_ledger(db, pem, given)


def test_a_receipted_submission_missing_from_the_ledger_fails(ledgered) -> None:
    db, pem, given, _ = ledgered
    given["lab-c"] = [Given(PERIOD.label, 1, "0" * 64, b"receipt")]
    with pytest.raises(LedgerCheckFailed, match="1 receipted submissions are not in the ledger"):
        check_ledger(db, pem, given)


def test_a_template_summary_is_the_node_summary_of_its_rows(tmp_path: Path) -> None:
    """The templates read a slice of the pool through a view; a node holding exactly those rows
    signs the same bytes. The pool's copies fill every quarter alike."""
    pool = make_pool(tmp_path / "pool", "slow")
    conn = sqlite3.connect(pool.db)
    counts = [
        conn.execute(
            "SELECT COUNT(*) FROM results WHERE reported_date BETWEEN ? AND ?",
            (q.start.isoformat(), q.end.isoformat()),
        ).fetchone()[0]
        for q in QUARTERS
    ]
    conn.close()
    assert counts[0] > 0 and len(set(counts)) == 1
    spec = _Spec("slow", (40, 300, 1, pool.tests), (1, 200, 7, 1))
    (template,) = _make(tmp_path / "template", {"slow": pool}, [spec])

    cfg = node_config.init(tmp_path / "node", TEMPLATE_SITE, "127.0.0.1:1", insecure=True)
    node = node_store.connect(cfg.db_path)
    node.execute("ATTACH DATABASE ? AS pool", (str(pool.db),))
    standard = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))
    for quarter, period in enumerate(QUARTERS):
        first, n = spec.first[quarter], spec.tests[quarter]
        with node:
            node.execute("DELETE FROM results")
            node.execute(
                "INSERT INTO results SELECT * FROM pool.results WHERE test_id BETWEEN ? AND ?",
                (
                    f"T-pool-slow-{period.label}-{first:07d}",
                    f"T-pool-slow-{period.label}-{first + n - 1:07d}",
                ),
            )
        assert summary.build(node, cfg, standard, period, 1)[1] == template.payloads[quarter]
    node.close()


def test_sites_are_added_together_or_not_at_all(coordinator) -> None:
    conn = coordinator_store.connect(coordinator.service.data.db)
    tokens = enrolment.add_sites(conn, ["lab-a", "lab-b"])
    assert sorted(tokens) == ["lab-a", "lab-b"] and tokens["lab-a"][0] != tokens["lab-b"][0]
    key = keys.generate()
    request = cpb.EnrollPayload(
        site_id="lab-b", token=tokens["lab-b"][0], public_key=keys.public_raw(key)
    )
    enrolment.enroll(conn, dsse.sign(wire.ENROLL, wire.encode(request), key))

    for bad, error, words in (
        (["lab-c", "Lab_C"], InvalidRequest, "site id 'Lab_C' is not valid"),
        (["lab-c", "lab-d", "lab-c"], InvalidRequest, "lab-c is named more than once"),
        (["lab-c", "lab-b"], AlreadyRecorded, "lab-b is active"),
    ):
        with pytest.raises(error, match=words):
            enrolment.add_sites(conn, bad)
    statuses = {s["site_id"]: s["status"] for s in enrolment.list_sites(conn)}
    assert statuses == {"lab-a": "pending", "lab-b": "active"}  # no lab-c or lab-d was written
    conn.close()
