"""SIGKILL the coordinator while submissions are in flight: every receipt a node received is in the
ledger after a restart, every summary is stored once, and resending finishes the job."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coordinator.config import init as init_coordinator
from node import config as node_config
from node import store as node_store
from node.client import CoordinatorClient, RpcFailure
from node.enroll import enroll
from protos import dsse, merkle, wire
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb

CLI = str(Path(sys.executable).parent / "rarenet-coordinator")
SITES, PER_SITE = 4, 60


def serve(data_dir: Path, tmp: Path, name: str) -> tuple[subprocess.Popen, int]:
    port_file = tmp / f"{name}.port"
    proc = subprocess.Popen(
        [
            CLI,
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, "coordinator did not start"
        time.sleep(0.05)
    return proc, int(port_file.read_text())


@pytest.mark.slow
def test_sigkill_mid_submissions_loses_no_receipted_summary(tmp_path: Path) -> None:
    data = init_coordinator(tmp_path / "coordinator")
    proc, port = serve(data.path, tmp_path, "first")
    nodes = []
    for i in range(SITES):
        site = f"lab-{i}"
        token = subprocess.run(
            [CLI, "sites", "add", "--data-dir", str(data.path), site],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        cfg = node_config.init(tmp_path / site, site, f"127.0.0.1:{port}", insecure=True)
        with CoordinatorClient(cfg) as client:
            enroll(cfg, node_store.connect(cfg.db_path), client, token)
        key = cfg.signing_key()
        envelopes = [
            dsse.sign(
                wire.SITE_SUMMARY,
                wire.encode(
                    pb.SiteSummary(
                        site_id=site,
                        period="2026Q3",
                        schema_version=1,
                        sequence=seq,
                        standard_version="2026.1",
                        strata=[
                            pb.StratumCounts(
                                biomarker="EGFR",
                                method="all",
                                specimen="tissue",
                                histology_group="all",
                                tests=100 + seq,
                                positive=40,
                                negative=60 + seq,
                            )
                        ],
                    )
                ),
                key,
            )
            for seq in range(1, PER_SITE + 1)
        ]
        nodes.append((cfg, envelopes))

    receipts: list[tuple[str, int, lpb.TreeHead]] = []
    lock = threading.Lock()

    def submit_all(cfg, envelopes):
        with CoordinatorClient(cfg) as client:
            for envelope in envelopes:
                try:
                    response = client.submit(envelope)
                except RpcFailure:
                    return
                receipt = wire.decode(response.receipt.payload, lpb.Receipt)
                with lock:
                    receipts.append(
                        (receipt.envelope_sha256, receipt.leaf_index, receipt.tree_head)
                    )

    threads = [threading.Thread(target=submit_all, args=node) for node in nodes]
    for t in threads:
        t.start()
    while len(receipts) < SITES * PER_SITE // 4:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join()
    assert 0 < len(receipts) < SITES * PER_SITE, "the kill did not land mid-way"

    conn = sqlite3.connect(data.db)
    ledger = dict(conn.execute("SELECT envelope_sha256, leaf_index FROM ledger"))
    for sha, leaf_index, _ in receipts:
        assert ledger.get(sha) == leaf_index, "a receipted envelope is missing from the ledger"
    indexes = sorted(ledger.values())
    assert indexes == list(range(len(indexes)))
    assert conn.execute("SELECT COUNT(*) FROM summaries").fetchone()[0] == len(ledger)
    assert conn.execute("SELECT COUNT(DISTINCT leaf_index) FROM strata").fetchone()[0] == len(
        ledger
    )
    leaves = [bytes(h) for (h,) in conn.execute("SELECT leaf_hash FROM ledger ORDER BY leaf_index")]
    conn.close()
    tree = merkle.Tree(leaves)
    biggest = max((head for _, _, head in receipts), key=lambda h: h.tree_size)
    assert (
        tree.root(biggest.tree_size) == biggest.root_hash
    )  # what was signed is still what is stored

    proc, port = serve(data.path, tmp_path, "second")
    try:
        for cfg, envelopes in nodes:
            cfg.coordinator = f"127.0.0.1:{port}"
            with CoordinatorClient(cfg) as client:
                for envelope in envelopes:
                    sha = wire.envelope_sha256(envelope)
                    response = client.submit(envelope)
                    receipt = wire.decode(response.receipt.payload, lpb.Receipt)
                    if sha in ledger:
                        assert (
                            receipt.leaf_index == ledger[sha]
                        )  # the original receipt, not a second entry
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    conn = sqlite3.connect(data.db)
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == SITES * PER_SITE
    assert conn.execute("SELECT COUNT(*) FROM summaries").fetchone()[0] == SITES * PER_SITE
