"""A node notices when the coordinator's log shrinks or is rewritten (verify-receipts)."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from click.testing import CliRunner

from coordinator.server import Running, start
from node.cli import main as node_cli
from node.client import CoordinatorClient
from node.errors import LedgerAlarm
from node.receipts import coordinator_key, verify_all
from node.send import flush, queue_summary
from node.standard import load_cached
from protos import dsse, leaf, merkle, wire
from protos.periods import parse as parse_period
from protos.rarenet.v1 import ledger_pb2 as lpb


def submit_two(node_factory, synthetic_csv):
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=600))
    standard = load_cached(node.config.standard_path)
    queue_summary(node.conn, node.config, standard, parse_period("2026Q3"))
    node.ingest(synthetic_csv("lab-a", rows=300, seed=9, name="more.csv"))
    queue_summary(node.conn, node.config, standard, parse_period("2026Q3"))
    assert len(flush(node.conn, node.config, node.client).delivered) == 2
    return node


def restart(coordinator, tamper) -> Running:
    data = coordinator.service.data
    coordinator.stop(grace=1)
    conn = sqlite3.connect(data.db)
    tamper(conn)
    conn.commit()
    conn.close()
    # A coordinator that does not check its own store (as a dishonest one would not): the nodes'
    # checks must catch what it serves.
    return start(data, "127.0.0.1:0", insecure=True, check_store=False)


def client_for(node, running) -> CoordinatorClient:
    return CoordinatorClient(
        dataclasses.replace(node.config, coordinator=f"127.0.0.1:{running.port}")
    )


def test_receipts_verify_against_an_honest_log(coordinator, node_factory, synthetic_csv) -> None:
    node = submit_two(node_factory, synthetic_csv)
    result = CliRunner().invoke(
        node_cli, ["verify-receipts", "--data-dir", str(node.config.data_dir)]
    )
    assert result.exit_code == 0 and "2 receipt(s) verified" in result.output


def test_truncated_log_is_detected(coordinator, node_factory, synthetic_csv) -> None:
    node = submit_two(node_factory, synthetic_csv)

    def truncate(conn):
        conn.execute("DELETE FROM summaries WHERE leaf_index >= 1")
        conn.execute("DELETE FROM ledger WHERE leaf_index >= 1")
        conn.execute("DELETE FROM tree_heads WHERE tree_size >= 2")

    running = restart(coordinator, truncate)
    try:
        with client_for(node, running) as client, pytest.raises(LedgerAlarm, match="shrank"):
            verify_all(node.conn, client, coordinator_key(node.config))
    finally:
        running.stop(grace=1)


def test_rewritten_log_is_detected(coordinator, node_factory, synthetic_csv) -> None:
    node = submit_two(node_factory, synthetic_csv)

    key = coordinator.service.data.signing_key()

    def rewrite(conn):
        """A coordinator that rewrites its history and covers its tracks, so that its own store
        check passes: leaf 0 becomes an envelope of its own making (same payload, its own
        signature), and the latest tree head is signed again over the rewritten tree."""
        (data,) = conn.execute("SELECT envelope FROM ledger WHERE leaf_index = 0").fetchone()
        original = wire.parse_envelope(bytes(data))
        forged = dsse.sign(original.payload_type, original.payload, key)
        header = leaf.header_data(leaf.header_for(forged))
        conn.execute(
            "UPDATE ledger SET envelope = ?, envelope_sha256 = ?, leaf_header = ?, leaf_hash = ?"
            " WHERE leaf_index = 0",
            (
                wire.envelope_bytes(forged),
                wire.envelope_sha256(forged),
                header,
                merkle.leaf_hash(header),
            ),
        )
        hashes = [
            bytes(h) for (h,) in conn.execute("SELECT leaf_hash FROM ledger ORDER BY leaf_index")
        ]
        tree = merkle.Tree(hashes)
        head = lpb.TreeHead(tree_size=len(tree), root_hash=tree.root(), timestamp_ms=1)
        conn.execute(
            "UPDATE tree_heads SET root_hash = ?, signed = ? WHERE tree_size = ?",
            (
                head.root_hash,
                wire.envelope_bytes(dsse.sign(wire.TREE_HEAD, wire.encode(head), key)),
                len(tree),
            ),
        )

    running = restart(coordinator, rewrite)
    try:
        # The rewritten tree no longer proves the receipted envelope under the signed root.
        with (
            client_for(node, running) as client,
            pytest.raises(LedgerAlarm, match="no longer in|forked"),
        ):
            verify_all(node.conn, client, coordinator_key(node.config))
        runner = CliRunner()
        cfg_path = node.config.data_dir / "node.toml"
        cfg_path.write_text(
            cfg_path.read_text().replace(node.config.coordinator, f"127.0.0.1:{running.port}")
        )
        result = runner.invoke(
            node_cli, ["verify-receipts", "--data-dir", str(node.config.data_dir)]
        )
        assert result.exit_code == 1 and "ALARM" in result.output
    finally:
        running.stop(grace=1)
