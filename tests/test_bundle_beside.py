"""`rarenet-coordinator benchmark --audit-bundle FILE`: the period's audit bundle built in a
second process while the benchmark is computed (coordinator/bundle_beside.py) is the bundle
`audit-bundle` writes; it holds the report the benchmark handed over for the inputs the bundle
reads, and nothing is left behind when the benchmark fails.

A real network: nodes submit signed summaries over gRPC to a coordinator on 127.0.0.1; the
commands run as the coordinator's operator runs them, in processes of their own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.verify import verify
from coordinator import benchmark
from coordinator.bundle_beside import BundleBeside
from tests.conftest import PERIOD
from tests.test_audit_kept_benchmark import REPORT, Network, members, three_labs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with three_labs(tmp_path) as net:
        yield net


def coordinator(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("single_process", [False, True])
def test_the_benchmark_command_writes_the_bundle_audit_bundle_writes(
    network: Network, single_process: bool
) -> None:
    data_dir, beside = str(network.data.path), network.root / "beside.zip"
    argv = ["benchmark", "--data-dir", data_dir, "--period", PERIOD.label]
    argv += ["--out", str(network.root / "report"), "--audit-bundle", str(beside)]
    done = coordinator(*argv, *(["--single-process"] if single_process else []))
    assert done.returncode == 0, done.stderr
    assert f"wrote {beside}: " in done.stdout and "its checkpoint is cosigned" in done.stdout
    alone = network.root / "alone.zip"
    done = coordinator(
        "audit-bundle", "--data-dir", data_dir, "--period", PERIOD.label, "--out", str(alone)
    )
    assert done.returncode == 0, done.stderr
    assert members(beside) == members(alone)  # every member, the signed manifest included
    assert members(beside)[REPORT] == (network.root / "report" / "benchmark.json").read_bytes()
    assert verify(beside).ok


def test_the_bundle_holds_the_report_handed_over_for_its_inputs(network: Network) -> None:
    """The child writes the bytes it is given when their fingerprint is that of the inputs it
    reads (here planted bytes, which verify then refuses: they were used), and otherwise does
    what `audit-bundle` does."""
    network.close()  # no server threads in this process when it forks
    with sqlite3.connect(network.data.db) as conn:
        inputs = benchmark.stored_fingerprint(conn, PERIOD.label, network.standard)
    planted = network.root / "planted.zip"
    bundle = BundleBeside(network.data, network.standard, PERIOD.label, planted)
    assert bundle.child is not None, bundle.why
    bundle.give(inputs, b'{"planted": true}\n')
    assert bundle.built() == {"files": len(members(planted)) - 2, "tree_size": 3}
    assert members(planted)[REPORT] == b'{"planted": true}\n'
    assert not verify(planted).ok

    other = network.root / "other.zip"
    bundle = BundleBeside(network.data, network.standard, PERIOD.label, other)
    bundle.give("0" * 64, b'{"planted": true}\n')  # computed from other inputs: not used
    assert isinstance(bundle.built(), dict)
    assert members(other)[REPORT] != b'{"planted": true}\n'
    assert verify(other).ok


def test_a_benchmark_that_ends_without_a_report_leaves_no_bundle(network: Network) -> None:
    beside = network.root / "none.zip"
    done = coordinator(
        "benchmark",
        "--data-dir",
        str(network.data.path),
        "--period",
        "2025Q1",  # nothing was submitted for it
        "--out",
        str(network.root / "report"),
        "--audit-bundle",
        str(beside),
    )
    assert done.returncode == 1 and "no site submitted a summary for 2025Q1" in done.stderr
    assert not beside.exists() and not beside.with_name(beside.name + ".partial").exists()


def test_a_bundle_never_handed_a_report_is_not_written(network: Network) -> None:
    network.close()  # no server threads in this process when it forks
    cancelled = network.root / "cancelled.zip"
    bundle = BundleBeside(network.data, network.standard, PERIOD.label, cancelled)
    assert isinstance(bundle.built(), str)  # no report handed over: the child says so
    assert not cancelled.exists() and not cancelled.with_name(cancelled.name + ".partial").exists()
