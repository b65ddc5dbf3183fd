"""Checking what the coordinator signs: receipts, tree heads, inclusion and consistency proofs.

The coordinator's public key is pinned at enrolment (D/coordinator.pub). Every tree head the node
sees is kept; a later one must prove it extends the earlier ones, or the log forked or shrank.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

from node.client import CoordinatorClient
from node.config import NodeConfig
from node.errors import ConfigError, LedgerAlarm
from protos import dsse, leaf, merkle, wire
from protos.errors import ContractError
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1.envelope_pb2 import Envelope


def coordinator_key(config: NodeConfig) -> dict[str, bytes]:
    path = config.data_dir / "coordinator.pub"
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            "the coordinator's key is not pinned yet; run `rarenet-node enroll` first"
        ) from exc
    return {dsse.keyid(raw): raw}


def tree_head(signed: Envelope, trusted: dict[str, bytes]) -> lpb.TreeHead:
    dsse.verify(signed, trusted, expected_type=wire.TREE_HEAD)
    return wire.decode(signed.payload, lpb.TreeHead)


def check_submission(
    envelope: Envelope, response: cpb.SubmitResponse, trusted: dict[str, bytes]
) -> tuple[lpb.Receipt, lpb.TreeHead]:
    """The receipt is the coordinator's, names this envelope, and its leaf is in the signed tree."""
    try:
        dsse.verify(response.receipt, trusted, expected_type=wire.RECEIPT)
        receipt = wire.decode(response.receipt.payload, lpb.Receipt)
        head = tree_head(response.signed_tree_head, trusted)
        if receipt.envelope_sha256 != wire.envelope_sha256(envelope):
            raise ContractError("the receipt names another envelope")
        if receipt.tree_head != head:
            raise ContractError("the receipt's tree head is not the signed tree head sent with it")
        proof = response.inclusion_proof
        if proof.leaf_index != receipt.leaf_index or proof.tree_size != head.tree_size:
            raise ContractError("the inclusion proof is for another leaf or tree size")
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf.leaf_data(envelope, receipt)),
            receipt.leaf_index,
            head.tree_size,
            list(proof.hashes),
            head.root_hash,
        )
    except ContractError as exc:
        raise LedgerAlarm(f"the coordinator's receipt does not check out: {exc}") from exc
    return receipt, head


def remember_tree_head(
    conn: sqlite3.Connection, client: CoordinatorClient, signed: Envelope, trusted: dict[str, bytes]
) -> lpb.TreeHead:
    """Keep a verified tree head after proving it consistent with the largest one seen before."""
    head = tree_head(signed, trusted)
    row = conn.execute(
        "SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    same = conn.execute(
        "SELECT root_hash FROM tree_heads WHERE tree_size = ?", (head.tree_size,)
    ).fetchone()
    if same and bytes(same[0]) != head.root_hash:
        raise LedgerAlarm(
            f"two different signed roots for tree size {head.tree_size}: the coordinator's log forked"
        )
    if row:
        size, root = row[0], bytes(row[1])
        if head.tree_size < size:
            raise LedgerAlarm(
                f"the coordinator's log shrank from {size} to {head.tree_size} entries"
            )
        if head.tree_size > size > 0:  # every tree extends the empty one
            proof = client.consistency_proof(size, head.tree_size)
            try:
                merkle.verify_consistency(
                    size, head.tree_size, root, head.root_hash, list(proof.hashes)
                )
            except ContractError as exc:
                raise LedgerAlarm(
                    f"the coordinator's log is not consistent with what it signed before: {exc}"
                ) from exc
    if not same:
        conn.execute(
            "INSERT INTO tree_heads (tree_size, root_hash, signed, seen_at) VALUES (?, ?, ?, ?)",
            (
                head.tree_size,
                head.root_hash,
                wire.envelope_bytes(signed),
                dt.datetime.now(dt.UTC).isoformat(),
            ),
        )
    return head


@dataclass
class ReceiptCheck:
    checked: int
    tree_size: int


def verify_all(
    conn: sqlite3.Connection, client: CoordinatorClient, trusted: dict[str, bytes]
) -> ReceiptCheck:
    """Every kept receipt's envelope is still in the coordinator's current tree, and the tree only grew."""
    head = remember_tree_head(conn, client, client.tree_head(), trusted)
    checked = 0
    rows = conn.execute(
        "SELECT r.envelope_sha256, r.leaf_index, o.envelope, r.receipt FROM receipts r"
        " JOIN outbox o USING (envelope_sha256) ORDER BY r.leaf_index"
    ).fetchall()
    for sha, leaf_index, blob, receipt_blob in rows:
        receipt_env = wire.parse_envelope(receipt_blob)
        dsse.verify(receipt_env, trusted, expected_type=wire.RECEIPT)
        receipt = wire.decode(receipt_env.payload, lpb.Receipt)
        if leaf_index >= head.tree_size:
            raise LedgerAlarm(
                f"receipt for leaf {leaf_index} is beyond the current tree of {head.tree_size}: "
                "the coordinator's log lost entries"
            )
        proof = client.inclusion_proof(leaf_index, head.tree_size)
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(leaf.leaf_data(wire.parse_envelope(blob), receipt)),
                leaf_index,
                head.tree_size,
                list(proof.hashes),
                head.root_hash,
            )
        except ContractError as exc:
            raise LedgerAlarm(
                f"the envelope of receipt {sha[:16]}… (leaf {leaf_index}) is no longer in the "
                f"coordinator's log: {exc}"
            ) from exc
        checked += 1
    return ReceiptCheck(checked, head.tree_size)
