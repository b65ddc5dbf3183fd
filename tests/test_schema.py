"""One layout policy for both databases (protos/schema.py): PRAGMA user_version, ordered
migrations each in its own transaction, refusal of layouts it cannot read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordinator import store as coordinator_store
from coordinator.config import SetupError
from node import store as node_store
from node.errors import ConfigError
from protos.schema import Layout, Migration, open_layout


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_an_unnumbered_coordinator_database_is_migrated(tmp_path: Path) -> None:
    """A database of the versions before layouts were numbered: user_version 0, strata a table,
    no ledger.leaf_header column."""
    path = tmp_path / "coordinator.db"
    coordinator_store.connect(path).close()
    old = sqlite3.connect(path)
    old.execute("PRAGMA user_version = 0")
    old.execute("DROP VIEW strata")
    old.execute("CREATE TABLE strata (leaf_index INTEGER, biomarker TEXT, tests INTEGER)")
    old.execute("INSERT INTO strata VALUES (0, 'EGFR', 12)")
    old.execute("ALTER TABLE ledger DROP COLUMN leaf_header")
    old.execute("INSERT INTO sites VALUES ('lab-a', 'active', '2026-07-01T00:00:00', NULL)")
    old.commit()
    old.close()

    conn = coordinator_store.connect(path)
    kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'strata'").fetchone()
    assert kind == ("view",)
    assert "leaf_header" in {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
    assert conn.execute("SELECT site_id FROM sites").fetchall() == [("lab-a",)]
    conn.close()
    assert user_version(path) == coordinator_store.LAYOUT.version == 2
    coordinator_store.connect(path).close()  # opening again changes nothing
    assert user_version(path) == 2


def test_a_coordinator_database_numbered_1_gains_leaf_headers(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.db"
    coordinator_store.connect(path).close()
    old = sqlite3.connect(path)
    old.execute("ALTER TABLE ledger DROP COLUMN leaf_header")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    conn = coordinator_store.connect(path)
    assert "leaf_header" in {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
    conn.close()
    assert user_version(path) == 2


def test_a_new_database_gets_the_current_layout(tmp_path: Path) -> None:
    coordinator_store.connect(tmp_path / "c.db").close()
    node_store.connect(tmp_path / "n.db").close()
    assert user_version(tmp_path / "c.db") == coordinator_store.LAYOUT.version
    assert user_version(tmp_path / "n.db") == node_store.SCHEMA_VERSION


@pytest.mark.parametrize(
    ("connect", "error"),
    [(coordinator_store.connect, SetupError), (node_store.connect, ConfigError)],
    ids=["coordinator", "node"],
)
def test_a_newer_layout_is_refused_and_left_alone(tmp_path: Path, connect, error) -> None:
    path = tmp_path / "x.db"
    connect(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(error, match="layout 99, made by a newer version of rarenet"):
        connect(path)
    assert user_version(path) == 99


def test_migrations_run_in_order_each_atomic(tmp_path: Path) -> None:
    ran: list[int] = []

    def step(version: int, fail: bool = False):
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(f"ALTER TABLE t ADD COLUMN c{version} INTEGER")
            ran.append(version)
            if fail:
                raise RuntimeError(f"migration {version} failed")

        return run

    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (a INTEGER)")  # layout 1, written before numbering began
    conn.execute("PRAGMA user_version = 1")
    schema = "CREATE TABLE IF NOT EXISTS t (a INTEGER);"
    failing = Layout(
        "test database",
        4,
        schema,
        (
            Migration(2, "c2", step(2)),
            Migration(3, "c3", step(3, fail=True)),
            Migration(4, "", step(4)),
        ),
    )
    with pytest.raises(RuntimeError, match="migration 3 failed"):
        open_layout(conn, path, failing, ValueError)
    # 2 committed; 3 rolled back with its column; 4 never started.
    assert ran == [2, 3] and user_version(path) == 2
    columns = [row[1] for row in conn.execute("PRAGMA table_info(t)")]
    assert columns == ["a", "c2"]

    fixed = Layout(
        "test database",
        4,
        schema,
        (Migration(2, "c2", step(2)), Migration(3, "c3", step(3)), Migration(4, "c4", step(4))),
    )
    done = open_layout(conn, path, fixed, ValueError)
    assert [m.version for m in done] == [3, 4] and user_version(path) == 4
    assert [row[1] for row in conn.execute("PRAGMA table_info(t)")] == ["a", "c2", "c3", "c4"]
    conn.close()


def test_a_layout_without_a_migration_from_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (a INTEGER)")
    layout = Layout("test database", 3, "", (Migration(3, "", lambda c: None),))
    with pytest.raises(ValueError, match="layout 0, made by an earlier development version"):
        open_layout(conn, path, layout, ValueError)
    assert user_version(path) == 0
    conn.close()
