"""The node's local SQLite database: results (pseudonymised), quarantine, outbox, receipts, state."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import overload

import sqlite_utils

from node.errors import ConfigError
from protos.schema import Layout, Migration, open_layout

# The layout policy (PRAGMA user_version, migrations) is protos/schema.py's, shared with the
# coordinator. Layout 2: results.ingest_id names the file, no row hash. Layouts 0 and 1 were
# development versions; no migration starts from them.
SCHEMA_VERSION = 3  # PRAGMA user_version; 2: results.ingest_id names the file, no row hash; 3: ledger_alarms kind, lifted_at
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    test_id TEXT NOT NULL,
    biomarker TEXT NOT NULL,
    method TEXT NOT NULL,
    patient_key TEXT NOT NULL,          -- keyed hash; raw patient ids are never stored
    received_date TEXT NOT NULL,
    reported_date TEXT NOT NULL,
    specimen TEXT NOT NULL,
    histology TEXT NOT NULL,
    result TEXT NOT NULL,
    variant TEXT,
    vaf REAL,
    eqa_round TEXT,
    eqa_sample TEXT,
    ingest_id INTEGER NOT NULL,         -- the file it came from (ingests.id) ...
    line INTEGER NOT NULL,              -- ... and its line there
    PRIMARY KEY (test_id, biomarker, method)
) WITHOUT ROWID;
-- No secondary index: summaries scan the primary key in order (node/metrics.py), and one index
-- less makes ingest of a large export about 1.5 s per million rows faster.
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    row_json TEXT NOT NULL,             -- the row's canonical fields, patient id as its keyed hash
    ingested_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX IF NOT EXISTS quarantine_source ON quarantine (source, released_at);
CREATE TABLE IF NOT EXISTS ingests (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    sha256 TEXT,                        -- of the file's bytes, set when the file has been read
    ingested_at TEXT NOT NULL,
    rows INTEGER, accepted INTEGER, inserted INTEGER, updated INTEGER,
    duplicates INTEGER, quarantined INTEGER, released INTEGER
);
CREATE TABLE IF NOT EXISTS outbox (
    sequence INTEGER PRIMARY KEY,
    period TEXT NOT NULL,
    payload_type TEXT NOT NULL,
    envelope BLOB NOT NULL,
    envelope_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    delivered_at TEXT,
    rejected_at TEXT                    -- refused for good (not retried); shown by `status`
);
CREATE TABLE IF NOT EXISTS receipts (
    envelope_sha256 TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    period TEXT NOT NULL,
    leaf_index INTEGER NOT NULL,
    receipt BLOB NOT NULL,              -- the signed receipt envelope
    tree_head BLOB NOT NULL,            -- the signed tree head it was proved against
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    signed BLOB NOT NULL,
    seen_at TEXT NOT NULL
);
-- Every coordinator checkpoint seen (verified), and this node's cosignature as a witness.
-- Two rows of one size with different roots are a fork: see ledger_alarms.
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    note BLOB NOT NULL,                 -- the signed note as first received
    source TEXT NOT NULL,               -- submit (with a receipt) or published (GetCheckpoint)
    seen_at TEXT NOT NULL,
    cosignature TEXT,                   -- this node's cosignature/v1 line, once it cosigned
    cosigned_at TEXT,
    delivered_at TEXT,                  -- when the coordinator took the cosignature
    cosigners TEXT,                     -- JSON: other sites whose cosignatures verified on it
    PRIMARY KEY (tree_size, root_hash)
);
CREATE TABLE IF NOT EXISTS ledger_alarms (
    id INTEGER PRIMARY KEY,
    raised_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,             -- the directory holding the signed evidence
    kind TEXT NOT NULL DEFAULT 'checkpoint',  -- checkpoint (a fork seen as a witness) or receipts
    lifted_at TEXT                      -- receipts alarms: when verify-receipts passed again
);
CREATE TABLE IF NOT EXISTS privacy_budget (  -- differential privacy spent, one row per signed summary
    sequence INTEGER PRIMARY KEY,
    period TEXT NOT NULL,
    epsilon REAL NOT NULL,
    spent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS released_records (  -- what each period's last release counted
    period TEXT NOT NULL,
    k TEXT NOT NULL,                    -- test, biomarker, method
    v TEXT NOT NULL                     -- the values the metrics read
);
CREATE INDEX IF NOT EXISTS released_records_period ON released_records (period);
CREATE TABLE IF NOT EXISTS released_periods (period TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def _alarm_columns(conn: sqlite3.Connection) -> None:
    """Layout 3: ledger_alarms (made by layout 2 if the node ever ran a witness round) gains
    kind and lifted_at (node/alarms.py)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS ledger_alarms (id INTEGER PRIMARY KEY, raised_at TEXT NOT NULL,"
        " reason TEXT NOT NULL, evidence TEXT NOT NULL)"
    )
    columns = {row[1] for row in conn.execute("PRAGMA table_info(ledger_alarms)")}
    if "kind" not in columns:
        conn.execute("ALTER TABLE ledger_alarms ADD COLUMN kind TEXT NOT NULL DEFAULT 'checkpoint'")
    if "lifted_at" not in columns:
        conn.execute("ALTER TABLE ledger_alarms ADD COLUMN lifted_at TEXT")


LAYOUT = Layout(
    what="node database",
    version=SCHEMA_VERSION,
    schema=SCHEMA,
    migrations=(Migration(3, "ledger alarms: kind and lifted_at", _alarm_columns),),
    too_old="start a new data directory with `rarenet-node init`",
)


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the database: node.db is 0600, and SQLite gives its -wal and -shm files
    the database file's mode, whatever the umask."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "PRAGMA cache_size=-32768"
        )  # 32 MB of page cache: index inserts of large files
        conn.execute("PRAGMA foreign_keys=ON")
        open_layout(conn, path, LAYOUT, ConfigError)
    except BaseException:
        conn.close()
        raise
    return conn


def database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    return sqlite_utils.Database(conn)


@overload
def get_state(conn: sqlite3.Connection, key: str, default: str) -> str: ...
@overload
def get_state(conn: sqlite3.Connection, key: str, default: None = None) -> str | None: ...
def get_state(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
