"""Property: whatever a hostile enrolled site signs and sends, the coordinator answers it with a
refusal or an acceptance (never INTERNAL), and every other site's GetBenchmark and the CLI
benchmark still succeed. Generated summaries start from a real one and have fields set to
arbitrary values: huge or inconsistent counts, names outside the vocabularies, odd suppression
lists, non-finite floats, out-of-range sequence numbers."""

from __future__ import annotations

import json

import grpc
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.cli import main as coordinator_cli
from coordinator.config import init as init_coordinator
from coordinator.rate_limit import SiteRateLimit
from coordinator.server import start
from node import summary
from node.client import RpcFailure
from node.standard import load_cached
from protos import dsse, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import summary_pb2 as pb
from tests.conftest import PERIOD, make_node

REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
}
U32 = st.integers(0, 2**32 - 1)
SMALL = st.integers(0, 50)
COUNT = st.one_of(SMALL, U32)
NAMES = st.one_of(
    st.sampled_from(["EGFR", "MET_EX14", "ngs_dna", "all", "any", "tissue", "plasma", ""]),
    st.text(max_size=12),
    st.sampled_from(["$\\frac{$", '=HYPERLINK("x")', "lab-\u0430", "..", "EGFR\x00"]),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, 1e6, -1.0])
CELLS = ("positive", "negative", "failed", "equivocal")


@st.composite
def mutation(draw, message: pb.SiteSummary) -> None:
    """Change one part of the message in place."""
    kind = draw(
        st.sampled_from(
            ["cell", "name", "suppressed", "withheld", "turnaround", "concordance", "panel"]
            + ["vaf", "dp", "sequence", "drop", "copy"]
            # odd but consistent: these pass the intake and reach the benchmark
            + ["odd cells", "odd suppression", "odd turnaround", "odd panel", "odd dp"] * 3
        )
    )
    if kind.startswith("odd"):
        draw(odd(message, kind))
        return
    if kind in ("cell", "name", "suppressed", "withheld", "drop", "copy") and message.strata:
        s = message.strata[draw(st.integers(0, len(message.strata) - 1))]
        if kind == "cell":
            setattr(s, draw(st.sampled_from(("tests", *CELLS))), draw(COUNT))
        elif kind == "name":
            setattr(s, draw(st.sampled_from(("biomarker", "method", "specimen"))), draw(NAMES))
        elif kind == "suppressed":
            s.suppressed_cells[:] = draw(
                st.lists(st.sampled_from(CELLS) | st.text(max_size=5), max_size=5)
            )
        elif kind == "withheld":
            s.withheld = not s.withheld
        elif kind == "drop":
            message.strata.remove(s)
        else:
            extra = message.strata.add()
            extra.CopyFrom(s)
            extra.specimen = draw(NAMES)
    elif kind == "turnaround" and message.turnaround:
        h = message.turnaround[0]
        field = draw(st.sampled_from(("total", "within_target", "counts", "specimen")))
        if field == "counts":
            h.counts[:] = draw(st.lists(COUNT, max_size=40))
        elif field == "specimen":
            h.specimen = draw(NAMES)
        else:
            setattr(h, field, draw(COUNT))
    elif kind == "concordance" and message.concordance:
        t = message.concordance[0]
        field = draw(
            st.sampled_from(
                ("both_positive", "both_negative", "excluded_failed", "kind", "biomarker")
            )
        )
        setattr(t, field, draw(NAMES if field in ("kind", "biomarker") else COUNT))
    elif kind == "panel":
        field = draw(st.sampled_from(("patients", "with_all_required", "biomarker")))
        if field == "biomarker" and message.panel.biomarkers:
            message.panel.biomarkers[0].with_valid_result = draw(COUNT)
        elif field != "biomarker":
            setattr(message.panel, field, draw(COUNT))
    elif kind == "vaf" and message.vaf:
        v = message.vaf[0]
        if draw(st.booleans()):
            v.edges[:] = draw(st.lists(FLOATS, max_size=10))
        else:
            v.counts[:] = draw(st.lists(COUNT, max_size=10))
    elif kind == "dp":
        message.policy.differential_privacy.CopyFrom(
            pb.DifferentialPrivacy(
                enabled=draw(st.booleans()),
                mechanism=draw(st.sampled_from(["geometric", "laplace", ""])),
                epsilon=draw(FLOATS),
                noise_scale=draw(FLOATS),
            )
        )
    elif kind == "sequence":
        message.sequence = draw(st.sampled_from([2**64 - 1, 2**63, 2**63 - 1, 2**40, 0]))


ODD = st.integers(0, 25_000)  # large but plausible: a lab's period, summed over four cells


