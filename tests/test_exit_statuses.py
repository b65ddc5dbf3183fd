"""One exit-status scheme for the three commands (protos/exits.py), and one gRPC status table.

0 success; 1 a check failed, a ledger alarm, or a refusal; 2 usage or input that cannot be read
or is not valid; 3 the other side could not be reached (temporary).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import grpc
from click.testing import CliRunner

from auditor.cli import main as audit_cli
from coordinator import errors as coordinator_errors
from coordinator.cli import main as coordinator_cli
from coordinator.server import STATUS_CODES, status_code
from node.cli import main as node_cli
from protos import dsse, exits, keys, wire
from tests.test_layers import imported


def init_node(tmp_path: Path) -> str:
    data_dir = str(tmp_path / "node")
    args = ["init", "--data-dir", data_dir, "--site-id", "lab-z"]
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    args += ["--coordinator", "127.0.0.1:1", "--insecure"]
    assert CliRunner().invoke(node_cli, args).exit_code == exits.OK
    return data_dir


def test_node_unreachable_coordinator_is_3_and_a_missing_enrolment_is_2(tmp_path) -> None:
    data_dir = init_node(tmp_path)
    runner = CliRunner()
    enroll = runner.invoke(node_cli, ["enroll", "--data-dir", data_dir, "--token", "T"])
    assert enroll.exit_code == exits.UNREACHABLE and "cannot be reached" in enroll.output
    submit = runner.invoke(node_cli, ["submit", "--data-dir", data_dir, "--period", "2026Q3"])
    assert submit.exit_code == exits.UNREACHABLE and "cannot be reached" in submit.output
    receipts = runner.invoke(node_cli, ["verify-receipts", "--data-dir", data_dir])
    assert receipts.exit_code == exits.BAD_INPUT and "rarenet-node enroll" in receipts.output
    bad_period = runner.invoke(node_cli, ["summarize", "--data-dir", data_dir, "--period", "Q3"])
    assert bad_period.exit_code == exits.BAD_INPUT and "Traceback" not in bad_period.output


def test_coordinator_unknown_site_is_2(tmp_path) -> None:
    data_dir = str(tmp_path / "centre")
    runner = CliRunner()
    assert runner.invoke(coordinator_cli, ["init", "--data-dir", data_dir]).exit_code == exits.OK
    result = runner.invoke(coordinator_cli, ["sites", "revoke", "--data-dir", data_dir, "lab-no"])
    assert result.exit_code == exits.BAD_INPUT and "no site lab-no" in result.output


def test_audit_envelope_statuses(tmp_path) -> None:
    signer, stranger = keys.generate(), keys.generate()
    envelope = tmp_path / "e.envelope"
    envelope.write_bytes(wire.envelope_bytes(dsse.sign("text/plain", b"hello", signer)))
    signer_pem, stranger_pem = tmp_path / "signer.pem", tmp_path / "stranger.pem"
    signer_pem.write_bytes(keys.public_pem(keys.public_raw(signer)))
    stranger_pem.write_bytes(keys.public_pem(keys.public_raw(stranger)))
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xff\x00 not an envelope nor a key")

    def run(envelope_path: Path, key_path: Path) -> int:
        args = ["verify-envelope", str(envelope_path), "--public-key", str(key_path)]
        return CliRunner().invoke(audit_cli, args).exit_code

    assert run(envelope, signer_pem) == exits.OK
    assert run(envelope, stranger_pem) == exits.FAILED
    assert run(envelope, junk) == exits.BAD_INPUT
    assert run(junk, signer_pem) == exits.BAD_INPUT


def test_every_coordinator_error_has_its_grpc_status() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(coordinator_errors, inspect.isclass)
        if issubclass(cls, coordinator_errors.CoordinatorError)
        and cls is not coordinator_errors.CoordinatorError
    ]
    assert len(classes) >= 7
    for cls in classes:
        assert cls in STATUS_CODES, f"{cls.__name__} has no gRPC status in coordinator/server.py"
    # Not one of the classes: INTERNAL, never another refusal's code.
    assert status_code(coordinator_errors.CoordinatorError("x")) == grpc.StatusCode.INTERNAL


def test_the_domain_errors_import_no_transport() -> None:
    root = Path(__file__).resolve().parent.parent
    for module in ("coordinator/errors.py", "node/errors.py", "auditor/errors.py"):
        tree = ast.parse((root / module).read_text())
        assert [package for _, package in imported(tree) if package == "grpc"] == [], module
