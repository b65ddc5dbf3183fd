"""The public command lines: help on every command, and the behaviour labs' scripts rely on."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import click
import grpc
import pytest
from click.testing import CliRunner

from auditor.cli import main as audit_cli
from coordinator.cli import main as coordinator_cli
from node import outbox
from node.cli import main as node_cli
from node.client import RpcFailure
from protos import dsse, wire
from tests.conftest import PERIOD
from tests.test_ingest import row, write


def commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from commands(command, prefix + (name,))


@pytest.mark.parametrize("cli", [node_cli, coordinator_cli, audit_cli])
def test_every_command_has_help(cli) -> None:
    for path, command in commands(cli):
        assert command.help or command.short_help, f"{' '.join(path)} has no help text"
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path


def test_errors_are_messages_not_tracebacks(tmp_path) -> None:
    result = CliRunner().invoke(
        node_cli, ["summarize", "--data-dir", str(tmp_path / "nowhere"), "--period", "2026Q3"]
    )
    assert (
        result.exit_code == 2
        and "run `rarenet-node init" in result.output
        and "Traceback" not in result.output
    )
    result = CliRunner().invoke(
        coordinator_cli, ["sites", "list", "--data-dir", str(tmp_path / "nowhere")]
    )
    assert result.exit_code == 2 and "rarenet-coordinator init" in result.output


def test_summarize_json_is_byte_for_byte_the_signed_payload(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    data_dir = str(node.config.data_dir)
    preview = CliRunner().invoke(
        node_cli, ["summarize", "--data-dir", data_dir, "--period", PERIOD.label, "--json"]
    )
    readable = CliRunner().invoke(
        node_cli, ["summarize", "--data-dir", data_dir, "--period", PERIOD.label]
    )
    assert preview.exit_code == 0 and readable.exit_code == 0
    assert "Nothing else leaves" in readable.output and "MET_EX14" in readable.output
    submit = CliRunner().invoke(
        node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label]
    )
    assert submit.exit_code == 0, submit.output
    (blob,) = node.conn.execute("SELECT envelope FROM outbox").fetchone()
    assert wire.parse_envelope(blob).payload == preview.stdout_bytes


def test_status_reads_as_words_and_json_keeps_the_fields(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=400))
    data_dir = str(node.config.data_dir)
    submit = CliRunner().invoke(
        node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label]
    )
    assert submit.exit_code == 0, submit.output
    as_json = CliRunner().invoke(node_cli, ["status", "--data-dir", data_dir, "--json"])
    info = json.loads(as_json.output)
    receipt = info["last_receipt"]
    assert info["enrolled"] and receipt["sequence"] == 1

    readable = CliRunner().invoke(node_cli, ["status", "--data-dir", data_dir])
    assert readable.exit_code == 0, readable.output
    (line,) = [ln for ln in readable.output.splitlines() if ln.startswith("last receipt")]
    assert f"sequence 1, ledger entry {receipt['leaf_index']:,}, at {receipt['at']}" in line
    assert "{" not in readable.output and "[]" not in readable.output  # no Python reprs
    assert "results              400 (0 in quarantine)" in readable.output


def test_mapping_check_reports_column_by_column(tmp_path) -> None:
    header = [
        "检测编号",
        "患者ID",
        "接收日期",
        "报告日期",
        "标本类型",
        "病理类型",
        "检测方法",
        "检测基因",
        "检测结果",
        "备注",
    ]
    rows = [
        [
            "C1",
            "王某",
            "2026/07/01",
            "2026/07/09",
            "组织",
            "腺癌",
            "NGS",
            "MET 14 跳跃",
            "突变型",
            "x",
        ],
        ["C2", "李某", "2026/07/01", "someday", "胸水", "鳞癌", "Sanger", "EGFR", "阴性", ""],
    ]
    path = write(tmp_path / "cn.csv", rows, header=header, encoding="gb18030")
    result = CliRunner().invoke(node_cli, ["mapping", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "encoding gb18030" in result.output
    assert "'检测基因'" in result.output and "-> biomarker" in result.output
    assert "'MET 14 跳跃'" in result.output and "MET_EX14" in result.output
    assert "'Sanger'" in result.output and "UNKNOWN: add to [values.method]" in result.output
    assert (
        "NOT PARSED: 'someday'" in result.output
        and "(ignored: not a canonical field)" in result.output
    )
    missing = write(tmp_path / "m.csv", [["C1"]], header=["检测编号"])
    assert CliRunner().invoke(node_cli, ["mapping", "check", str(missing)]).exit_code == 1


def test_ingest_json_and_quarantine_list_export(tmp_path) -> None:
    runner = CliRunner()
    data_dir = str(tmp_path / "node")
    assert (
        runner.invoke(
            node_cli,
            [
                "init",
                "--data-dir",
                data_dir,
                "--site-id",
                "lab-q",
                "--coordinator",
                "127.0.0.1:1",
                "--insecure",
            ],
        ).exit_code
        == 0
    )
    path = write(
        tmp_path / "q.csv",
        [row(), row(test_id="T2", vaf="300"), row(test_id="T3", specimen="saliva")],
    )
    result = runner.invoke(node_cli, ["ingest", "--data-dir", data_dir, "--json", str(path)])
    assert result.exit_code == 0
    counts = json.loads(result.output)
    assert {k: counts[k] for k in ("rows", "accepted", "duplicates", "quarantined")} == {
        "rows": 3,
        "accepted": 1,
        "duplicates": 0,
        "quarantined": 2,
    }
    assert [(e["line"], e["field"]) for e in counts["errors"]] == [(3, "vaf"), (4, "specimen")]
    listing = runner.invoke(node_cli, ["quarantine", "list", "--data-dir", data_dir])
    assert "q.csv:3: vaf:" in listing.output and "q.csv:4: specimen:" in listing.output
    out = tmp_path / "quarantine.csv"
    assert (
        runner.invoke(
            node_cli, ["quarantine", "export", "--data-dir", data_dir, "--out", str(out)]
        ).exit_code
        == 0
    )
    assert out.read_text(encoding="utf-8").count("\n") == 3


def test_key_rotation(coordinator, node_factory, synthetic_csv) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    data_dir = str(node.config.data_dir)
    old_keyid = dsse.keyid(node.config.signing_key().public_key())
    result = CliRunner().invoke(node_cli, ["rotate-key", "--data-dir", data_dir])
    assert result.exit_code == 0, result.output
    new_keyid = dsse.keyid(node.config.signing_key().public_key())
    assert new_keyid != old_keyid and node.config.key_path.stat().st_mode & 0o777 == 0o600
    result = CliRunner().invoke(
        node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label]
    )
    assert result.exit_code == 0, result.output
    # An envelope signed with the retired key is refused.
    from protos import keys

    old = keys.load_private(node.config.key_path.with_suffix(".old"))
    (blob,) = node.conn.execute("SELECT envelope FROM outbox").fetchone()
    stale = dsse.sign(
        wire.SITE_SUMMARY,
        wire.parse_envelope(blob).payload.replace(b'"sequence": "1"', b'"sequence": "9"'),
        old,
    )
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(stale)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED and "retired" in str(caught.value)


def test_oversized_submission_is_resource_exhausted(coordinator, node_factory) -> None:
    node = node_factory("lab-a")
    envelope = dsse.sign(wire.SITE_SUMMARY, b" " * (17 * 1024 * 1024), node.config.signing_key())
    node.client.timeout = 30
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(envelope)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_site_benchmark_page_and_peers_without_names(
    coordinator, node_factory, synthetic_csv, tmp_path
) -> None:
    for site in ("lab-a", "lab-b"):
        node = node_factory(site)
        node.ingest(synthetic_csv(site))
        assert (
            CliRunner()
            .invoke(
                node_cli,
                ["submit", "--data-dir", str(node.config.data_dir), "--period", PERIOD.label],
            )
            .exit_code
            == 0
        )
    page = tmp_path / "mine.html"
    result = CliRunner().invoke(
        node_cli,
        [
            "benchmark",
            "--data-dir",
            str(node.config.data_dir),
            "--period",
            PERIOD.label,
            "--json",
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["site"]["site_id"] == "lab-b" and [p["peer"] for p in data["peers"]] == ["peer-1"]
    assert "lab-a" not in result.stdout and "lab-a" not in page.read_text()
    assert "lab-b: individual report 2026Q3" in page.read_text()  # the lab report of issue 16
    assert outbox.pending(node.conn) == []


def test_peer_order_does_not_follow_submission_order() -> None:
    from coordinator.benchmark import for_site

    def site(leaf: int, positive: int) -> dict:
        return {
            "leaf_index": leaf,
            "status": "ok",
            "positivity": {"EGFR": {"positive": positive, "valid": 100, "rate": positive / 100}},
        }

    network: dict[str, Any] = {
        "period": "2026Q3",
        "standard": {},
        "network": {"positivity": {}},
        "sites": {
            "lab-a": site(0, 10),
            "lab-b": site(1, 50),
            "lab-c": site(2, 30),
            "lab-d": site(3, 40),
        },
    }
    reordered = {
        **network,
        "sites": {k: {**v, "leaf_index": 9 - v["leaf_index"]} for k, v in network["sites"].items()},
    }
    view = for_site(network, "lab-a")
    assert view["peers"] == for_site(reordered, "lab-a")["peers"]  # submission order plays no part
    assert [p["positivity"]["EGFR"]["positive"] for p in view["peers"]] == [30, 40, 50]
    text = json.dumps(view["peers"])
    assert "lab-" not in text and "leaf_index" not in text


def test_a_node_database_of_an_older_layout_is_refused_with_advice(tmp_path) -> None:
    data = tmp_path / "node"
    assert (
        CliRunner()
        .invoke(
            node_cli,
            [
                "init",
                "--data-dir",
                str(data),
                "--site-id",
                "lab-a",
                "--coordinator",
                "127.0.0.1:1",
                "--insecure",
            ],
        )
        .exit_code
        == 0
    )
    conn = sqlite3.connect(data / "node.db")
    conn.execute("PRAGMA user_version = 1")  # as written before layout 2
    conn.close()
    result = CliRunner().invoke(
        node_cli, ["ingest", "--data-dir", str(data), str(write(tmp_path / "x.csv", [row()]))]
    )
    assert (
        result.exit_code == 2
        and "layout 1" in result.output
        and "rarenet-node init" in result.output
    ), result.output
    assert "Traceback" not in result.output


def test_summarize_of_a_period_submit_would_refuse_says_so(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    data_dir = str(node.config.data_dir)
    future = CliRunner().invoke(
        node_cli, ["summarize", "--data-dir", data_dir, "--period", "2099Q1"]
    )
    assert future.exit_code == 0
    assert "`submit` would not sign this: period 2099Q1 has not started yet" in future.stderr
    closed = CliRunner().invoke(
        node_cli, ["summarize", "--data-dir", data_dir, "--period", PERIOD.label]
    )
    assert closed.exit_code == 0 and "would not sign" not in closed.stderr


def test_sites_add_many_writes_every_token_or_none(tmp_path) -> None:
    data_dir = str(tmp_path / "c")
    assert CliRunner().invoke(coordinator_cli, ["init", "--data-dir", data_dir]).exit_code == 0
    listed = tmp_path / "sites.txt"
    listed.write_text("# the network's labs\nlab-a\n\nlab-b\n  lab-c  \n", encoding="utf-8")
    out = tmp_path / "tokens.csv"
    added = CliRunner().invoke(
        coordinator_cli,
        ["sites", "add-many", str(listed), "--out", str(out), "--data-dir", data_dir],
    )
    assert added.exit_code == 0, added.output
    assert "3 one-time tokens written" in added.output
    assert out.stat().st_mode & 0o077 == 0  # tokens are secrets: readable by the owner only
    rows = out.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "site_id,token,valid_until"
    assert [r.split(",")[0] for r in rows[1:]] == ["lab-a", "lab-b", "lab-c"]
    listing = CliRunner().invoke(
        coordinator_cli, ["sites", "list", "--json", "--data-dir", data_dir]
    )
    assert sorted(s["site_id"] for s in json.loads(listing.output)) == ["lab-a", "lab-b", "lab-c"]

    again = CliRunner().invoke(
        coordinator_cli,
        ["sites", "add-many", str(listed), "--out", str(out), "--data-dir", data_dir],
    )
    assert again.exit_code == 2 and "exists" in again.output  # never written over

    bad = tmp_path / "bad.txt"
    bad.write_text("lab-d\nLab_E\n", encoding="utf-8")
    refused = CliRunner().invoke(
        coordinator_cli,
        ["sites", "add-many", str(bad), "--out", str(tmp_path / "t2.csv"), "--data-dir", data_dir],
    )
    assert (
        refused.exit_code == 2 and "Lab_E" in refused.output and "Traceback" not in refused.output
    )
    assert not (tmp_path / "t2.csv").exists()  # no file, and no lab-d: all or none
    listing = CliRunner().invoke(
        coordinator_cli, ["sites", "list", "--json", "--data-dir", data_dir]
    )
    assert "lab-d" not in listing.output
