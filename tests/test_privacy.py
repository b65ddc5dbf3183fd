"""The cell-key perturbation table: the noise has the distribution it publishes, zero stays zero
and a count never becomes zero; differential privacy is no longer offered, and saying so is clear.
The adversarial suite (a curious coordinator) is tests/test_privacy_attacks.py."""

from __future__ import annotations

import random

import pytest
from click.testing import CliRunner
from scipy.stats import chisquare

from node import cellkey
from node import config as node_config
from node.cli import main as node_cli
from node.errors import ConfigError

# The table as published in protos/rarenet/v1/summary.proto, typed in again from there.
PUBLISHED = {
    1: {0: 0.6, 1: 0.3, 2: 0.1},
    2: {-1: 0.3, 0: 0.4, 1: 0.3},
    3: {-2: 0.1, -1: 0.2, 0: 0.4, 1: 0.2, 2: 0.1},
}


@pytest.mark.parametrize("count", [1, 2, 3, 17, 400])
def test_noise_follows_the_published_table_over_uniform_cell_keys(count: int) -> None:
    rng = random.Random(count)
    draws = 20_000
    observed: dict[int, int] = {}
    for _ in range(draws):
        d = cellkey.noise(count, rng.getrandbits(32))
        observed[d] = observed.get(d, 0) + 1
    expected = PUBLISHED[min(count, 3)]
    assert set(observed) <= set(expected)
    f_obs = [observed.get(d, 0) for d in sorted(expected)]
    f_exp = [expected[d] * draws for d in sorted(expected)]
    assert chisquare(f_obs, f_exp).pvalue > 1e-3


def test_zero_is_exact_a_count_is_never_zero_and_the_bound_holds() -> None:
    rng = random.Random(5)
    for count in range(0, 40):
        for _ in range(300):
            released = cellkey.perturb(count, rng.getrandbits(40))
            assert (released == 0) == (count == 0)
            assert abs(released - count) <= cellkey.MAX_NOISE
    published = cellkey.policy()
    variance = sum(p * d * d for d, p in PUBLISHED[3].items())
    assert published.noise_variance == pytest.approx(variance)
    assert (published.mechanism, published.max_noise, published.zero_exact) == (
        "cell_key",
        2,
        True,
    )


def test_the_same_records_get_the_same_noise() -> None:
    records = [
        cellkey.record_key(cellkey.patient_part("a3f9c2d1" * 4), f"T{i}", "EGFR") for i in range(7)
    ]
    first = cellkey.perturb(7, sum(records))
    assert all(cellkey.perturb(7, sum(reversed(records))) == first for _ in range(3))


def test_differential_privacy_true_is_refused_and_old_configs_still_load(tmp_path) -> None:
    cfg = node_config.init(tmp_path / "n", "lab-a", "127.0.0.1:1", insecure=True)
    path = cfg.data_dir / "node.toml"
    text = path.read_text()
    old = text.replace(
        "[disclosure]\n",
        "[disclosure]\ndifferential_privacy = false\nepsilon_per_period = 1.0\nepsilon_total = 8.0\n",
    )
    path.write_text(old)
    assert node_config.load(cfg.data_dir).disclosure.min_denominator == 10
    path.write_text(old.replace("differential_privacy = false", "differential_privacy = true"))
    with pytest.raises(ConfigError, match="no longer offered.*Remove differential_privacy"):
        node_config.load(cfg.data_dir)
    result = CliRunner().invoke(node_cli, ["status", "--data-dir", str(cfg.data_dir)])
    assert result.exit_code != 0 and "no longer offered" in result.output
    assert "Traceback" not in result.output


def test_metrics_record_keys_are_the_ones_cellkey_defines(tmp_path) -> None:
    """node/metrics.py computes record keys inline for speed; they must be cellkey's."""
    from coordinator.standards import DEFAULT_STANDARD
    from node import metrics, store
    from node.cellkey import COUNTED_UNITS, NAMED_TABLES, CellKeys, patient_part, record_key
    from node.standard import parse as parse_standard
    from node.workdays import WorkingDays
    from protos.periods import parse as parse_period

    conn = store.connect(tmp_path / "n.db")
    patient = "0123456789abcdef0123456789abcdef"
    conn.execute(
        "INSERT INTO results (test_id, biomarker, method, patient_key, received_date, "
        "reported_date, specimen, histology, result, vaf, ingest_id, line) VALUES "
        "('T1', 'EGFR', 'pcr', ?, '2026-08-01', '2026-08-05', 'tissue', 'squamous', "
        "'positive', 12.0, 1, 2)",
        (patient,),
    )
    standard = parse_standard(DEFAULT_STANDARD.read_text())
    part = patient_part(patient)
    # Under COUNTED_UNITS the result and its per-test call are one record key (twin cells share
    # their noise); under NAMED_TABLES (periods released before it) the table's method entered.
    for scheme, method, all_ in ((COUNTED_UNITS, (), ()), (NAMED_TABLES, ("pcr",), ("all",))):
        keys = CellKeys(key_scheme=scheme)
        metrics.compute(conn, parse_period("2026Q3"), standard, WorkingDays("CN"), keys)
        assert keys.strata[("EGFR", "pcr", "tissue")][0] == record_key(part, "T1", "EGFR", *method)
        assert keys.strata[("EGFR", "all", "tissue")][0] == record_key(part, "T1", "EGFR", *all_)
        (turnaround,) = [k for k in keys.turnaround["tissue"] if k]
        assert turnaround == record_key(part, "T1")
        (vaf,) = [k for k in keys.vaf[("EGFR", "pcr", "tissue")] if k]
        assert vaf == record_key(part, "T1", "EGFR")
