"""The append-only ledger: RFC 9162 Merkle tree over accepted envelopes, with signed tree heads."""

from __future__ import annotations

import sqlite3
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import dsse, merkle, wire
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1.envelope_pb2 import Envelope


class Ledger:
    """The in-memory tree mirrors the ledger table; it is appended to only after a commit."""

    def __init__(self, conn: sqlite3.Connection, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.tree = merkle.Tree(
            [bytes(h) for (h,) in conn.execute("SELECT leaf_hash FROM ledger ORDER BY leaf_index")]
        )
        row = conn.execute(
            "SELECT signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        self._latest = wire.parse_envelope(row[0]) if row else None

    def __len__(self) -> int:
        return len(self.tree)

    def sign_head(self, size: int, root: bytes) -> tuple[lpb.TreeHead, Envelope]:
        head = lpb.TreeHead(tree_size=size, root_hash=root, timestamp_ms=int(time.time() * 1000))
        return head, dsse.sign(wire.TREE_HEAD, wire.encode(head), self.key)

    def pending_root(self, *new_leaves: bytes) -> bytes:
        """The root the tree will have once new_leaves are appended (without appending)."""
        return self.tree.root_if_appended(*new_leaves)

    def committed(self, leaves: list[bytes], signed_head: Envelope) -> None:
        for leaf in leaves:
            self.tree.append(leaf)
        self._latest = signed_head

    def latest_head(self, conn: sqlite3.Connection) -> Envelope:
        if self._latest is None:
            head, signed = self.sign_head(0, merkle.EMPTY_ROOT)
            conn.execute(
                "INSERT OR IGNORE INTO tree_heads (tree_size, root_hash, timestamp_ms, signed) VALUES (?, ?, ?, ?)",
                (0, head.root_hash, head.timestamp_ms, wire.envelope_bytes(signed)),
            )
            self._latest = signed
        return self._latest

    def inclusion(self, leaf_index: int, size: int) -> lpb.InclusionProof:
        return lpb.InclusionProof(
            leaf_index=leaf_index,
            tree_size=size,
            hashes=self.tree.inclusion_proof(leaf_index, size),
        )

    def consistency(self, first: int, second: int) -> lpb.ConsistencyProof:
        return lpb.ConsistencyProof(
            first_size=first, second_size=second, hashes=self.tree.consistency_proof(first, second)
        )
