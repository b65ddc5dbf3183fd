"""The outbox: every signed envelope is stored before any send, and leaves only with a verified receipt."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from dataclasses import dataclass

from node import store
from protos import wire
from protos.rarenet.v1.envelope_pb2 import Envelope

BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 6 * 3600


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Pending:
    sequence: int
    period: str
    envelope: Envelope
    sha256: str
    attempts: int


def add(conn: sqlite3.Connection, envelope: Envelope, period: str, sequence: int, also=None) -> str:
    """Store a signed envelope and consume its sequence number (and run `also(conn)`, e.g. a
    privacy-budget spend) in one transaction."""
    sha = wire.envelope_sha256(envelope)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if also is not None:
            also(conn)
        conn.execute(
            "INSERT INTO outbox (sequence, period, payload_type, envelope, envelope_sha256, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                sequence,
                period,
                envelope.payload_type,
                wire.envelope_bytes(envelope),
                sha,
                _now().isoformat(),
            ),
        )
        store.set_state(conn, "last_sequence", str(sequence))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return sha


def pending(conn: sqlite3.Connection, due_only: bool = False) -> list[Pending]:
    """Envelopes not yet delivered (nor rejected), in sequence order. With due_only, only the run
    of them that is due: the coordinator accepts a site's sequence numbers only in increasing
    order, so a later envelope never overtakes an earlier one that is still backing off."""
    now = _now().isoformat()
    out = []
    for seq, period, blob, sha, attempts, due in conn.execute(
        "SELECT sequence, period, envelope, envelope_sha256, attempts, next_attempt_at FROM outbox"
        " WHERE delivered_at IS NULL AND rejected_at IS NULL ORDER BY sequence"
    ):
        if due_only and due is not None and due > now:
            break
        out.append(Pending(seq, period, wire.parse_envelope(blob), sha, attempts))
    return out


def rejected(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(sequence, period, reason) of envelopes the coordinator refused for good."""
    return conn.execute(
        "SELECT sequence, period, last_error FROM outbox WHERE rejected_at IS NOT NULL"
        " ORDER BY sequence"
    ).fetchall()


def mark_rejected(conn: sqlite3.Connection, sha: str, error: str) -> None:
    """The coordinator refused the envelope for a reason a retry cannot change: stop sending it."""
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, rejected_at = ? WHERE envelope_sha256 = ?",
        (error, _now().isoformat(), sha),
    )


def last_payload(conn: sqlite3.Connection, period: str) -> bytes | None:
    row = conn.execute(
        "SELECT envelope FROM outbox WHERE period = ? ORDER BY sequence DESC LIMIT 1", (period,)
    ).fetchone()
    return wire.parse_envelope(row[0]).payload if row else None


def mark_failed(
    conn: sqlite3.Connection,
    sha: str,
    error: str,
    base: float = BACKOFF_BASE_SECONDS,
    maximum: float = BACKOFF_MAX_SECONDS,
) -> dt.datetime:
    """Record a failed attempt; the next is due after exponential backoff with full jitter."""
    (attempts,) = conn.execute(
        "SELECT attempts FROM outbox WHERE envelope_sha256 = ?", (sha,)
    ).fetchone()
    delay = random.uniform(0, min(maximum, base * 2 ** min(attempts, 20)))
    due = _now() + dt.timedelta(seconds=delay)
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE envelope_sha256 = ?",
        (error, due.isoformat(), sha),
    )
    return due


def mark_delivered(
    conn: sqlite3.Connection, item: Pending, leaf_index: int, receipt: Envelope, tree_head: Envelope
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR REPLACE INTO receipts (envelope_sha256, sequence, period, leaf_index, receipt, tree_head,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item.sha256,
                item.sequence,
                item.period,
                leaf_index,
                wire.envelope_bytes(receipt),
                wire.envelope_bytes(tree_head),
                _now().isoformat(),
            ),
        )
        conn.execute(
            "UPDATE outbox SET delivered_at = ?, last_error = NULL WHERE envelope_sha256 = ?",
            (_now().isoformat(), item.sha256),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
