"""A full EQA round through real gRPC: sealed truth, blind responses, deadline, scoring."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from click.testing import CliRunner

from coordinator import eqa
from coordinator.config import init as init_coordinator
from coordinator.errors import WrongState
from coordinator.server import start
from node import eqa as node_eqa
from node.cli import main as node_cli
from node.client import RpcFailure
from protos import dsse, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from tests.conftest import make_node
from tests.test_ingest import row, write

SAMPLES = "sample_id,biomarker\nS1,EGFR\nS1,ALK\nS2,EGFR\nS2,MET_EX14\nS3,KRAS_G12C\n"
TRUTH = (
    b"sample_id,biomarker,result,variant\nS1,EGFR,positive,EGFR exon 19 deletion\nS1,ALK,negative,\n"
    b"S2,EGFR,negative,\nS2,MET_EX14,positive,MET exon 14 skipping\nS3,KRAS_G12C,positive,\n"
)
CORRECT = {
    ("S1", "EGFR"): ("positive", "EGFR exon 19 del"),
    ("S1", "ALK"): ("negative", ""),
    ("S2", "EGFR"): ("negative", ""),
    ("S2", "MET_EX14"): ("positive", "MET exon 14 skipping"),
    ("S3", "KRAS_G12C"): ("positive", ""),
}


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@pytest.fixture
def network(tmp_path):
    clock = Clock()
    running = start(
        init_coordinator(tmp_path / "coordinator"), "127.0.0.1:0", insecure=True, clock=clock
    )
    deadline = clock().date() + dt.timedelta(days=5)
    eqa.open_round(
        running.service.conn, running.service.key, "2026-R2", SAMPLES, TRUTH, deadline, 0.9, 2
    )
    yield running, clock, deadline
    running.stop(grace=1)


def answer(node, tmp_path, changes: dict) -> None:
    calls = {**CORRECT, **changes}
    rows = [
        row(
            test_id=f"EQA-{s}",
            patient_id="EQA",
            biomarker=b,
            result=r,
            variant=v,
            vaf="",
            eqa_round="2026-R2",
            eqa_sample=s,
        )
        for (s, b), (r, v) in calls.items()
    ]
    rows.append(row(test_id="PATIENT-1"))  # an ordinary patient result beside them
    result = node.ingest(write(tmp_path / f"{node.config.site_id}.csv", rows))
    assert result.quarantined == 0, result.errors


def test_a_full_round_scored_as_the_reference_scheme(network, tmp_path) -> None:
    running, clock, deadline = network
    labs = {
        "lab-good": {},
        "lab-fn": {("S2", "MET_EX14"): ("negative", "")},
        "lab-tf": {("S3", "KRAS_G12C"): ("failed", "")},
        "lab-wv": {("S1", "EGFR"): ("positive", "EGFR L858R")},
    }
    nodes = {}
    runner = CliRunner()
    for site, changes in labs.items():
        node = nodes[site] = make_node(tmp_path, running, site)
        answer(node, tmp_path, changes)
        status = runner.invoke(node_cli, ["eqa", "status", "--data-dir", str(node.config.data_dir)])
        assert status.exit_code == 0 and "answered 5 of 5" in status.output, status.output
        submitted = runner.invoke(
            node_cli,
            ["eqa", "submit", "--data-dir", str(node.config.data_dir), "--round", "2026-R2"],
        )
        assert submitted.exit_code == 0 and "delivered" in submitted.output, submitted.output

    # Before closing: no truth, no salt, no other lab's answers, no scores.
    good = nodes["lab-good"]
    (published,) = node_eqa.rounds(good.config, good.client)
    assert not published.revealed_salt and b"exon 19" not in good.client.eqa_rounds()[0].payload
    assert b"lab-fn" not in good.client.eqa_rounds()[0].payload
    with pytest.raises(RpcFailure) as caught:
        node_eqa.score(good.config, good.client, "2026-R2")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION

    # After the deadline a response is refused.
    late = make_node(tmp_path, running, "lab-late")
    answer(late, tmp_path, {})
    clock.offset += dt.timedelta(days=6)
    refused = runner.invoke(
        node_cli, ["eqa", "submit", "--data-dir", str(late.config.data_dir), "--round", "2026-R2"]
    )
    assert refused.exit_code == 1 and "late responses are refused" in refused.output

    # A truth file changed after opening is detected; the original closes the round.
    with pytest.raises(WrongState, match="not the one sealed"):
        eqa.close_round(
            running.service.conn,
            running.service.key,
            "2026-R2",
            TRUTH.replace(b"S2,EGFR,negative", b"S2,EGFR,positive"),
            today=deadline + dt.timedelta(days=1),
        )
    sheets = {
        s.site_id: s
        for s in eqa.close_round(
            running.service.conn,
            running.service.key,
            "2026-R2",
            TRUTH,
            today=deadline + dt.timedelta(days=1),
        )
    }
    assert set(sheets) == set(labs)
    assert (
        sheets["lab-good"].points,
        sheets["lab-good"].max_points,
        sheets["lab-good"].passed,
    ) == (10, 10, True)
    fn = sheets["lab-fn"]
    assert (fn.points, fn.errors, fn.technical_failures, fn.passed) == (8, 1, 0, False)
    assert [line.outcome for line in fn.lines if line.outcome != "correct"] == ["false_negative"]
    tf = sheets["lab-tf"]
    assert (tf.points, tf.errors, tf.technical_failures, tf.passed) == (8, 0, 1, False)
    wv = sheets["lab-wv"]
    assert [line.outcome for line in wv.lines if line.outcome != "correct"] == [
        "wrong_variant"
    ] and not wv.passed

    # Each lab gets its own signed sheet, and only its own; the salt is now public and checks out.
    for site, node in nodes.items():
        assert node_eqa.score(node.config, node.client, "2026-R2").points == sheets[site].points
    request = cpb.EqaScoreRequestPayload(site_id="lab-fn", round_id="2026-R2")
    with pytest.raises(RpcFailure) as caught:
        good.client.eqa_score(
            dsse.sign(wire.EQA_SCORE_REQUEST, wire.encode(request), good.config.signing_key())
        )
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    (closed,) = node_eqa.rounds(good.config, good.client)
    assert eqa.commitment(bytes.fromhex(closed.revealed_salt), TRUTH) == closed.commitment_sha256
    shown = runner.invoke(
        node_cli,
        ["eqa", "score", "--data-dir", str(nodes["lab-fn"].config.data_dir), "--round", "2026-R2"],
    )
    assert "FAIL" in shown.output and "S2 MET_EX14: false_negative" in shown.output

    # EQA samples never enter the period summaries: before disclosure control, one test (PATIENT-1).
    from node import metrics
    from node.standard import load_cached
    from node.workdays import WorkingDays
    from protos.periods import parse as parse_period

    raw = metrics.compute(
        good.conn, parse_period("2026Q3"), load_cached(good.config.standard_path), WorkingDays("CN")
    )
    assert sum(s.tests for s in raw.strata if s.method == "all") == 1


def test_closed_round_joins_the_report_and_the_audit_bundle(network, tmp_path) -> None:
    import json

    from auditor.verify import verify
    from coordinator import benchmark
    from coordinator.audit_bundle import build
    from protos.periods import containing
    from tests.test_audit import rewrite

    running, clock, deadline = network
    for site, changes in (("lab-good", {}), ("lab-fn", {("S2", "MET_EX14"): ("negative", "")})):
        node = make_node(tmp_path, running, site)
        answer(node, tmp_path, changes)
        assert (
            CliRunner()
            .invoke(
                node_cli,
                ["eqa", "submit", "--data-dir", str(node.config.data_dir), "--round", "2026-R2"],
            )
            .exit_code
            == 0
        )
    eqa.close_round(
        running.service.conn,
        running.service.key,
        "2026-R2",
        TRUTH,
        today=deadline + dt.timedelta(days=1),
    )
    period = containing(deadline).label
    data = running.service.data
    report = benchmark.compute(running.service.conn, period, running.service.standard)
    assert report["eqa"]["2026-R2"]["sites"]["lab-fn"]["passed"] is False
    assert report["eqa"]["2026-R2"]["sites"]["lab-good"]["points"] == 10
    assert any(f["rule"] == "eqa" and f["site_id"] == "lab-fn" for f in report["flags"])

    bundle = tmp_path / "eqa-bundle.zip"
    build(data, running.service.standard, period, bundle)
    result = verify(bundle)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert any(c.name == "eqa 2026-R2" and c.ok for c in result.checks)
    assert sum(c.name.startswith("leaf ") for c in result.checks) == 2  # the two signed responses

    swapped = rewrite(
        bundle,
        tmp_path / "swapped.zip",
        key=data.signing_key(),
        change={
            "eqa/2026-R2/truth.csv": lambda t: t.replace(b"S2,EGFR,negative", b"S2,EGFR,positive")
        },
    )
    failed = {c.name: c.detail for c in verify(swapped).checks if not c.ok}
    assert "does not match the commitment" in failed["eqa 2026-R2"]

    def pass_everyone(text: bytes) -> bytes:
        shown = json.loads(text)
        shown["eqa"]["2026-R2"]["sites"]["lab-fn"]["passed"] = True
        return json.dumps(shown).encode()

    flattered = rewrite(
        bundle,
        tmp_path / "flattered.zip",
        key=data.signing_key(),
        change={"report/benchmark.json": pass_everyone},
    )
    failed = {c.name: c.detail for c in verify(flattered).checks if not c.ok}
    assert (
        set(failed) == {"statistics"} and "/eqa/2026-R2/sites/lab-fn/passed" in failed["statistics"]
    )
