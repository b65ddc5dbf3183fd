"""An audit bundle reuses the benchmark the `benchmark` command kept for the same inputs
(coordinator/kept_benchmark.py), and holds the very bytes it holds when it computes the benchmark
itself. A late summary, a revision, a revoked site, another standard or method version each make
the bundle compute the benchmark again: each test below fails if the kept one is reused anyway.

A real network: nodes submit signed summaries over gRPC to a coordinator on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.verify import verify
from coordinator import benchmark, enrolment, kept_benchmark, store
from coordinator.audit_bundle import ReportBytes, build
from coordinator.cli import main as coordinator_cli
from coordinator.config import DataDir
from coordinator.config import init as init_coordinator
from coordinator.server import Running, start
from coordinator.standards import Standard
from coordinator.standards import load as load_standard
from method.report_bytes import benchmark_bytes
from node.send import flush, queue_summary
from node.standard import load_cached
from node.synth import generate, write_csv
from protos.periods import parse as parse_period
from tests.conftest import PERIOD, Node, make_node

REPORT = "report/benchmark.json"


class Network:
    """A coordinator serving gRPC and its labs' nodes, each lab submitting when asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: Running | None = start(
            init_coordinator(root / "coordinator"), "127.0.0.1:0", insecure=True
        )
        self.data: DataDir = self.running.service.data
        self.standard = load_standard(self.data.standard)
        self.nodes: dict[str, Node] = {}
        self.exports = 0

    def submit(self, site: str, rows: int = 1500, profile: str = "normal") -> int:
        """Ingest `rows` more results at the site and send its period summary; its sequence."""
        assert self.running is not None, "the network was closed"
        node = self.nodes.get(site) or make_node(self.root, self.running, site)
        self.nodes[site] = node
        self.exports += 1
        export = self.root / f"{site}-{self.exports}.csv"
        write_csv(generate(site, rows, self.exports, (profile,), PERIOD), export)
        node.ingest(export)
        queued = queue_summary(
            node.conn, node.config, load_cached(node.config.standard_path), PERIOD
        )
        assert queued.sequence is not None, queued
        assert flush(node.conn, node.config, node.client).delivered
        return queued.sequence

    def keep(self, standard: Standard | None = None) -> bytes:
        """What the `benchmark` command keeps of the period (compute_report): the bytes it writes
        as the report's benchmark.json."""
        with sqlite3.connect(self.data.db) as conn:
            return benchmark.compute_report(conn, PERIOD.label, standard or self.standard).report

    def bundle(
        self,
        name: str,
        standard: Standard | None = None,
        site: str | None = None,
        report: ReportBytes | None = None,
    ) -> Path:
        out = self.root / f"{name}.zip"
        build(self.data, standard or self.standard, PERIOD.label, out, site, report)
        return out

    def forget(self) -> None:
        """Drop what was kept: the next bundle computes its benchmark."""
        with sqlite3.connect(self.data.db) as conn:
            conn.execute("DELETE FROM kept_benchmarks")

    def close(self) -> None:
        """Stop the labs and the coordinator (once; closing again does nothing)."""
        for node in self.nodes.values():
            node.client.close()
            node.conn.close()
        self.nodes.clear()
        if self.running is not None:
            self.running.stop(grace=1)
            self.running = None


@contextmanager
def three_labs(root: Path) -> Iterator[Network]:
    """A network of three labs (one DNA-only) that submitted their summaries of PERIOD."""
    net = Network(root)
    try:
        for site, profile in (("lab-0", "normal"), ("lab-1", "normal"), ("lab-2", "dna_only")):
            net.submit(site, profile=profile)
        yield net
    finally:
        net.close()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with three_labs(tmp_path) as net:
        yield net


