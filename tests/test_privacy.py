"""Differential privacy: the noise has the distribution it claims, the budget is never exceeded,
the preview still equals what is signed, and the coordinator widens its intervals."""

from __future__ import annotations

import math
import random
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import dlaplace

from coordinator import benchmark
from coordinator.standards import load as load_standard
from method import stats
from node import config as node_config
from node import privacy, store
from node.cli import main as node_cli
from node.errors import NodeError
from protos import wire
from protos.rarenet.v1.summary_pb2 import SiteSummary
from tests.conftest import PERIOD


@pytest.mark.parametrize("scale", [0.7, 3.0, 20.0])
def test_two_sided_geometric_matches_the_discrete_laplacian(scale) -> None:
    alpha = math.exp(-1 / scale)
    rng = random.Random(1)
    draws = np.array([privacy.two_sided_geometric(rng, alpha) for _ in range(40_000)])
    reference = dlaplace(1 / scale)  # scipy: P(k) proportional to exp(-a|k|)
    assert abs(draws.mean()) < 4 * math.sqrt(reference.var() / len(draws))
    assert draws.var() == pytest.approx(reference.var(), rel=0.05)
    assert privacy.noise_variance(alpha) == pytest.approx(reference.var())
    assert stats.geometric_noise_variance(scale) == pytest.approx(reference.var())
    assert np.mean(draws == 0) == pytest.approx(reference.pmf(0), abs=0.01)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.05, 3.0), min_size=1, max_size=30), st.floats(0.5, 10.0))
def test_budget_never_exceeds_its_total(tmp_path_factory, epsilons, total) -> None:
    cfg = node_config.init(
        tmp_path_factory.mktemp("dp") / "n", "lab-dp", "127.0.0.1:1", insecure=True
    )
    conn = store.connect(cfg.db_path)
    for sequence, epsilon in enumerate(epsilons, start=1):
        try:
            privacy.check_budget(conn, epsilon, total)
        except privacy.BudgetExhausted as exc:
            assert "Nothing was signed" in str(exc)
            continue
        conn.execute("BEGIN")
        privacy.record_spend(conn, sequence, "2026Q3", epsilon)
        conn.execute("COMMIT")
        assert privacy.spent(conn) <= total + 1e-9


def enable_dp(data_dir, epsilon: float, total: float) -> None:
    path = data_dir / "node.toml"
    text = path.read_text().replace("differential_privacy = false", "differential_privacy = true")
    text = text.replace("epsilon_per_period = 1.0", f"epsilon_per_period = {epsilon}")
    path.write_text(text.replace("epsilon_total = 8.0", f"epsilon_total = {total}"))


def test_dp_summary_end_to_end(coordinator, node_factory, synthetic_csv) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=4000))
    enable_dp(node.config.data_dir, 2.0, 3.0)
    data_dir = str(node.config.data_dir)
    runner = CliRunner()
    preview = runner.invoke(
        node_cli, ["summarize", "--data-dir", data_dir, "--period", PERIOD.label, "--json"]
    )
    assert preview.exit_code == 0, preview.output
    summary = wire.decode(preview.stdout_bytes, SiteSummary)
    dp = summary.policy.differential_privacy
    assert dp.enabled and dp.mechanism == "geometric" and dp.epsilon == 2.0 and dp.noise_scale > 0
    for s in summary.strata:
        if not s.withheld:
            assert s.tests == s.positive + s.negative + s.failed + s.equivocal
    result = runner.invoke(node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label])
    assert result.exit_code == 0, result.output
    (blob,) = node.conn.execute("SELECT envelope FROM outbox").fetchone()
    assert (
        wire.parse_envelope(blob).payload == preview.stdout_bytes
    )  # same noise in preview and release
    assert privacy.spent(node.conn) == 2.0
    again = runner.invoke(node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label])
    assert (
        again.exit_code == 0 and "nothing changed" in again.output
    )  # same data: same noise, no new spend
    assert privacy.spent(node.conn) == 2.0
    node.ingest(synthetic_csv("lab-a", rows=500, seed=3, name="late.csv"))
    refused = runner.invoke(node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label])
    assert refused.exit_code == 1 and "privacy budget is spent" in refused.output
    assert node.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    # The coordinator widened this site's intervals by the recorded noise.
    data = coordinator.service.data
    result = benchmark.compute(sqlite3.connect(data.db), PERIOD.label, load_standard(data.standard))
    egfr = result["sites"]["lab-a"]["positivity"]["EGFR"]
    assert egfr["noise_variance_per_count"] > 0
    plain = stats.wilson(egfr["positive"], egfr["valid"])
    assert egfr["ci95"][0] < plain[0] and egfr["ci95"][1] > plain[1]


def test_budget_error_is_a_node_error() -> None:
    assert issubclass(privacy.BudgetExhausted, NodeError)
