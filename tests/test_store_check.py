"""The coordinator checks its own store at start and with `rarenet-coordinator check`: a truncated
ledger, an edited summary or flipped bytes are found, and such a store is not served."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from coordinator.cli import main as coordinator_cli
from coordinator.server import start
from coordinator.store_check import StoreDamaged, check_store
from node.send import flush, queue_summary
from node.standard import load_cached
from tests.conftest import PERIOD


@pytest.fixture
def stored(coordinator, node_factory, synthetic_csv):
    """A stopped coordinator's data directory holding three accepted summaries."""
    for i, site in enumerate(("lab-a", "lab-b", "lab-c")):
        node = node_factory(site)
        node.ingest(synthetic_csv(site, rows=400, seed=i + 1))
        queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
        assert flush(node.conn, node.config, node.client).delivered
    data = coordinator.service.data
    coordinator.stop(grace=1)
    return data


def tamper(data, *statements: str) -> None:
    conn = sqlite3.connect(data.db)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def check_cli(data) -> tuple[int, str]:
    result = CliRunner().invoke(coordinator_cli, ["check", "--data-dir", str(data.path)])
    return result.exit_code, result.output


def refused_at_start(data) -> str:
    with pytest.raises(StoreDamaged) as caught:
        start(data, "127.0.0.1:0", insecure=True)
    message = str(caught.value)
    assert "restore coordinator.db from the latest backup" in message
    assert f"rarenet-coordinator check --data-dir {data.path}" in message
    return message


def test_an_intact_store_passes_and_is_served(stored) -> None:
    code, output = check_cli(stored)
    assert code == 0 and "OK: 3 ledger entries" in output and "3 stored summaries" in output
    start(stored, "127.0.0.1:0", insecure=True).stop(grace=1)


def test_a_truncated_ledger_is_refused(stored) -> None:
    tamper(
        stored,
        "DELETE FROM summaries WHERE leaf_index = 2",
        "DELETE FROM ledger WHERE leaf_index = 2",
    )
    assert "covers 3 ledger entries but the ledger holds 2" in refused_at_start(stored)
    code, output = check_cli(stored)
    assert code == 1 and "truncated ledger" in output and "restore" in output


def test_an_edited_summary_payload_is_refused(stored) -> None:
    tamper(
        stored,
        # every positive count gains a leading 1 (5 becomes 15): the benchmark would change
        "UPDATE summaries SET payload = replace(payload, '\"positive\": ', '\"positive\": 1')"
        " WHERE leaf_index = 1",
    )
    assert check_store(stored).problems == [
        "summary of leaf 1 (lab-b, 2026Q3) differs from the signed payload in the ledger: it was edited"
    ]
    assert "it was edited" in refused_at_start(stored)
    code, _ = check_cli(stored)
    assert code == 1


def test_an_edited_ledger_entry_is_refused(stored) -> None:
    tamper(stored, "UPDATE ledger SET leaf_hash = zeroblob(32) WHERE leaf_index = 0")
    message = refused_at_start(stored)
    assert "ledger leaf 0: the leaf hash is not that of its data" in message
    assert "not the root of the latest signed tree head" in message


def test_flipped_bytes_in_the_database_file_are_refused(stored) -> None:
    conn = sqlite3.connect(stored.db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root_page,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'ledger'"
    ).fetchone()
    conn.close()
    raw = bytearray(stored.db.read_bytes())
    offset = (root_page - 1) * page_size
    for i in range(offset + 8, offset + 40):  # the ledger table's b-tree page header and cells
        raw[i] ^= 0xFF
    stored.db.write_bytes(bytes(raw))
    message = refused_at_start(stored)
    assert "damaged" in message
    code, output = check_cli(stored)
    assert code == 1 and "damaged" in output
