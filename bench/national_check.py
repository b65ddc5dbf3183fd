"""The national run's ledger checked from the outside, and the floor of one submission's cost.

`check_ledger` reads the coordinator's database once the run's submissions are in. Every ledger row: its receipt is
the coordinator's signature over that envelope's hash, leaf index, site, period and sequence, and is
the very receipt the lab was given for the envelope it sent; the stored envelope hashes to what
the receipt names; the leaf data is the header of that envelope (its site, period, sequence,
payload hash and envelope hash), or the envelope itself for a leaf of the older form; the leaf
hash is the hash of that data. Then the latest signed tree head is the root recomputed from all
the leaves. Any difference raises LedgerCheckFailed, naming the leaf.

`python -m bench.national_check` runs the ledger check and the node's receipt check at the
sampled nodes in a process of its own, beside the benchmark (see `main`).

`submit_floor` measures, in this process, what no Submit can avoid: one Ed25519 verification,
one signed receipt, one payload parse and one durable write.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench.national_labs import Template, lab_payload
from coordinator import store
from protos import dsse, keys, leaf, merkle, wire
from protos.errors import ContractError
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb


class LedgerCheckFailed(SystemExit):
    pass


@dataclass(frozen=True)
class Given:
    """One submission as its lab saw it: what it sent, and the receipt it was given."""

    period: str
    sequence: int
    envelope_sha256: str
    receipt: bytes


def _check_leaf(
    index: int,
    row: tuple,
    trusted: dict[str, bytes],
    given: Given | None,
) -> bytes:
    """One ledger row checked (see the module's docstring); its leaf hash."""
    _, leaf_hash, leaf_header, envelope, sha, site_id, period, sequence, receipt_blob = row
    envelope, receipt_blob = bytes(envelope), bytes(receipt_blob)
    where = f"leaf {index} ({site_id} {period})"
    if given is None:
        raise LedgerCheckFailed(f"{where}: no lab sent it")
    if (period, sequence, sha, receipt_blob) != (
        given.period,
        given.sequence,
        given.envelope_sha256,
        given.receipt,
    ):
        raise LedgerCheckFailed(
            f"{where}: the ledger holds another envelope or receipt than the lab sent and was given"
        )
    try:
        receipt_envelope = wire.parse_envelope(receipt_blob)
        dsse.verify(receipt_envelope, trusted, expected_type=wire.RECEIPT)
        receipt = wire.decode(receipt_envelope.payload, lpb.Receipt)
    except ContractError as exc:
        raise LedgerCheckFailed(f"{where}: its receipt does not verify: {exc}") from exc
    if (receipt.envelope_sha256, receipt.leaf_index, receipt.site_id) != (sha, index, site_id) or (
        receipt.period,
        receipt.sequence,
    ) != (period, sequence):
        raise LedgerCheckFailed(f"{where}: the receipt names another envelope or leaf")
    if hashlib.sha256(envelope).hexdigest() != sha:
        raise LedgerCheckFailed(f"{where}: the stored envelope is not the one receipted")
    parsed = wire.parse_envelope(envelope)
    try:
        if leaf_header is None:  # a leaf of the older form: the envelope itself
            data = leaf.leaf_data(parsed, receipt)
        else:
            data = bytes(leaf_header)
            header = leaf.parse_header(data)
            own = leaf.make_header(parsed, site_id, period, sequence, sha)
            if header != own or receipt.leaf_header != own:
                raise ContractError(
                    f"the leaf's header ({leaf.describe(header)}) or the receipt's is not the"
                    " header of the stored envelope"
                )
    except ContractError as exc:
        raise LedgerCheckFailed(f"{where}: {exc}") from exc
    if bytes(leaf_hash) != merkle.leaf_hash(data):
        raise LedgerCheckFailed(f"{where}: its hash is not the hash of its leaf data")
    return bytes(leaf_hash)


@dataclass(frozen=True)
class LedgerChecked:
    summary: str  # one line
    tree_size: int  # of the signed tree head checked (the latest)
    root: bytes


def check_ledger(
    db: Path, coordinator_pem: Path, given: Mapping[str, Sequence[Given]]
) -> LedgerChecked:
    """The ledger of `db` checked against the coordinator's public key and every lab's own record
    of what it sent and was given (see the module's docstring), or LedgerCheckFailed."""
    public = serialization.load_pem_public_key(coordinator_pem.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    raw = keys.public_raw(public)
    trusted = {dsse.keyid(raw): raw}
    expected = {(site_id, g.period, g.sequence): g for site_id, sent in given.items() for g in sent}
    conn = sqlite3.connect(db)
    try:
        leaves: list[bytes] = []
        for row in conn.execute(
            "SELECT leaf_index, leaf_hash, leaf_header, envelope, envelope_sha256, site_id,"
            " period, sequence, receipt FROM ledger ORDER BY leaf_index"
        ):
            if row[0] != len(leaves):
                raise LedgerCheckFailed(f"the ledger skips from leaf {len(leaves) - 1} to {row[0]}")
            leaves.append(_check_leaf(row[0], row, trusted, expected.pop(row[5:8], None)))
        if expected:
            site_id, period, _ = sorted(expected)[0]
            raise LedgerCheckFailed(
                f"{len(expected)} receipted submissions are not in the ledger, e.g. {site_id}"
                f" {period}"
            )
        (signed,) = conn.execute(
            "SELECT signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    head_envelope = wire.parse_envelope(bytes(signed))
    try:
        dsse.verify(head_envelope, trusted, expected_type=wire.TREE_HEAD)
    except ContractError as exc:
        raise LedgerCheckFailed(f"the latest tree head does not verify: {exc}") from exc
    head = wire.decode(head_envelope.payload, lpb.TreeHead)
    root = merkle.Tree(leaves).root()
    if head.tree_size != len(leaves) or head.root_hash != root:
        raise LedgerCheckFailed(
            f"the signed tree head (size {head.tree_size}) is not the root of the {len(leaves)}"
            " leaves"
        )
    return LedgerChecked(
        f"ledger check: {len(leaves):,} leaves; every receipt verifies and is the one its lab was"
        f" given for the envelope it sent; the signed tree head of size {head.tree_size:,} is the"
        f" recomputed root {root.hex()[:16]}…",
        head.tree_size,
        root,
    )


def latest_head(db: Path) -> tuple[int, bytes]:
    """(tree size, root hash) of the latest signed tree head in `db`."""
    conn = sqlite3.connect(db)
    try:
        (signed,) = conn.execute(
            "SELECT signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    head = wire.decode(wire.parse_envelope(bytes(signed)).payload, lpb.TreeHead)
    return head.tree_size, head.root_hash


def write_given(path: Path, given: Mapping[str, Sequence[Given]]) -> None:
    """Every lab's record of what it sent and was given, for `main` in another process."""
    path.write_text(
        json.dumps(
            {
                site: [
                    [g.period, g.sequence, g.envelope_sha256, base64.b64encode(g.receipt).decode()]
                    for g in sent
                ]
                for site, sent in given.items()
            }
        )
    )


def read_given(path: Path) -> dict[str, list[Given]]:
    return {
        site: [Given(p, q, sha, base64.b64decode(receipt)) for p, q, sha, receipt in sent]
        for site, sent in json.loads(path.read_text()).items()
    }


def verify_receipts(node_dirs: Sequence[Path]) -> int:
    """The node's receipt check at each node directory (inclusion in the coordinator's tree of
    today, consistency with every tree head it saw), over gRPC; the count of receipts verified."""
    from node import config as node_config
    from node import receipts
    from node import store as node_store
    from node.client import CoordinatorClient

    checked = 0
    for node_dir in node_dirs:
        cfg = node_config.load(node_dir)
        conn = node_store.connect(cfg.db_path)
        try:
            with CoordinatorClient(cfg) as client:
                checked += receipts.verify_all(conn, client, receipts.coordinator_key(cfg)).checked
        finally:
            conn.close()
    return checked


def main() -> None:
    """python -m bench.national_check DB COORDINATOR_PEM GIVEN_JSON NODE_DIR...

    Prints the ledger check's line, then "verify-receipts: N receipts at M nodes", then
    "head SIZE ROOT_HEX" (the tree head checked); exits 1 (LedgerCheckFailed) if a check fails."""
    db, pem, given_file, *node_dirs = (Path(a) for a in sys.argv[1:])
    checked = check_ledger(db, pem, read_given(given_file))
    print(checked.summary, flush=True)
    print(f"verify-receipts: {verify_receipts(node_dirs)} receipts at {len(node_dirs)} nodes")
    print(f"head {checked.tree_size} {checked.root.hex()}")


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


if __name__ == "__main__":
    main()