@st.composite
def odd(draw, message: pb.SiteSummary, kind: str) -> None:
    """Values that make sense, however extreme: the benchmark must cope with them."""
    if kind == "odd cells" and message.strata:
        s = message.strata[draw(st.integers(0, len(message.strata) - 1))]
        s.withheld = False
        del s.suppressed_cells[:]
        for cell in CELLS:
            setattr(s, cell, draw(st.one_of(SMALL, ODD)))
        s.tests = sum(getattr(s, c) for c in CELLS)
    elif kind == "odd suppression" and message.strata:
        s = message.strata[draw(st.integers(0, len(message.strata) - 1))]
        hidden = draw(st.lists(st.sampled_from(CELLS), unique=True, max_size=4))
        s.withheld = False
        s.suppressed_cells[:] = hidden
        for cell in CELLS:
            setattr(s, cell, 0 if cell in hidden else draw(SMALL))
        s.tests = sum(getattr(s, c) for c in CELLS) + draw(SMALL)
    elif kind == "odd turnaround" and message.turnaround:
        h = message.turnaround[0]
        h.withheld = False
        h.counts[:] = draw(st.lists(st.one_of(SMALL, ODD), max_size=60))
        h.total = sum(h.counts) if sum(h.counts) < 2**32 else 0
        if not h.total:
            h.counts[:] = []
        h.within_target = draw(st.integers(0, h.total))
    elif kind == "odd panel":
        panel = message.panel
        panel.withheld = False
        panel.patients = draw(st.one_of(SMALL, ODD))
        panel.with_all_required = draw(st.integers(0, panel.patients))
        for b in panel.biomarkers:
            b.with_valid_result = draw(st.integers(0, panel.patients))
    elif kind == "odd dp":
        message.policy.differential_privacy.CopyFrom(
            pb.DifferentialPrivacy(
                enabled=True,
                mechanism="geometric",
                epsilon=draw(st.floats(1e-6, 20)),
                noise_scale=draw(st.floats(1e-6, 1000)),
            )
        )


@pytest.mark.slow
def test_hostile_signed_summaries_never_break_anyone_elses_benchmark(tmp_path, synthetic_csv):
    running = start(
        init_coordinator(tmp_path / "c"),
        "127.0.0.1:0",
        insecure=True,
        rate_limit=SiteRateLimit(per_minute=0),
    )
    try:
        nodes = {}
        for i, site in enumerate(("lab-a", "lab-b", "lab-c", "lab-evil")):
            node = make_node(tmp_path, running, site)
            node.ingest(synthetic_csv(site, rows=600, seed=i + 1))
            nodes[site] = node
        standard = load_cached(nodes["lab-a"].config.standard_path)

        def sign(node, message: pb.SiteSummary):
            return dsse.sign(wire.SITE_SUMMARY, wire.encode(message), node.config.signing_key())

        for site in ("lab-a", "lab-b", "lab-c"):
            node = nodes[site]
            node.client.submit(
                sign(node, summary.build(node.conn, node.config, standard, PERIOD, 1)[0])
            )
        evil = nodes["lab-evil"]
        template, _ = summary.build(evil.conn, evil.config, standard, PERIOD, 1)
        sequence = iter(range(1, 10_000))
        outcomes = {"accepted": 0, "refused": 0}

        @settings(
            max_examples=20,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(st.data())
        def hostile(data) -> None:
            message = pb.SiteSummary()
            message.CopyFrom(template)
            message.sequence = next(sequence)
            for _ in range(data.draw(st.integers(1, 4))):
                data.draw(mutation(message))
            try:
                evil.client.submit(sign(evil, message))
                outcomes["accepted"] += 1
            except RpcFailure as exc:
                assert exc.code in REFUSALS, str(exc)
                outcomes["refused"] += 1
                return
            for site in ("lab-a", "lab-b", "lab-c"):  # every other site's own benchmark
                node = nodes[site]
                ask = cpb.BenchmarkRequestPayload(site_id=site, period=PERIOD.label)
                got = node.client.benchmark(
                    dsse.sign(wire.BENCHMARK_REQUEST, wire.encode(ask), node.config.signing_key())
                )
                assert json.loads(got.benchmark.payload)["site"]
            out = tmp_path / "report"
            result = CliRunner().invoke(
                coordinator_cli,
                ["benchmark", "--data-dir", str(running.service.data.path)]
                + ["--period", PERIOD.label, "--out", str(out)],
            )
            assert result.exit_code == 0, result.output
            report = json.loads((out / "benchmark.json").read_text())
            assert {"lab-a", "lab-b", "lab-c"} <= set(report["sites"])

        hostile()
        assert outcomes["refused"] > 0 and outcomes["accepted"] > 0, outcomes
        print(outcomes)
    finally:
        for node in nodes.values():
            node.client.close()
        running.stop(grace=1)
