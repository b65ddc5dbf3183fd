"""A corrective action's free text is screened for the ids the node holds (red-team finding 9):
test ids, raw patient ids (matched through their keyed hash) and hashed patient ids are refused
with a message naming them; text without them is signed as typed."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from node import actions
from node.cli import main as node_cli
from node.errors import NodeError
from tests.test_privacy_attacks import make_lab, rows_of


@pytest.fixture
def lab(tmp_path):
    lab = make_lab(tmp_path)
    rows = rows_of("TID-77", 12, "EGFR", "pcr", "cytology", 3)
    rows[0]["patient_id"] = "MRN-0042"
    lab.load(rows)
    return lab


def add(lab, root_cause: str) -> tuple[str, int]:
    flag = actions.parse_flag("failure_rate:cytology", "2026Q3")
    return actions.add(lab.conn, lab.config, flag, root_cause, "re-train", "2026-12-31")


def test_each_kind_of_id_is_refused_and_named(lab) -> None:
    conn: sqlite3.Connection = lab.conn
    (key,) = conn.execute("SELECT patient_key FROM results WHERE test_id = 'TID-770'").fetchone()
    for text, named in (
        ("sample TID-775 was dry", "test id TID-775"),
        ("block TID-775/2 was dry", "test id TID-775"),
        ("patient MRN-0042 had a second biopsy", "patient id MRN-0042"),
        (f"pseudonym {key[:12]} again", f"hashed patient id {key[:12]}"),
    ):
        with pytest.raises(NodeError, match=f"names {named}"):
            add(lab, text)
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)


def test_text_without_the_labs_ids_is_signed_and_a_closing_note_is_screened(lab) -> None:
    # Words that look like ids but name nothing this node holds pass: TID-999 is no test here.
    action_id, _ = add(lab, "cytology blocks fixed in unbuffered formalin; TID-999 was an EQA")
    with pytest.raises(NodeError, match="names test id TID-771"):
        actions.close(lab.conn, lab.config, action_id, "fixed, see TID-771")
    actions.close(lab.conn, lab.config, action_id, "buffered formalin since October")
    assert actions.current(lab.conn, action_id).status == "closed"


def test_the_cli_refuses_with_a_message_not_a_traceback(lab) -> None:
    out = CliRunner().invoke(
        node_cli,
        [
            "action", "add", "--data-dir", str(lab.config.data_dir),
            "--flag", "failure_rate:cytology", "--period", "2026Q3",
            "--root-cause", "TID-773 was fixed in formalin", "--action", "re-train",
            "--due", "2026-12-31",
        ],
    )  # fmt: skip
    assert out.exit_code == 1, out.output  # a check failed (as an empty --root-cause)
    assert "test id TID-773" in out.output and "Traceback" not in out.output
