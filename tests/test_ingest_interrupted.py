"""kill -9 in the middle of an ingest leaves the database as it was; running again gives the same result."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node import config as node_config
from node import store
from node.synth import generate, write_csv
from node.validate import WORKER_MIN_BYTES
from tests.conftest import PERIOD, alive, helper_pids

CLI = str(Path(sys.executable).parent / "rarenet-node")


def snapshot(db: Path) -> list[tuple]:
    conn = store.connect(db)
    try:
        return conn.execute(
            "SELECT test_id, biomarker, method, result, patient_key, ingest_id, line FROM results ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_mid_file_leaves_database_unchanged(tmp_path: Path) -> None:
    cfg = node_config.init(tmp_path / "node", "lab-k", "127.0.0.1:1", insecure=True)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    write_csv(generate("lab-k", 500, 1, ("normal",), PERIOD), small)
    write_csv(generate("lab-k", 250_000, 2, ("normal",), PERIOD, id_prefix="B"), big)
    subprocess.run(
        [CLI, "ingest", "--data-dir", str(cfg.data_dir), str(small)],
        check=True,
        capture_output=True,
    )
    before = snapshot(cfg.db_path)
    assert len(before) == 500

    proc = subprocess.Popen(
        [CLI, "ingest", "--data-dir", str(cfg.data_dir), str(big)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wal = cfg.db_path.with_name("node.db-wal")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size > 2_000_000:  # the transaction is well under way
            break
        time.sleep(0.01)
    assert proc.poll() is None, (
        "ingest finished before it could be interrupted; make the file bigger"
    )
    assert big.stat().st_size >= WORKER_MIN_BYTES  # so rows are validated in a second process
    (worker,) = helper_pids("node.validate", root=proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot(cfg.db_path) == before
    # The validating process sees its pipe close and stops too.
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker)

    done = subprocess.run(
        [CLI, "ingest", "--data-dir", str(cfg.data_dir), "--json", str(big)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert '"accepted": 250000' in done.stdout
    after = snapshot(cfg.db_path)
    assert len(after) == 250_500
    clean = node_config.init(tmp_path / "clean", "lab-k", "127.0.0.1:1", insecure=True)
    for path in (small, big):
        subprocess.run(
            [CLI, "ingest", "--data-dir", str(clean.data_dir), str(path)],
            check=True,
            capture_output=True,
        )
    assert [r[:4] for r in snapshot(clean.db_path)] == [r[:4] for r in after]