class Computations:
    """How often the bundle computed the benchmark (the real function runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = benchmark.compute_from

        def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(benchmark, "compute_from", counted)


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_the_kept_benchmark_is_reused_and_the_bundle_is_the_same(network, monkeypatch) -> None:
    kept = network.keep()
    computed = Computations(monkeypatch)
    reused = members(network.bundle("reused"))
    assert computed.count == 0  # the kept benchmark was written, nothing computed
    assert reused[REPORT] == kept
    network.forget()
    recomputed = members(network.bundle("recomputed"))
    assert computed.count == 1
    assert list(reused) == list(recomputed)  # same members in the same order
    assert reused == recomputed  # every byte, the signed manifest and its signature included
    assert verify(network.root / "reused.zip").ok


def test_a_site_bundle_from_the_kept_benchmark_is_the_same(network, monkeypatch) -> None:
    network.keep()
    computed = Computations(monkeypatch)
    reused = members(network.bundle("reused", site="lab-2"))
    assert computed.count == 0
    network.forget()
    assert members(network.bundle("recomputed", site="lab-2")) == reused
    assert computed.count == 1


def stale_or_fresh(network: Network, stale: bytes, standard: Standard | None = None) -> None:
    """The bundle made now holds what computing the benchmark now gives, not the kept report."""
    now = members(network.bundle("now", standard))
    network.forget()
    assert now == members(network.bundle("recomputed", standard))
    assert now[REPORT] != stale  # the change shows in the report: reusing it would be caught
    assert verify(network.root / "now.zip").ok


def test_a_late_summary_is_not_left_out(network) -> None:
    stale = network.keep()
    network.submit("lab-late")  # arrives after the benchmark was kept
    stale_or_fresh(network, stale)


def test_a_revised_summary_replaces_the_kept_one(network) -> None:
    stale = network.keep()
    assert network.submit("lab-0", rows=800) == 2  # lab-0 revises its period summary
    stale_or_fresh(network, stale)


def test_a_revoked_site_is_not_benchmarked_as_before(network) -> None:
    stale = network.keep()
    time.sleep(1.1)  # times are kept to the second: revoked after, not when, it was received
    enrolment.revoke(store.connect(network.data.db), "lab-1")
    stale_or_fresh(network, stale)


def test_another_standard_computes_its_own_benchmark(network) -> None:
    stale = network.keep()
    text = network.data.standard.read_text(encoding="utf-8") + "\n# a centre's own comment\n"
    other = network.root / "other-standard.toml"
    other.write_text(text, encoding="utf-8")
    stale_or_fresh(network, stale, load_standard(other))


def test_another_method_version_computes_again(network, monkeypatch) -> None:
    network.keep()
    monkeypatch.setattr(benchmark, "METHOD_VERSION", "another method")
    computed = Computations(monkeypatch)
    network.bundle("other-method")
    assert computed.count == 1


def test_only_the_newest_periods_are_kept(network) -> None:
    with sqlite3.connect(network.data.db) as conn:
        earlier = parse_period("2026Q2").label
        benchmark.compute(conn, earlier, network.standard, keep=True)  # a flag history's period
        network.keep()
        kept = conn.execute("SELECT period, length(report) FROM kept_benchmarks").fetchall()
    assert [period for period, _size in kept] == [PERIOD.label]
    assert 0 < kept[0][1] < len(network.keep()) / 2  # kept compressed


def test_the_kept_report_is_read_back_only_under_its_fingerprint(network) -> None:
    report = network.keep()
    with sqlite3.connect(network.data.db) as conn:
        inputs_sha256 = benchmark.stored_fingerprint(conn, PERIOD.label, network.standard)
        assert kept_benchmark.find(conn, PERIOD.label, inputs_sha256) == report
        assert kept_benchmark.find(conn, PERIOD.label, "0" * 64) is None
        (packed,) = conn.execute("SELECT report FROM kept_benchmarks").fetchone()
        conn.execute("UPDATE kept_benchmarks SET report = ?", (packed[: len(packed) // 2],))
        assert kept_benchmark.find(conn, PERIOD.label, inputs_sha256) is None  # cut short
        conn.execute("UPDATE kept_benchmarks SET report = ?, report_sha256 = ?", (packed, "0" * 64))
        assert kept_benchmark.find(conn, PERIOD.label, inputs_sha256) is None  # not its bytes


def test_the_keep_flag_keeps_what_compute_report_keeps(network) -> None:
    report = network.keep()
    network.forget()
    with sqlite3.connect(network.data.db) as conn:
        result = benchmark.compute(conn, PERIOD.label, network.standard, keep=True)
        inputs_sha256 = benchmark.stored_fingerprint(conn, PERIOD.label, network.standard)
        assert kept_benchmark.find(conn, PERIOD.label, inputs_sha256) == report
    assert report == benchmark_bytes(result)


def test_a_report_kept_in_the_json_dumps_days_is_not_reused(network, monkeypatch) -> None:
    """A table kept before benchmark_bytes (json.dumps bytes, no encoding column) is not read:
    the bundle computes the benchmark, and the next keep replaces the table."""
    report = network.keep()
    with sqlite3.connect(network.data.db) as conn:
        inputs_sha256 = benchmark.stored_fingerprint(conn, PERIOD.label, network.standard)
        text = json.dumps(json.loads(report), sort_keys=True, ensure_ascii=False)
        old = zlib.compress(text.encode() + b"\n", 1)
        conn.execute("DROP TABLE kept_benchmarks")
        conn.execute(
            "CREATE TABLE kept_benchmarks (period TEXT PRIMARY KEY, inputs_sha256 TEXT NOT NULL,"
            " report BLOB NOT NULL, report_sha256 TEXT NOT NULL, kept_at TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO kept_benchmarks VALUES (?, ?, ?, ?, '2026-11-01T00:00:00')",
            (PERIOD.label, inputs_sha256, old, hashlib.sha256(text.encode() + b"\n").hexdigest()),
        )
    computed = Computations(monkeypatch)
    assert members(network.bundle("old-table"))[REPORT] == report
    assert computed.count == 1
    assert network.keep() == report
    with sqlite3.connect(network.data.db) as conn:
        assert kept_benchmark.find(conn, PERIOD.label, inputs_sha256) == report


def benchmark_command(network: Network, out: Path) -> bytes:
    """The `benchmark` command's benchmark.json."""
    run = CliRunner().invoke(
        coordinator_cli,
        ["benchmark", "--data-dir", str(network.data.path), "--period", PERIOD.label]
        + ["--out", str(out), "--single-process"],
    )
    assert run.exit_code == 0, run.output
    return (out / "benchmark.json").read_bytes()


