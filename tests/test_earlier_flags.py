"""The flag history's earlier periods benchmarked in a second process (coordinator/earlier_flags.py)
are exactly the flags benchmarking them in the report's own process gives, and are kept as those
are; without a second process, or when it fails, the report computes them itself and writes the
same report."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator import benchmark, earlier_flags, flag_store, followup, second_process
from coordinator.cli import main as coordinator_cli
from tests.test_benchmark_kept import LABS, PERIODS, Ledger, summary

EARLIER = ["2025Q4", "2026Q1", "2026Q2"]


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "coordinator")
    for period in PERIODS:
        for i, site in enumerate(LABS):
            # lab-f finds no MET exon 14 in 2026Q2 and 2026Q3; lab-e none in 2026Q1
            missing = (site == "lab-f" and period != "2026Q1") or (
                site == "lab-e" and period == "2026Q1"
            )
            ledger.add(summary(site, period, 0 if missing else 7 + i % 3))
    return ledger


def db_of(ledger: Ledger) -> Path:
    return ledger.conn.execute("PRAGMA database_list").fetchone()[2]


def test_the_second_process_gives_the_flags_of_the_serial_path(ledger) -> None:
    assert followup.earlier_periods("2026Q3") == EARLIER
    serial = ledger.recomputed()  # each period benchmarked in this process, nothing kept
    said: list[str] = []
    worker = earlier_flags.start(db_of(ledger), EARLIER, ledger.standard, {}, said.append)
    assert worker is not None and worker.child.pid not in (None, os.getpid())
    flags = worker.flags(ledger.conn, progress=said.append)
    assert flags == {p: serial[p] for p in EARLIER}
    assert "lab-e" in {site for site, f in flags["2026Q1"].items() if f}  # real flags compared
    assert "lab-f" in {site for site, f in flags["2026Q2"].items() if f}
    assert worker.child.process.exitcode == 0
    for period in EARLIER[1:]:  # kept under the fingerprint of the inputs, as the serial path keeps
        assert followup.kept_flags(ledger.conn, period, ledger.standard) == serial[period]
    assert not any("failed" in m for m in said)


def test_a_failed_second_process_leaves_the_periods_to_the_report(ledger, tmp_path) -> None:
    said: list[str] = []
    worker = earlier_flags.start(tmp_path / "no-such.db", EARLIER, ledger.standard)
    assert worker is not None
    assert worker.flags(ledger.conn, progress=said.append) == {}
    assert any("failed" in m and "this process benchmarks them now" in m for m in said)
    current = benchmark.compute(ledger.conn, "2026Q3", ledger.standard)
    _periods, history = followup.flag_history(ledger.conn, current, ledger.standard, known={})
    assert history == {**ledger.recomputed(), "2026Q3": flag_store.by_site(current)}


def report(data_dir: Path, out: Path, *options: str) -> tuple[str, dict[str, bytes]]:
    run = CliRunner().invoke(
        coordinator_cli,
        ["benchmark", "--data-dir", str(data_dir), "--period", "2026Q3", "--out", str(out)]
        + list(options),
    )
    assert run.exit_code == 0, run.output
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            text = path.read_bytes()
            if path.name == "followup.json":
                meta = json.loads(text)["meta"]
                text = text.replace(meta["generated_at"].encode(), b"(now)")
            text = re.sub(rb"\d+ \w+ \d{4}, \d\d:\d\d UTC", b"(a time)", text)
            files[str(path.relative_to(out))] = text
    return run.stderr, files


def cold(ledger: Ledger) -> None:
    ledger.conn.execute(flag_store.SCHEMA)
    ledger.conn.execute("DELETE FROM period_flags")


def test_without_a_second_process_the_report_is_the_same(ledger, tmp_path, monkeypatch) -> None:
    data_dir = tmp_path / "coordinator"
    cold(ledger)
    said, parallel = report(data_dir, tmp_path / "parallel")
    assert "in a second process" in said
    assert "lab-f" in json.loads(parallel["followup.json"])["flag_history"]["2026Q2"]
    cold(ledger)
    monkeypatch.setattr(second_process, "START_METHOD", "no-such-start-method")
    said, serial = report(data_dir, tmp_path / "serial")
    assert "no 'no-such-start-method' processes on this platform" in said
    assert serial == parallel
    monkeypatch.undo()
    said, kept = report(data_dir, tmp_path / "kept")  # every earlier period's flags were kept
    assert "second process" not in said
    assert kept == parallel
    cold(ledger)
    said, single = report(data_dir, tmp_path / "single", "--single-process")
    assert "second process" not in said and "processes" not in said
    assert single == parallel
    assert followup.kept_flags(ledger.conn, "2026Q2", ledger.standard) is not None
