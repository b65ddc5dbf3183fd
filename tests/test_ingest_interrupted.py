"""kill -9 in the middle of an ingest leaves the database as it was; running again gives the same result."""

from __future__ import annotations

import ctypes
import os
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
from tests.conftest import PERIOD

CLI = str(Path(sys.executable).parent / "rarenet-node")


def snapshot(db: Path) -> list[tuple]:
    conn = store.connect(db)
    try:
        return conn.execute(
            "SELECT test_id, biomarker, method, result, patient_key, ingest_id, line FROM results ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        conn.close()


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


class adopting_orphans:
    """Within the block, orphaned descendants of this process become its children (Linux)."""

    def __enter__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        if self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            pytest.skip("cannot adopt orphaned processes here (prctl PR_SET_CHILD_SUBREAPER)")

    def __exit__(self, *exc: object) -> None:
        self.libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def wait_for_group(group: int, seconds: float) -> int | None:
    """The pid of a child of this process in process group `group` that has ended (reaped), or
    None if none ended within `seconds` or none is left."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            ended = os.waitid(os.P_PGID, group, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return None
        if ended is not None:
            return ended.si_pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


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

    # The ingest runs in a session of its own, and this process adopts its orphans (a child
    # subreaper): once the ingest is killed, its validating process is this test's child, found
    # and waited for by its process group. Nothing else is looked up or signalled.
    with adopting_orphans():
        proc = subprocess.Popen(
            [CLI, "ingest", "--data-dir", str(cfg.data_dir), str(big)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wal = cfg.db_path.with_name("node.db-wal")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if wal.exists() and wal.stat().st_size > 2_000_000:  # well under way
                    break
                time.sleep(0.01)
            assert proc.poll() is None, (
                "ingest finished before it could be interrupted; make the file bigger"
            )
            assert big.stat().st_size >= WORKER_MIN_BYTES  # rows are validated in a second process
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert snapshot(cfg.db_path) == before
            # The validating process sees its pipe close and stops too.
            ended = wait_for_group(proc.pid, seconds=10)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, if any is left
            except ProcessLookupError:
                pass
            while wait_for_group(proc.pid, seconds=0):
                pass
    assert ended is not None, "the validating process outlived the killed ingest"

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