def test_the_benchmark_command_writes_the_bytes_it_keeps(network, monkeypatch) -> None:
    encodings = []
    real = benchmark.benchmark_bytes

    def counted(result: dict[str, Any]) -> bytes:
        encodings.append(result["period"])
        return real(result)

    monkeypatch.setattr(benchmark, "benchmark_bytes", counted)
    written = benchmark_command(network, network.root / "report")
    assert encodings == [PERIOD.label]  # once, for the file and the kept copy
    result = json.loads(written)
    assert len(result["sites"]) == 3  # no note of a small network: the file is the benchmark
    assert written == benchmark_bytes(result)
    computed = Computations(monkeypatch)
    assert members(network.bundle("after-report"))[REPORT] == written
    assert computed.count == 0  # the kept copy was written


def test_a_small_network_s_note_is_in_the_file_and_not_in_the_bundle(tmp_path) -> None:
    net = Network(tmp_path)
    try:
        for site in ("lab-0", "lab-1"):
            net.submit(site)
        written = json.loads(benchmark_command(net, tmp_path / "report"))
        bundled = json.loads(members(net.bundle("small"))[REPORT])
    finally:
        net.close()
    assert written["notes"][0].startswith("only 2 site(s) submitted")
    assert not any(n.startswith("only 2 site(s)") for n in bundled.get("notes", []))
    del written["notes"], bundled["notes"]
    assert written == bundled  # else the bundle's report is the benchmark the file holds


class Given:
    """A report given to the bundle as the `benchmark` command would hand it over: the bytes of
    the benchmark it computed, for the inputs it computed them from, and None for others."""

    def __init__(self, computed: benchmark.ComputedReport) -> None:
        self.computed = computed
        self.asked: list[str] = []

    def __call__(self, inputs_sha256: str) -> bytes | None:
        self.asked.append(inputs_sha256)
        return self.computed.report if inputs_sha256 == self.computed.inputs_sha256 else None


@pytest.mark.parametrize("site", [None, "lab-2"])
def test_a_report_given_last_makes_the_same_bundle(network, monkeypatch, site) -> None:
    with sqlite3.connect(network.data.db) as conn:
        given = Given(benchmark.compute_report(conn, PERIOD.label, network.standard))
        assert given.computed.inputs_sha256 == benchmark.stored_fingerprint(
            conn, PERIOD.label, network.standard
        )
    network.forget()  # nothing kept: the given report or a computation
    computed = Computations(monkeypatch)
    with_given = members(network.bundle("given", site=site, report=given))
    assert given.asked == [given.computed.inputs_sha256]
    assert computed.count == 0
    assert list(with_given)[-3:] == [REPORT, "MANIFEST.json", "MANIFEST.sig"]  # the report last
    assert with_given == members(network.bundle("recomputed", site=site))
    assert computed.count == 1
    if site is None:
        assert with_given[REPORT] == given.computed.report
    assert verify(network.root / "given.zip").ok


def test_a_report_given_for_other_inputs_is_not_used(network, monkeypatch) -> None:
    with sqlite3.connect(network.data.db) as conn:
        given = Given(benchmark.compute_report(conn, PERIOD.label, network.standard))
    network.submit("lab-late")  # arrives after the report was computed
    computed = Computations(monkeypatch)
    late = members(network.bundle("late", report=given))
    assert given.asked[-1] != given.computed.inputs_sha256  # None: the bundle computes it
    assert computed.count == 1
    assert late[REPORT] != given.computed.report
    assert late == members(network.bundle("recomputed"))
