"""A flag walked to a signed corrective action and seen in the next report; a lab flagged period
after period marked persistent. Real gRPC on 127.0.0.1, real keys, real SQLite, the real CLIs."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
import sqlite3
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from coordinator.cli import main as coordinator_cli
from coordinator.store_check import check_store
from node.cli import main as node_cli
from node.client import RpcFailure
from node.synth import generate, write_csv
from protos import dsse, wire
from protos.periods import parse as parse_period
from protos.rarenet.v1 import action_pb2 as apb
from rendering import pdf

PERIODS = ("2026Q2", "2026Q3")
LABS = {"lab-cyto": ("failing_cytology",), "lab-north": ("normal",), "lab-south": ("normal",)}


def run(cli, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def network(tmp_path, coordinator, node_factory):
    nodes = {}
    for i, (site, profiles) in enumerate(LABS.items()):
        node = node_factory(site)
        if site == "lab-north":  # opts in to the testing-assistance directory
            toml = node.config.data_dir / "node.toml"
            text = toml.read_text()
            assert "testing_directory = false" in text
            toml.write_text(text.replace("testing_directory = false", "testing_directory = true"))
        for period in PERIODS:
            path = tmp_path / f"{site}-{period}.csv"
            # The failing lab's volume makes its cytology failure flag certain whatever the
            # nodes' random cell-key noise (at 2,500 rows one clean-clone run in five missed it).
            rows = 6000 if site == "lab-cyto" else 2500
            write_csv(generate(site, rows, i, profiles, parse_period(period)), path)
            node.ingest(path)
            run(node_cli, "submit", "--data-dir", str(node.config.data_dir), "--period", period)
        nodes[site] = node
    return coordinator, nodes


def centre_report(coordinator, out: Path, *extra: str) -> dict:
    run(
        coordinator_cli,
        "benchmark",
        "--data-dir",
        str(coordinator.service.data.path),
        "--period",
        "2026Q3",
        "--out",
        str(out),
        "--lab-reports",
        *extra,
    )
    return json.loads((out / "followup.json").read_text(encoding="utf-8"))


def actions_csv(out: Path) -> dict[str, dict]:
    with (out / "actions.csv").open(encoding="utf-8") as fh:
        return {row["action_id"]: row for row in csv.DictReader(fh)}


@pytest.mark.slow
def test_a_flag_walked_to_a_signed_corrective_action(network, tmp_path) -> None:
    coordinator, nodes = network
    lab = nodes["lab-cyto"]
    data_dir = str(lab.config.data_dir)
    first = centre_report(coordinator, tmp_path / "r1")
    flags = json.loads((tmp_path / "r1" / "benchmark.json").read_text())["sites"]["lab-cyto"][
        "flags"
    ]
    assert ("failure_rate", "cytology") in {(f["rule"], f["subject"]) for f in flags}
    assert first["actions"] == []
    listed = {(d["site_id"], d["biomarker"]) for d in first["directory"]}
    assert ("lab-north", "MET_EX14") in listed and ("lab-north", "RET") in listed
    assert not [d for d in first["directory"] if d["site_id"] != "lab-north"]  # opt-in only
    met = next(d for d in first["directory"] if d["biomarker"] == "MET_EX14")
    assert met["rna_capable"] and met["tests"] > 0 and met["failure_rate"] is not None

    # Persistent: the same indicator flagged in 2026Q2 and 2026Q3.
    marks = {(m["site_id"], m["indicator"], m["subject"]): m for m in first["persistent"]}
    assert marks[("lab-cyto", "failure_rate", "cytology")]["flagged_in"] == list(PERIODS)
    assert not [m for m in first["persistent"] if m["site_id"] != "lab-cyto"]
    index = (tmp_path / "r1" / "index.html").read_text(encoding="utf-8")
    assert re.search(r"lab-cyto.*?persistent", index, re.S)

    due = (dt.date.today() + dt.timedelta(days=60)).isoformat()
    out = run(
        node_cli,
        "action",
        "add",
        "--data-dir",
        data_dir,
        "--flag",
        "failure_rate:cytology",
        "--period",
        "2026Q3",
        "--id",
        "cyto-1",
        "--root-cause",
        "EBUS samples fixed in alcohol for too long before cell blocks",
        "--action",
        "Rapid on-site evaluation for every EBUS-TBNA; cell block protocol revised",
        "--due",
        due,
    )
    assert "cyto-1" in out and "delivered" in out
    run(
        node_cli,
        "action",
        "add",
        "--data-dir",
        data_dir,
        "--flag",
        "positivity_funnel:NTRK",
        "--period",
        "2026Q3",
        "--id",
        "ntrk-1",
        "--root-cause",
        "Pan-TRK IHC screen only",
        "--action",
        "Send IHC-negative cases for RNA NGS",
        "--due",
        "2026-01-15",
    )
    db = sqlite3.connect(coordinator.service.data.db)
    types = [r[0] for r in db.execute("SELECT payload_type FROM ledger WHERE site_id = 'lab-cyto'")]
    assert types.count(wire.CORRECTIVE_ACTION) == 2

    second = centre_report(coordinator, tmp_path / "r2")
    states = actions_csv(tmp_path / "r2")
    assert states["cyto-1"]["state"] == "open" and states["cyto-1"]["due"] == due
    assert states["ntrk-1"]["state"] == "overdue"
    assert {a["action_id"] for a in second["actions"]} == {"cyto-1", "ntrk-1"}
    index = (tmp_path / "r2" / "index.html").read_text(encoding="utf-8")
    assert "EBUS samples fixed in alcohol" in index and "1 open, 1 overdue, 0 closed" in index
    own = (tmp_path / "r2" / "labs" / "lab-cyto.html").read_text(encoding="utf-8")
    assert "Rapid on-site evaluation for every EBUS-TBNA" in own
    assert "EBUS" not in (tmp_path / "r2" / "labs" / "lab-north.html").read_text(encoding="utf-8")

    run(
        node_cli,
        "action",
        "close",
        "--data-dir",
        data_dir,
        "--id",
        "cyto-1",
        "--note",
        "ROSE in place since October; cytology failures 4% in the last month",
    )
    assert "closed" in run(node_cli, "action", "list", "--data-dir", data_dir)
    centre_report(coordinator, tmp_path / "r3")
    assert actions_csv(tmp_path / "r3")["cyto-1"]["state"] == "closed"
    assert "ROSE in place since October" in (tmp_path / "r3" / "index.html").read_text()

    # The lab fetches its own report, in Chinese, with its actions and the persistent mark.
    page, printed = tmp_path / "own.html", tmp_path / "own.pdf"
    with_pdf = ["--pdf", str(printed)] if pdf.browser() else []
    run(
        node_cli,
        "benchmark",
        "--data-dir",
        data_dir,
        "--period",
        "2026Q3",
        "--html",
        str(page),
        "--lang",
        "zh",
        *with_pdf,
    )
    if with_pdf:
        assert printed.read_bytes().startswith(b"%PDF")
    html = page.read_text(encoding="utf-8")
    assert "持续异常" in html and "EBUS samples fixed in alcohol" in html and "已关闭" in html
    assert html.count('class="own-point"') >= 9
    assert "lab-north" not in html and "lab-south" not in html  # peers stay unnamed

    # The store check holds each stored action to its signed ledger leaf: an edit is found.
    data = coordinator.service.data
    assert check_store(data).ok, check_store(data).problems
    db.execute("UPDATE corrective_actions SET payload = replace(payload, 'EBUS', 'ROSE')")
    db.commit()
    problems = check_store(data).problems
    assert any("corrective action of leaf" in p for p in problems), problems


@pytest.mark.slow
def test_the_centre_refuses_actions_that_do_not_hold(network) -> None:
    coordinator, nodes = network
    lab = nodes["lab-cyto"]

    sequences = itertools.count(100)

    def send(**fields) -> grpc.StatusCode | None:
        message = apb.CorrectiveAction(
            site_id="lab-cyto",
            sequence=next(sequences),
            schema_version=wire.SCHEMA_VERSION,
            action_id="x-1",
            root_cause="r",
            action="a",
            due="2026-12-31",
            status="open",
            flag=apb.FlagReference(period="2026Q3", rule="failure_rate", subject="cytology"),
        )
        for key, value in fields.items():
            if key == "rule":
                message.flag.rule = value
            else:
                setattr(message, key, value)
        envelope = dsse.sign(wire.CORRECTIVE_ACTION, wire.encode(message), lab.config.signing_key())
        try:
            lab.client.submit(envelope)
        except RpcFailure as exc:
            return exc.code
        return None

    assert send(rule="made_up_rule") == grpc.StatusCode.INVALID_ARGUMENT
    assert send(due="next week") == grpc.StatusCode.INVALID_ARGUMENT
    assert send(root_cause="  ") == grpc.StatusCode.INVALID_ARGUMENT
    assert send(site_id="lab-north") == grpc.StatusCode.PERMISSION_DENIED
    assert send(status="closed", closed_on="2026-11-01", closing_note="done") == (
        grpc.StatusCode.FAILED_PRECONDITION  # never opened
    )
    assert send() is None  # the well-formed action is accepted
