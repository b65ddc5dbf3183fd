"""The national run's ledger checked from the outside, and the floor of one submission's cost.

`check_ledger` reads the coordinator's database after the run: every leaf hash is the hash of its
envelope's leaf data (protos/leaf.py); every receipt is the coordinator's signature over that envelope's hash and leaf index,
and is the receipt the lab was given; the latest signed tree head is the root recomputed from all
the leaves. `submit_floor` measures, in this process, what no Submit can avoid: one Ed25519
verification, one signed receipt, one payload parse and one durable write.
"""

from __future__ import annotations

import hashlib
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench.national_labs import Template, lab_payload
from coordinator import store
from protos import dsse, keys, merkle, wire
from protos.leaf import leaf_data
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb


class LedgerCheckFailed(SystemExit):
    pass


def check_ledger(db: Path, coordinator_pem: Path, given: dict[str, list[bytes]]) -> str:
    public = serialization.load_pem_public_key(coordinator_pem.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    raw = keys.public_raw(public)
    trusted = {dsse.keyid(raw): raw}
    conn = sqlite3.connect(db)
    leaves: list[bytes] = []
    by_site: dict[str, list[bytes]] = {}
    for index, leaf, envelope, sha, site_id, receipt_blob in conn.execute(
        "SELECT leaf_index, leaf_hash, envelope, envelope_sha256, site_id, receipt FROM ledger"
        " ORDER BY leaf_index"
    ):
        envelope, receipt_blob = bytes(envelope), bytes(receipt_blob)
        if index != len(leaves):
            raise LedgerCheckFailed(f"the ledger skips from leaf {len(leaves) - 1} to {index}")
        receipt_envelope = wire.parse_envelope(receipt_blob)
        dsse.verify(receipt_envelope, trusted, expected_type=wire.RECEIPT)
        receipt = wire.decode(receipt_envelope.payload, lpb.Receipt)
        if receipt.envelope_sha256 != sha or receipt.leaf_index != index:
            raise LedgerCheckFailed(f"leaf {index}: the receipt names another envelope or leaf")
        if hashlib.sha256(envelope).hexdigest() != sha:
            raise LedgerCheckFailed(f"leaf {index}: the stored envelope is not the one receipted")
        # the leaf data is the envelope's header (or, for an old node, the envelope itself)
        data = leaf_data(wire.parse_envelope(envelope), receipt)
        if bytes(leaf) != merkle.leaf_hash(data):
            raise LedgerCheckFailed(f"leaf {index}: its hash is not its envelope's leaf data")
        leaves.append(bytes(leaf))
        by_site.setdefault(site_id, []).append(receipt_blob)
    if by_site != given:
        differ = sorted(set(by_site) ^ set(given)) or [
            s for s in by_site if by_site[s] != given.get(s)
        ]
        raise LedgerCheckFailed(
            f"the receipts the labs were given differ from the ledger's: {differ[:3]}"
        )
    (signed,) = conn.execute(
        "SELECT signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    head_envelope = wire.parse_envelope(bytes(signed))
    dsse.verify(head_envelope, trusted, expected_type=wire.TREE_HEAD)
    head = wire.decode(head_envelope.payload, lpb.TreeHead)
    root = merkle.Tree(leaves).root()
    if head.tree_size != len(leaves) or head.root_hash != root:
        raise LedgerCheckFailed(
            f"the signed tree head (size {head.tree_size}) is not the root of the {len(leaves)} leaves"
        )
    conn.close()
    return (
        f"ledger check: {len(leaves):,} leaves; every receipt verifies and is the one its lab was"
        f" given; the signed tree head of size {head.tree_size:,} is the recomputed root"
        f" {root.hex()[:16]}…"
    )


def _median_ms(fn: Callable[[], object], n: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(n):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1000 * statistics.median(times)


def submit_floor(root: Path, template: Template) -> dict[str, float]:
    """CPU milliseconds (median) of each thing a Submit cannot avoid, for a real quarterly summary;
    and "fsync wait", the wall time a durable write waits beyond its CPU."""
    root.mkdir(parents=True, exist_ok=True)
    site_key, coordinator_key = keys.generate(), keys.generate()
    payload = lab_payload(template.payloads[-1], "lab-floor", 4)
    envelope = dsse.sign(wire.SITE_SUMMARY, payload, site_key)
    trusted = {dsse.keyid(site_key.public_key()): keys.public_raw(site_key)}
    head = lpb.TreeHead(tree_size=12_000, root_hash=bytes(32), timestamp_ms=1)
    receipt = lpb.Receipt(
        site_id="lab-floor",
        period="2026Q3",
        sequence=4,
        envelope_sha256=wire.envelope_sha256(envelope),
        leaf_index=11_999,
        received_at="2026-11-25T12:00:00+00:00",
        tree_head=head,
        payload_type=wire.SITE_SUMMARY,
    )
    db = root / "floor.db"
    db.unlink(missing_ok=True)
    conn = store.connect(db)  # the coordinator's own settings: WAL, synchronous=FULL
    conn.execute("CREATE TABLE IF NOT EXISTS floor (envelope BLOB NOT NULL)")
    blob = wire.envelope_bytes(envelope)

    def durable_write() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO floor VALUES (?)", (blob,))
        conn.execute("COMMIT")

    cpu = time.thread_time  # CPU of this thread: what the coordinator would spend
    floor = {
        "Ed25519 verify": _median_ms(lambda: dsse.verify(envelope, trusted), 300, cpu),
        "receipt signature": _median_ms(
            lambda: dsse.sign(wire.RECEIPT, wire.encode(receipt), coordinator_key), 300, cpu
        ),
        "payload parse": _median_ms(lambda: wire.decode(payload, pb.SiteSummary), 100, cpu),
        "durable write": _median_ms(durable_write, 100, cpu),
    }
    floor["fsync wait"] = _median_ms(durable_write, 100, time.perf_counter) - floor["durable write"]
    conn.close()
    return floor
