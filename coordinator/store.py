"""The coordinator's SQLite database (WAL). Ledger, summaries and receipts are written together."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from coordinator.config import SetupError
from protos.schema import Layout, Migration, open_layout

# The layout policy (PRAGMA user_version, migrations) is protos/schema.py's, shared with the node.
SCHEMA = """
CREATE TABLE IF NOT EXISTS sites (
    site_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,               -- pending (token issued), active, revoked
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (site_id),
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS site_keys (
    keyid TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (site_id),
    public_key BLOB NOT NULL,
    enrolled_at TEXT NOT NULL,
    retired_at TEXT,                    -- replaced by a rotation or revoked
    enrolment BLOB NOT NULL             -- the signed enrolment request, for auditors
);
CREATE TABLE IF NOT EXISTS ledger (
    leaf_index INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    leaf_header BLOB,                   -- the leaf data (protos/leaf.py); NULL: the leaf is the envelope
    envelope BLOB NOT NULL,
    envelope_sha256 TEXT NOT NULL UNIQUE,
    site_id TEXT NOT NULL,
    keyid TEXT NOT NULL,
    payload_type TEXT NOT NULL,
    period TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    receipt BLOB NOT NULL,
    tree_head BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_site ON ledger (site_id, sequence);
CREATE TABLE IF NOT EXISTS summaries (
    leaf_index INTEGER PRIMARY KEY REFERENCES ledger (leaf_index),
    site_id TEXT NOT NULL,
    period TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    standard_version TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS summaries_period ON summaries (period, site_id, sequence);
-- The strata of every stored summary, one row each, for analysts' SQL: read from the payloads, so
-- a submission writes its summary once however many strata it has.
CREATE VIEW IF NOT EXISTS strata AS
SELECT s.leaf_index, s.site_id, s.period,
       ifnull(json_extract(j.value, '$.biomarker'), '') AS biomarker,
       ifnull(json_extract(j.value, '$.method'), '') AS method,
       ifnull(json_extract(j.value, '$.specimen'), '') AS specimen,
       ifnull(json_extract(j.value, '$.histology_group'), '') AS histology_group,
       ifnull(json_extract(j.value, '$.tests'), 0) AS tests,
       ifnull(json_extract(j.value, '$.positive'), 0) AS positive,
       ifnull(json_extract(j.value, '$.negative'), 0) AS negative,
       ifnull(json_extract(j.value, '$.failed'), 0) AS failed,
       ifnull(json_extract(j.value, '$.equivocal'), 0) AS equivocal,
       ifnull(json_extract(j.value, '$.withheld'), 0) AS withheld
FROM summaries s, json_each(s.payload, '$.strata') j;
CREATE TABLE IF NOT EXISTS eqa_rounds (
    round_id TEXT PRIMARY KEY,
    announcement BLOB NOT NULL,     -- the signed EqaRound (re-signed with the salt at closing)
    deadline TEXT NOT NULL,
    salt TEXT NOT NULL,             -- revealed only at closing
    truth BLOB,                     -- stored only at closing
    closed_at TEXT
);
CREATE TABLE IF NOT EXISTS eqa_responses (
    leaf_index INTEGER PRIMARY KEY,
    round_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS eqa_scores (
    round_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    sheet BLOB NOT NULL,            -- the signed EqaScoreSheet
    PRIMARY KEY (round_id, site_id)
);
-- Corrective actions (coordinator/actions.py): each signed version, beside its ledger entry.
CREATE TABLE IF NOT EXISTS corrective_actions (
    leaf_index INTEGER PRIMARY KEY,
    site_id TEXT NOT NULL,
    action_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    signed BLOB NOT NULL
);
"""


def _strata_as_view(conn: sqlite3.Connection) -> None:
    """Earlier versions wrote a `strata` table row by row; the view (in SCHEMA) reads the same
    from the stored payloads."""
    if conn.execute("SELECT type FROM sqlite_master WHERE name = 'strata'").fetchone() == (
        "table",
    ):
        conn.execute("DROP TABLE strata")


def _add_leaf_headers(conn: sqlite3.Connection) -> None:
    """Stores from before leaf headers gain the column; their leaves keep the whole-envelope form
    and their hashes (heads were signed over them), and new leaves are appended as headers."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
    if columns and "leaf_header" not in columns:
        conn.execute("ALTER TABLE ledger ADD COLUMN leaf_header BLOB")


LAYOUT = Layout(
    what="coordinator database",
    version=2,
    schema=SCHEMA,
    migrations=(
        # Databases written before layouts were numbered have user_version 0; each step checks
        # what is there, as such a database may already have either change.
        Migration(1, "the strata table becomes a view over the stored payloads", _strata_as_view),
        Migration(2, "ledger.leaf_header: new leaves commit to a LeafHeader", _add_leaf_headers),
    ),
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA page_size=16384")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        open_layout(conn, path, LAYOUT, SetupError)
    except BaseException:
        conn.close()
        raise
    return conn


_LEAVES_AT_ONCE = 500  # leaf indexes per query (SQLite allows 999 parameters)


def rows_by_leaf(
    conn: sqlite3.Connection, table: str, column: str, leaves: Sequence[int]
) -> Iterator[tuple[int, Any]]:
    """(leaf_index, column) of `table`'s rows for `leaves`, read a few hundred leaves a query."""
    for i in range(0, len(leaves), _LEAVES_AT_ONCE):
        chunk = leaves[i : i + _LEAVES_AT_ONCE]
        yield from conn.execute(
            f"SELECT leaf_index, {column} FROM {table}"
            f" WHERE leaf_index IN ({','.join('?' * len(chunk))})",
            chunk,
        )
