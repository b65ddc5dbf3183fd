"""Nothing patient-level leaves: plant unique markers, run the whole submit path through a loopback
relay that records every byte, and look for the markers (raw, hashed, or as dates) in the capture."""

from __future__ import annotations

import csv
import hashlib
import re
import uuid

from click.testing import CliRunner

from node.cli import main as node_cli
from node.pseudonym import Pseudonymiser
from node.synth import generate
from tests.conftest import PERIOD


def test_no_patient_level_value_crosses_the_wire(
    coordinator, node_factory, recorder, tmp_path
) -> None:
    node = node_factory("lab-canary", port=recorder.port)
    marker = uuid.uuid4().hex[:12].upper()
    rows = generate("lab-canary", 3000, 7, ("normal",), PERIOD)
    test_ids: set[str] = set()
    patient_ids: set[str] = set()
    variants: set[str] = set()
    dates: set[str] = set()
    for i, row in enumerate(rows):
        row["test_id"] = f"TID{marker}-{row['test_id']}"
        row["patient_id"] = f"PID{marker}-{row['patient_id']}"
        if row["result"] == "positive":
            row["variant"] = f"VAR{marker}-{i}"
            variants.add(row["variant"])
        test_ids.add(row["test_id"])
        patient_ids.add(row["patient_id"])
        dates.update((row["received_date"], row["reported_date"]))
    export = tmp_path / "canary.csv"
    with export.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runner = CliRunner()
    data_dir = str(node.config.data_dir)
    assert runner.invoke(node_cli, ["ingest", "--data-dir", data_dir, str(export)]).exit_code == 0
    result = runner.invoke(node_cli, ["submit", "--data-dir", data_dir, "--period", PERIOD.label])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        node_cli, ["benchmark", "--data-dir", data_dir, "--period", PERIOD.label]
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(node_cli, ["verify-receipts", "--data-dir", data_dir]).exit_code == 0

    captured = bytes(recorder.captured)
    # The capture really holds the traffic: the site, the period and the metric blocks are there.
    assert b"lab-canary" in captured and PERIOD.label.encode() in captured
    for block in (b"strata", b"turnaround", b"concordance", b"panel", b"vaf", b"MET_EX14"):
        assert block in captured, block
    assert marker.encode() not in captured
    assert marker.lower().encode() not in captured
    pseudonymise = Pseudonymiser(node.config.pseudonym_secret())
    for pid in patient_ids:
        assert pseudonymise(pid).encode() not in captured
        assert hashlib.sha256(pid.encode()).hexdigest().encode() not in captured
    # An 8-digit date (20260803) also turns up by chance among a float's decimals or inside a hex
    # digest (about one run in ten over this many dates): it is looked for outside those.
    scrubbed = re.sub(rb"[0-9a-fA-F]{16,}|[0-9]*\.[0-9]+(?:[eE][-+]?[0-9]+)?", b"#", captured)
    for day in dates:
        for form in (day, day.replace("-", "/")):
            assert form.encode() not in captured, f"a date finer than the period left: {form}"
        compact = day.replace("-", "")
        assert compact.encode() not in scrubbed, f"a date finer than the period left: {compact}"
    # And the node's database (with its write-ahead log) never stored a raw patient id.
    stored = b"".join(p.read_bytes() for p in node.config.data_dir.glob("node.db*"))
    assert f"TID{marker}".encode() in stored  # test ids stay on site, as they should
    assert f"PID{marker}".encode() not in stored
