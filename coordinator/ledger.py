"""The append-only ledger: RFC 9162 Merkle tree over accepted envelopes, with signed tree heads.

This module owns the `ledger` and `tree_heads` tables: every write to them is here. The intake
stages a batch (`stage`), writes it inside its own transaction together with the summaries
(`write`), and tells the ledger once it committed (`committed`).

Each leaf commits to a LeafHeader (protos/leaf.py: site, period, sequence, payload type, payload
and envelope SHA-256), stored in `ledger.leaf_header`. Leaves appended before headers existed
keep their whole-envelope form and their hashes (`leaf_header` is NULL): the heads signed over
them stay valid, nothing is rehashed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protos import dsse, leaf, merkle, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1.envelope_pb2 import Envelope

_SITES_AT_ONCE = 500  # sites per query (SQLite allows 999 parameters)


@dataclass(frozen=True)
class Accepted:
    """An envelope the intake accepted, with what it learnt checking it."""

    envelope: Envelope
    data: bytes  # the envelope, deterministically serialised
    sha: str  # its SHA-256, hex
    site_id: str
    keyid: str
    period: str  # the summary's period, or eqa:ROUND for an EQA response
    sequence: int
    received_at: str  # RFC 3339, seconds, UTC
    leaf_header: bool  # append a header (else the whole envelope, for nodes from before headers)


@dataclass
class Staged:
    """A batch ready to be written: leaf data and hashes, the signed head, signed receipts."""

    first_index: int
    accepted: list[Accepted]
    header_data: list[bytes | None]  # each leaf's header data; None: the whole envelope
    leaves: list[bytes]  # leaf hashes
    head: lpb.TreeHead
    signed_head: Envelope
    receipts: list[Envelope]


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
        # The highest sequence accepted from each site read so far: read from the table once,
        # then kept as batches commit (this object appends every row, as it keeps the tree).
        self._last_sequences: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.tree)

    def sign_head(self, size: int, root: bytes) -> tuple[lpb.TreeHead, Envelope]:
        head = lpb.TreeHead(tree_size=size, root_hash=root, timestamp_ms=int(time.time() * 1000))
        return head, dsse.sign(wire.TREE_HEAD, wire.encode(head), self.key)

    def stage(self, accepted: list[Accepted]) -> Staged:
        """Headers, leaf hashes, the signed tree head and the signed receipts of a batch that will
        follow the current tree; nothing is written."""
        first = len(self.tree)
        headers = [
            leaf.make_header(a.envelope, a.site_id, a.period, a.sequence, a.sha)
            if a.leaf_header
            else None
            for a in accepted
        ]
        header_data = [None if h is None else leaf.header_data(h) for h in headers]
        leaves = [
            merkle.leaf_hash(a.data if data is None else data)
            for a, data in zip(accepted, header_data)
        ]
        head, signed_head = self.sign_head(
            first + len(accepted), self.tree.root_if_appended(*leaves)
        )
        receipts = [
            dsse.sign(wire.RECEIPT, wire.encode(_receipt(a, first + offset, head, h)), self.key)
            for offset, (a, h) in enumerate(zip(accepted, headers))
        ]
        return Staged(first, accepted, header_data, leaves, head, signed_head, receipts)

    def write(self, conn: sqlite3.Connection, staged: Staged) -> None:
        """The batch's ledger rows and its tree head, inside the caller's transaction."""
        signed_head = wire.envelope_bytes(staged.signed_head)  # every row of the batch names it
        conn.executemany(
            "INSERT INTO ledger (leaf_index, leaf_hash, leaf_header, envelope, envelope_sha256,"
            " site_id, keyid, payload_type, period, sequence, received_at, receipt, tree_head)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    staged.first_index + offset,
                    staged.leaves[offset],
                    staged.header_data[offset],
                    a.data,
                    a.sha,
                    a.site_id,
                    a.keyid,
                    a.envelope.payload_type,
                    a.period,
                    a.sequence,
                    a.received_at,
                    wire.envelope_bytes(staged.receipts[offset]),
                    signed_head,
                )
                for offset, a in enumerate(staged.accepted)
            ],
        )
        conn.execute(
            "INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, signed) VALUES (?, ?, ?, ?)",
            (
                staged.head.tree_size,
                staged.head.root_hash,
                staged.head.timestamp_ms,
                signed_head,
            ),
        )

    def committed(self, staged: Staged) -> list[cpb.SubmitResponse]:
        """Take the committed batch into the tree; the answer to each of its envelopes."""
        for leaf_hash in staged.leaves:
            self.tree.append(leaf_hash)
        for a in staged.accepted:
            if a.site_id in self._last_sequences:
                self._last_sequences[a.site_id] = max(self._last_sequences[a.site_id], a.sequence)
        self._latest = staged.signed_head
        size = staged.head.tree_size
        return [
            cpb.SubmitResponse(
                receipt=receipt,
                signed_tree_head=staged.signed_head,
                inclusion_proof=self.inclusion(staged.first_index + offset, size),
            )
            for offset, receipt in enumerate(staged.receipts)
        ]

    @staticmethod
    def ledgered(conn: sqlite3.Connection, shas: list[str]) -> set[str]:
        """Which of these envelope SHA-256s (hex; a batch, up to a few hundred) are in the ledger."""
        if not shas:
            return set()
        marks = ",".join("?" * len(shas))
        return {
            sha
            for (sha,) in conn.execute(
                f"SELECT envelope_sha256 FROM ledger WHERE envelope_sha256 IN ({marks})", shas
            )
        }

    def existing(self, conn: sqlite3.Connection, sha: str) -> cpb.SubmitResponse | None:
        """The original answer to an envelope already in the ledger."""
        row = conn.execute(
            "SELECT leaf_index, receipt, tree_head FROM ledger WHERE envelope_sha256 = ?", (sha,)
        ).fetchone()
        if row is None:
            return None
        index, receipt, head = row
        signed_head = wire.parse_envelope(head)
        size = wire.decode(signed_head.payload, lpb.TreeHead).tree_size
        return cpb.SubmitResponse(
            receipt=wire.parse_envelope(receipt),
            signed_tree_head=signed_head,
            inclusion_proof=self.inclusion(index, size),
        )

    def last_sequences(self, conn: sqlite3.Connection, sites: Collection[str]) -> dict[str, int]:
        """The highest sequence number accepted from each of these sites (0 before its first): a
        site's is read from the table the first time it is asked for (one query for a batch's
        new sites), then kept up to date by `committed`."""
        unread = [site for site in sites if site not in self._last_sequences]
        for i in range(0, len(unread), _SITES_AT_ONCE):
            chunk = unread[i : i + _SITES_AT_ONCE]
            found = dict.fromkeys(chunk, 0)
            for site_id, sequence in conn.execute(
                "SELECT site_id, MAX(sequence) FROM ledger"
                f" WHERE site_id IN ({','.join('?' * len(chunk))}) GROUP BY site_id",
                chunk,
            ):
                found[site_id] = int(sequence or 0)
            self._last_sequences.update(found)
        return {site: self._last_sequences[site] for site in sites}

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


def _receipt(
    accepted: Accepted, index: int, head: lpb.TreeHead, header: lpb.LeafHeader | None
) -> lpb.Receipt:
    receipt = lpb.Receipt(
        site_id=accepted.site_id,
        period=accepted.period,
        sequence=accepted.sequence,
        envelope_sha256=accepted.sha,
        leaf_index=index,
        received_at=accepted.received_at,
        tree_head=head,
        payload_type=accepted.envelope.payload_type,
    )
    if header is not None:
        receipt.leaf_header.CopyFrom(header)
    return receipt


def stored_leaves(conn: sqlite3.Connection, size: int) -> list[tuple[int, bytes, bool, str]]:
    """(index, leaf data, whether it is a header, site) of the first `size` leaves: the header,
    or for a leaf of the older form the serialised envelope."""
    return [
        (index, bytes(header) if header is not None else bytes(envelope), header is not None, site)
        for index, header, envelope, site in conn.execute(
            "SELECT leaf_index, leaf_header,"
            " CASE WHEN leaf_header IS NULL THEN envelope END, site_id FROM ledger"
            " WHERE leaf_index < ? ORDER BY leaf_index",
            (size,),
        )
    ]


def leaves_for(
    conn: sqlite3.Connection, size: int, periods: list[str], site: str | None = None
) -> list[int]:
    """The leaves below `size` accepted for any of these periods (eqa:ROUND for EQA responses),
    superseded ones included; only `site`'s when given."""
    marks = ",".join("?" * len(periods))
    return [
        index
        for (index,) in conn.execute(
            f"SELECT leaf_index FROM ledger WHERE leaf_index < ? AND period IN ({marks})"
            " AND (? IS NULL OR site_id = ?) ORDER BY leaf_index",
            (size, *periods, site, site),
        )
    ]
