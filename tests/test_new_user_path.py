"""A new user's path, command by command: each mistake gets a clear message and the exit status of
the project's one scheme (0 ok; 1 refused, a check failed or a ledger alarm; 2 usage or bad input;
3 the other side could not be reached)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator import enrolment
from coordinator.cli import main as coordinator_cli
from coordinator.server import start
from node import alarms, daemon, outbox, store, witness
from node.cli import main as node_cli
from node.errors import LedgerAlarm
from node.send import flush, queue_summary
from node.standard import load_cached
from protos.periods import containing
from tests.conftest import PERIOD


def node_cli_run(*args: str):
    return CliRunner().invoke(node_cli, list(args))


def coordinator_cli_run(*args: str):
    return CliRunner().invoke(coordinator_cli, list(args))


def point_at(node, port: int) -> None:
    """Point the node's config file at another coordinator port."""
    path = node.config.data_dir / "node.toml"
    path.write_text(path.read_text().replace(node.config.coordinator, f"127.0.0.1:{port}"))


def test_submit_with_the_coordinator_down_queues_against_the_cached_standard(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    coordinator.stop(grace=1)
    result = node_cli_run(
        "submit", "--data-dir", str(node.config.data_dir), "--period", PERIOD.label
    )
    assert result.exit_code == 3, result.output
    assert "cannot be reached" in result.output and "cached standard 2026.1" in result.output
    assert "signed summary sequence 1 into the outbox" in result.output
    assert "wait in the outbox" in result.output and "ALARM" not in result.output
    assert [p.period for p in outbox.pending(node.conn)] == [PERIOD.label]


def test_verify_receipts_unreachable_is_exit_3_without_alarm(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    coordinator.stop(grace=1)
    result = node_cli_run("verify-receipts", "--data-dir", str(node.config.data_dir))
    assert result.exit_code == 3 and "cannot be reached" in result.output
    assert "ALARM" not in result.output and alarms.standing(node.conn) == []


@pytest.mark.parametrize(
    ("section", "line", "words"),
    [
        ("disclosure", 'min_denominator = "ten"', "min_denominator must be a whole number"),
        ("daemon", 'watch_every_seconds = "60s"', "watch_every_seconds must be a number"),
        ("daemon", 'summary_cron = "every night"', "summary_cron 'every night' is not a crontab"),
        ("site", 'colour = "blue"', "unknown key 'colour' in [site]"),
        ("coordinator", "insecure = 1", "insecure must be true or false"),
    ],
)
def test_node_toml_mistakes_are_named_without_a_traceback(tmp_path, section, line, words) -> None:
    data_dir = tmp_path / "n"
    assert (
        node_cli_run(
            "init",
            "--data-dir",
            str(data_dir),
            "--site-id",
            "lab-a",
            "--coordinator",
            "127.0.0.1:1",
        ).exit_code
        == 0
    )
    path = data_dir / "node.toml"
    key = line.split(" =")[0]
    text = "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith(f"{key} ="))
    path.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{line}\n"))
    result = node_cli_run("status", "--data-dir", str(data_dir))
    assert result.exit_code == 2 and words in result.output, result.output  # invalid input
    assert "node.toml" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_periods_lower_case_open_future_and_empty(coordinator, node_factory, synthetic_csv) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    data_dir = str(node.config.data_dir)
    preview = node_cli_run("summarize", "--data-dir", data_dir, "--period", "2026q3", "--json")
    assert preview.exit_code == 0 and '"period": "2026Q3"' in preview.output
    today = dt.date.today()
    current = containing(today, "quarter")
    future = f"{today.year + 1}Q1"
    for period, words in (
        (current.label, f"period {current.label} is still open"),
        (future, f"period {future} has not started yet"),
        ("1999Q1", "no results in 1999Q1"),
    ):
        result = node_cli_run("submit", "--data-dir", data_dir, "--period", period)
        assert result.exit_code == 1 and words in result.output, result.output
        assert store.get_state(node.conn, "last_sequence") is None  # no sequence number used
        assert outbox.pending(node.conn) == []
    result = node_cli_run("submit", "--data-dir", data_dir, "--period", "2026q3")
    assert result.exit_code == 0 and "2026Q3: signed summary sequence 1" in result.output, (
        result.output
    )


def test_benchmark_of_an_empty_period_and_of_a_one_site_network(
    coordinator, node_factory, synthetic_csv, tmp_path
) -> None:
    data_dir = str(coordinator.service.data.path)
    result = coordinator_cli_run(
        "benchmark", "--data-dir", data_dir, "--period", "2026Q3", "--out", str(tmp_path / "r0")
    )
    assert result.exit_code == 1 and "no site submitted a summary for 2026Q3" in result.output
    assert not (tmp_path / "r0").exists()
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
    assert flush(node.conn, node.config, node.client).delivered
    result = coordinator_cli_run(
        "benchmark", "--data-dir", data_dir, "--period", "2026Q3", "--out", str(tmp_path / "r1")
    )
    assert result.exit_code == 0
    assert "only 1 site(s) submitted for 2026Q3" in result.output
    assert "need at least 3 sites" in result.output
    notes = json.loads((tmp_path / "r1" / "benchmark.json").read_text())["notes"]
    assert "need at least 3 sites" in notes[0]


@pytest.mark.parametrize("site_id", [".", "..", "١٢٣", "lab-\u0430", "Lab-A", "-lab", "a"])
def test_site_ids_are_strict_ascii(tmp_path, coordinator, site_id) -> None:
    data_dir = str(coordinator.service.data.path)
    result = coordinator_cli_run("sites", "add", "--data-dir", data_dir, "--", site_id)
    assert result.exit_code == 2 and "is not valid" in result.output and "a-z" in result.output
    result = node_cli_run(
        "init", "--data-dir", str(tmp_path / "n"), "--site-id", site_id, "--coordinator", "x:1"
    )
    assert result.exit_code == 2 and "is not valid" in result.output
    assert not (tmp_path / "n" / "node.toml").exists()


def test_a_token_must_live_a_while(coordinator) -> None:
    data_dir = str(coordinator.service.data.path)
    for ttl in ("-1", "0"):
        result = coordinator_cli_run(
            "sites", "add", "--data-dir", data_dir, "lab-a", "--ttl-hours", ttl
        )
        assert result.exit_code == 2 and "--ttl-hours" in result.output
    with pytest.raises(Exception, match="1 hour or more"):
        enrolment.add_site(coordinator.service.conn, "lab-a", dt.timedelta(hours=-1))


def test_a_revoked_site_re_enrols_with_a_fresh_token_and_a_new_key(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    data_dir = str(coordinator.service.data.path)
    old_key = node.config.key_path.read_bytes()
    assert coordinator_cli_run("sites", "revoke", "--data-dir", data_dir, "lab-a").exit_code == 0
    added = coordinator_cli_run("sites", "add", "--data-dir", data_dir, "lab-a")
    assert added.exit_code == 0
    token = added.stdout.strip().splitlines()[0]
    result = node_cli_run("enroll", "--data-dir", str(node.config.data_dir), "--token", token)
    assert result.exit_code == 0, result.output
    assert node.config.key_path.read_bytes() != old_key
    assert node.config.key_path.with_suffix(".old").read_bytes() == old_key
    result = node_cli_run(
        "submit", "--data-dir", str(node.config.data_dir), "--period", PERIOD.label
    )
    assert result.exit_code == 0 and "delivered, receipt verified" in result.output
    listed = coordinator_cli_run("sites", "list", "--data-dir", data_dir, "--json")
    assert json.loads(listed.output)[0]["status"] == "active"
    # The token is one-time, and one issued before a revocation does not re-admit the site.
    again = coordinator_cli_run("sites", "add", "--data-dir", data_dir, "lab-a")
    assert again.exit_code == 1 and "active" in again.output


def test_a_daemon_ledger_alarm_stands_pauses_sending_and_shows_in_status(
    coordinator, node_factory, synthetic_csv, caplog
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
    assert flush(node.conn, node.config, node.client).delivered
    # The coordinator rewrites its log (and does not check its own store, as a dishonest one would not).
    data = coordinator.service.data
    coordinator.stop(grace=1)
    conn = sqlite3.connect(data.db)
    conn.execute("UPDATE ledger SET leaf_hash = zeroblob(32) WHERE leaf_index = 0")
    conn.commit()
    conn.close()
    running = start(data, "127.0.0.1:0", insecure=True, check_store=False)
    try:
        point_at(node, running.port)
        node.ingest(synthetic_csv("lab-a", rows=100, seed=7, name="late.csv"))
        queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
        data_dir = str(node.config.data_dir)
        with caplog.at_level("CRITICAL", logger="rarenet.node"):
            assert daemon.deliver(data_dir) is None  # the alarm is raised...
            assert "LEDGER ALARM" in caplog.text and "not consistent" in caplog.text
            caplog.clear()
            report = daemon.deliver(data_dir)  # ...and stands: every run says so, nothing is sent
            assert "LEDGER ALARM since" in caplog.text and "Sending is paused" in caplog.text
            assert report.delivered == []
        (standing,) = alarms.standing(node.conn)
        assert standing["kind"] == "receipts" and "not consistent" in standing["reason"]
        evidence = Path(standing["evidence"])
        assert (evidence / "ALARM.txt").exists() and (
            evidence / "latest-signed-tree-head.bin"
        ).exists()
        status = node_cli_run("status", "--data-dir", data_dir, "--json")
        assert status.exit_code == 1
        shown = json.loads(status.stdout)["ledger_alarms_standing"]
        assert len(shown) == 1 and "not consistent" in shown[0]["reason"]
        # submit by hand: the same alarm, printed as such (exit 1), not "unreachable".
        result = node_cli_run("submit", "--data-dir", data_dir)
        assert result.exit_code == 1 and "ALARM: " in result.output, result.output
        # verify-receipts against the same rewritten log: still an alarm (exit 1), still standing.
        result = node_cli_run("verify-receipts", "--data-dir", data_dir)
        assert result.exit_code == 1 and "ALARM" in result.output
        assert len(alarms.standing(node.conn)) == 3  # each raised alarm is kept
    finally:
        running.stop(grace=1)


def test_verify_receipts_lifts_an_alarm_once_the_log_checks_out(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
    assert flush(node.conn, node.config, node.client).delivered
    alarms.record(node.conn, node.config, LedgerAlarm("a test alarm"))
    assert len(alarms.standing(node.conn)) == 1
    result = node_cli_run("verify-receipts", "--data-dir", str(node.config.data_dir))
    assert result.exit_code == 0 and "1 ledger alarm(s) lifted" in result.output
    assert alarms.standing(node.conn) == []
    assert len(witness.alarms(node.conn)) == 1  # lifted, and kept as history
