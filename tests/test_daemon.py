"""The node daemon with real processes: a coordinator outage and a node killed mid-send lose and
duplicate nothing; the scheduler runs on short intervals, not minutes of sleeping."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.config import init as init_coordinator
from node import config as node_config
from node import outbox, store
from node.client import CoordinatorClient
from node.enroll import enroll
from node.ingest import ingest_file
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.send import queue_summary
from node.standard import load_cached
from node.synth import generate, write_csv
from protos.periods import parse as parse_period

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_started: list[subprocess.Popen] = []


def started(proc: subprocess.Popen) -> subprocess.Popen:
    """Remember a process this module started, so that a failing test does not leave it running."""
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            str(BIN / "rarenet-coordinator"),
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--insecure",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started(proc)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None and time.monotonic() < deadline, "the coordinator did not start"
        time.sleep(0.05)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=30)


def until(condition, seconds: float = 60, what: str = "", explain=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{explain()}"
        time.sleep(0.05)


def setup(tmp_path: Path, port: int, coordinator_dir: Path):
    token = subprocess.run(
        [
            str(BIN / "rarenet-coordinator"),
            "sites",
            "add",
            "--data-dir",
            str(coordinator_dir),
            "lab-d",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cfg = node_config.init(tmp_path / "node", "lab-d", f"127.0.0.1:{port}", insecure=True)
    conn = store.connect(cfg.db_path)
    with CoordinatorClient(cfg) as client:
        enroll(cfg, conn, client, token)
    text = (cfg.data_dir / "node.toml").read_text()
    for old, new in (
        ("watch_every_seconds = 60", "watch_every_seconds = 0.5"),
        ("send_every_seconds = 60", "send_every_seconds = 0.5"),
        ("retry_base_seconds = 30", "retry_base_seconds = 0.2"),
        ("retry_max_seconds = 21600", "retry_max_seconds = 1"),
    ):
        text = text.replace(old, new)
    (cfg.data_dir / "node.toml").write_text(text)
    return node_config.load(cfg.data_dir), conn


def explain_outbox(conn, log_path: Path) -> str:
    rows = conn.execute(
        "SELECT sequence, period, attempts, next_attempt_at, last_error FROM outbox"
    ).fetchall()
    return f"outbox: {rows}\nlog tail: {log_path.read_text()[-3000:]}"


def ledger_rows(coordinator_dir: Path) -> list[tuple]:
    conn = sqlite3.connect(coordinator_dir / "coordinator.db")
    try:
        return conn.execute(
            "SELECT site_id, sequence, envelope_sha256 FROM ledger ORDER BY leaf_index"
        ).fetchall()
    finally:
        conn.close()


def delivered(conn) -> int:
    return conn.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL").fetchone()[0]


@pytest.mark.slow
def test_coordinator_outage_then_every_envelope_arrives_once(tmp_path: Path) -> None:
    data = init_coordinator(tmp_path / "coordinator")
    port = free_port()
    coordinator = serve(data.path, port)
    cfg, conn = setup(tmp_path, port, data.path)
    stop(coordinator)  # the centre goes down

    # The lab drops two quarters of exports in the watch folder; the daemon ingests them, signs the
    # closed periods at start-up and keeps failing to send.
    for label in ("2026Q2", "2026Q3"):
        write_csv(
            generate("lab-d", 1500, 1, ("normal",), parse_period(label)),
            Path(cfg.daemon.watch_dir) / f"export-{label}.csv",
        )
    log_path = (
        tmp_path / "daemon.log"
    )  # a file, not a pipe: a full pipe would block the daemon's logging
    daemon = subprocess.Popen(
        [str(BIN / "rarenet-node"), "run", "--data-dir", str(cfg.data_dir), "--log-format", "json"],
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("w"),
    )
    started(daemon)
    try:
        until(
            lambda: (
                len(list((Path(cfg.daemon.watch_dir) / "processed").glob("*.csv.report.json"))) == 2
            ),
            what="ingest",
        )
        until(
            lambda: (
                conn.execute("SELECT COUNT(*) FROM outbox WHERE attempts > 0").fetchone()[0] >= 1
            ),
            what="failed attempts while the coordinator is down",
        )
        subprocess.run(
            [
                str(BIN / "rarenet-node"),
                "submit",
                "--data-dir",
                str(cfg.data_dir),
                "--period",
                "2026Q3",
            ],
            capture_output=True,
        )  # a lab admin's manual try while the centre is down: kept, not lost
        pending = len(outbox.pending(conn))
        assert pending >= 1 and ledger_rows(data.path) == []
        coordinator = serve(data.path, port)  # the centre is back
        until(
            lambda: not outbox.pending(conn),
            what="the outbox to drain",
            explain=lambda: explain_outbox(conn, log_path),
        )
    finally:
        code = stop(daemon)
        logs = log_path.read_text()
    assert code == 0, logs
    assert '"level": "info"' in logs and "delivered sequence" in logs
    rows = ledger_rows(data.path)
    sent = conn.execute("SELECT envelope_sha256 FROM outbox ORDER BY sequence").fetchall()
    assert [r[2] for r in rows] == [s[0] for s in sent]  # every envelope once, in order
    assert len({r[1] for r in rows}) == len(rows)
    stop(coordinator)


@pytest.mark.slow
def test_node_killed_mid_send_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = init_coordinator(tmp_path / "coordinator")
    port = free_port()
    coordinator = serve(data.path, port)
    cfg, conn = setup(tmp_path, port, data.path)
    for year in range(2020, 2026):  # results in every quarter (an empty period is not signed)
        write_csv(
            generate("lab-d", 300, 1, ("normal",), parse_period(str(year))), tmp_path / "x.csv"
        )
        ingest_file(conn, tmp_path / "x.csv", Pseudonymiser(cfg.pseudonym_secret()), Mapping())
    standard = load_cached(cfg.standard_path)
    stop(coordinator)
    quarters = [f"{y}Q{q}" for y in range(2020, 2026) for q in range(1, 5)]
    for label in quarters:  # 24 signed envelopes waiting in the outbox
        assert queue_summary(conn, cfg, standard, parse_period(label)).sequence is not None
    coordinator = serve(data.path, port)
    daemon = subprocess.Popen(
        [str(BIN / "rarenet-node"), "run", "--data-dir", str(cfg.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started(daemon)
    until(lambda: delivered(conn) >= 2, what="the first deliveries")
    stop(daemon, signal.SIGKILL)
    assert delivered(conn) < len(quarters), "all were sent before the kill: nothing was tested"
    daemon = subprocess.Popen(
        [str(BIN / "rarenet-node"), "run", "--data-dir", str(cfg.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started(daemon)
    try:
        until(
            lambda: delivered(conn) == len(quarters) + 2 or not outbox.pending(conn),
            what="all deliveries",
        )
    finally:
        assert stop(daemon) == 0
    rows = ledger_rows(data.path)
    sent = [s for (s,) in conn.execute("SELECT envelope_sha256 FROM outbox ORDER BY sequence")]
    assert [r[2] for r in rows] == sent and len(set(sent)) == len(sent)
    assert conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == len(sent)
    check = subprocess.run(
        [str(BIN / "rarenet-node"), "verify-receipts", "--data-dir", str(cfg.data_dir)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and f"{len(sent)} receipt(s) verified" in check.stdout, (
        check.stderr
    )
    stop(coordinator)


def test_period_close_job_with_a_controlled_date(coordinator, node_factory, synthetic_csv) -> None:
    from node import daemon

    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=800))  # results reported in 2026Q3
    data_dir = str(node.config.data_dir)
    # On 2026-09-30 the last two closed quarters are Q1 and Q2: no results, so nothing is signed
    # (an empty summary would say nothing and use up a sequence number) and Q3 is still open.
    assert daemon.summarise(data_dir, today="2026-09-30") == []
    assert daemon.summarise(data_dir, today="2026-10-01") == [1]  # Q3 has just closed
    periods = [p for (p,) in node.conn.execute("SELECT period FROM outbox ORDER BY sequence")]
    assert periods == ["2026Q3"]
    assert (
        daemon.summarise(data_dir, today="2026-10-02") == []
    )  # nothing changed: nothing signed again
    report = daemon.deliver(data_dir)
    assert [s for s, _ in report.delivered] == [1] and report.pending == 0


@pytest.mark.slow
def test_reports_follow_closed_periods_and_late_summaries(
    coordinator, node_factory, synthetic_csv
) -> None:
    import datetime as dt

    from coordinator import reporting

    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=800))
    from node import daemon

    daemon.summarise(str(node.config.data_dir), today="2026-10-01")
    daemon.deliver(str(node.config.data_dir))
    data, standard = coordinator.service.data, coordinator.service.standard
    # Q1 and Q2 have no summaries (the node signs no empty period): no report for them.
    assert reporting.refresh(data, standard, today=dt.date(2026, 9, 15)) == []
    assert reporting.refresh(data, standard, today=dt.date(2026, 10, 2)) == ["2026Q3"]
    assert (data.path / "reports" / "2026Q3" / "index.html").exists()
    assert reporting.refresh(data, standard, today=dt.date(2026, 10, 3)) == []  # nothing new
    node.ingest(
        synthetic_csv("lab-a", rows=200, seed=5, name="late.csv")
    )  # late results for 2026Q3
    daemon.summarise(str(node.config.data_dir), today="2026-10-04")
    daemon.deliver(str(node.config.data_dir))
    assert reporting.refresh(data, standard, today=dt.date(2026, 10, 5)) == ["2026Q3"]
    # benchmark.json is the benchmark of every summary now, encoded once and kept as written
    import sqlite3

    from coordinator import benchmark, kept_benchmark

    with sqlite3.connect(data.db) as conn:
        now = benchmark.compute(conn, "2026Q3", standard)
        fingerprint = benchmark.stored_fingerprint(conn, "2026Q3", standard)
        kept = kept_benchmark.find(conn, "2026Q3", fingerprint)
    written = (data.path / "reports" / "2026Q3" / "benchmark.json").read_bytes()
    assert written == benchmark.benchmark_bytes(now) == kept


def test_due_envelopes_never_overtake_one_that_is_backing_off(tmp_path: Path) -> None:
    import datetime as dt

    from protos import dsse, keys, wire

    cfg = node_config.init(tmp_path / "n", "lab-o", "127.0.0.1:1", insecure=True)
    conn = store.connect(cfg.db_path)
    key = keys.generate()
    for sequence in (1, 2, 3):
        outbox.add(
            conn,
            dsse.sign(wire.SITE_SUMMARY, b'{"sequence": %d}' % sequence, key),
            "2026Q3",
            sequence,
        )
    first = outbox.pending(conn)[0]
    outbox.mark_failed(conn, first.sha256, "down", base=3600, maximum=3600)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    conn.execute("UPDATE outbox SET next_attempt_at = ? WHERE sequence = 1", (later,))
    assert outbox.pending(conn, due_only=True) == []  # 2 and 3 wait behind 1
    assert [p.sequence for p in outbox.pending(conn)] == [1, 2, 3]
    outbox.mark_rejected(conn, first.sha256, "INVALID_ARGUMENT: bad")
    assert [p.sequence for p in outbox.pending(conn, due_only=True)] == [2, 3]
    assert outbox.rejected(conn) == [(1, "2026Q3", "INVALID_ARGUMENT: bad")]


@pytest.mark.slow
def test_one_daemon_per_data_directory(tmp_path: Path) -> None:
    cfg = node_config.init(tmp_path / "n", "lab-r", "127.0.0.1:1", insecure=True)
    first = subprocess.Popen(
        [str(BIN / "rarenet-node"), "run", "--data-dir", str(cfg.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started(first)
    try:
        until(
            lambda: (
                (cfg.data_dir / "run.lock").exists()
                and (cfg.data_dir / "run.lock").read_text().strip()
            ),
            what="the first daemon's lock",
        )
        second = subprocess.run(
            [str(BIN / "rarenet-node"), "run", "--data-dir", str(cfg.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1 and "already running" in second.stderr
    finally:
        assert stop(first) == 0
