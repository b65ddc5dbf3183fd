"""Stored summaries kept decoded, as protobuf binary beside their signed JSON payload, so a later
benchmark run parses them (about 0.03 ms each) instead of decoding the JSON again (about 0.7 ms
each; a national network's four quarters are 12,000 summaries).

A leaf's payload never changes, so the binary of leaf N is valid for as long as the database
holds leaf N; it is written from the message wire.decode gave for that very payload, and parsing
it gives an equal message. The table is a cache: dropping it loses nothing but time, and nothing
signed or audited reads it (auditors decode the signed payloads themselves)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from coordinator import store
from protos.rarenet.v1 import summary_pb2 as pb

SCHEMA = """
CREATE TABLE IF NOT EXISTS summary_messages (
    leaf_index INTEGER PRIMARY KEY,   -- summaries.leaf_index
    message BLOB NOT NULL             -- SiteSummary.SerializeToString() of its decoded payload
)
"""


def _kept(conn: sqlite3.Connection) -> bool:
    """Whether the table exists; reading never creates it (a reader's snapshot stays untouched)."""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'summary_messages'"
        ).fetchone()
        is not None
    )


def find(conn: sqlite3.Connection, leaves: Iterable[int]) -> dict[int, pb.SiteSummary]:
    """The kept messages of those of `leaves` that have one."""
    wanted = list(leaves)
    if not wanted or not _kept(conn):
        return {}
    found = {}
    for leaf, message in store.rows_by_leaf(conn, "summary_messages", "message", wanted):
        found[leaf] = pb.SiteSummary.FromString(message)
    return found


def keep_in(conn: sqlite3.Connection, decoded: Iterable[tuple[int, pb.SiteSummary]]) -> None:
    """Keep summaries' messages, (leaf, message) pairs, inside the caller's transaction (intake,
    as it stores a batch of summaries: the benchmark's first run then reads every summary without
    decoding its JSON)."""
    conn.executemany(
        "INSERT OR IGNORE INTO summary_messages (leaf_index, message) VALUES (?, ?)",
        ((leaf, summary.SerializeToString()) for leaf, summary in decoded),
    )


def keep(conn: sqlite3.Connection, decoded: Mapping[int, pb.SiteSummary]) -> str | None:
    """Keep each leaf's decoded message. Returns why they could not be kept (a read-only or busy
    database), else None: nothing depends on it, the next run decodes them again."""
    if not decoded:
        return None
    try:
        with conn:
            if not _kept(conn):
                conn.execute(SCHEMA)
            conn.executemany(
                "INSERT OR IGNORE INTO summary_messages (leaf_index, message) VALUES (?, ?)",
                ((leaf, s.SerializeToString()) for leaf, s in decoded.items()),
            )
    except sqlite3.Error as exc:
        return (
            f"{len(decoded)} decoded summaries could not be kept for later runs ({exc}); "
            "the next run decodes them again"
        )
    return None
