"""A hostile enrolled site (well-signed summaries) over a real server: every field's meaning is
checked, one bad envelope is refused alone, a flood is rate-limited, and GetBenchmark is computed
once per ledger state."""

from __future__ import annotations

import math
import threading
import time

import grpc
import pytest

from coordinator.config import init as init_coordinator
from coordinator.errors import InvalidRequest
from coordinator.rate_limit import SiteRateLimit
from coordinator.server import start
from coordinator.standards import DEFAULT_STANDARD
from coordinator.standards import load as load_standard
from coordinator.summary_checks import MAX_STRATA, Vocabulary, check_summary
from node import summary
from node.client import RpcFailure
from node.standard import load_cached
from protos import dsse, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import summary_pb2 as pb
from tests.conftest import PERIOD, make_node


def ledger_size(running) -> int:
    return running.service.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def honest(node, sequence: int) -> pb.SiteSummary:
    message, _ = summary.build(
        node.conn, node.config, load_cached(node.config.standard_path), PERIOD, sequence
    )
    return message


def signed(node, message: pb.SiteSummary):
    return dsse.sign(wire.SITE_SUMMARY, wire.encode(message), node.config.signing_key())


def released(message: pb.SiteSummary) -> pb.StratumCounts:
    return next(s for s in message.strata if not s.withheld and s.tests > 2)


def _suppressed_equivocal(m: pb.SiteSummary) -> None:
    s = released(m)
    s.failed, s.tests, s.equivocal = 1000, 1, 0  # the suppressed cell itself is released as 0
    s.suppressed_cells[:] = ["equivocal"]


def _failed_over_tests(m: pb.SiteSummary) -> None:
    s = released(m)
    s.failed += s.tests + 5


def _panel_over_patients(m: pb.SiteSummary) -> None:
    m.panel.withheld = False
    m.panel.with_all_required = m.panel.patients + 1


def _panel_biomarker_over_patients(m: pb.SiteSummary) -> None:
    m.panel.biomarkers[0].with_valid_result = m.panel.patients + 1


def _name(value: str):
    def mutate(m: pb.SiteSummary) -> None:
        released(m).biomarker = value

    return mutate


def _noise(scale: float):
    def mutate(m: pb.SiteSummary) -> None:
        m.policy.differential_privacy.CopyFrom(
            pb.DifferentialPrivacy(
                enabled=True, mechanism="geometric", epsilon=1.0, noise_scale=scale
            )
        )

    return mutate


def _sequence(value: int):
    def mutate(m: pb.SiteSummary) -> None:
        m.sequence = value

    return mutate


def _huge_counts(m: pb.SiteSummary) -> None:
    s = released(m)
    s.negative += 2**30
    s.tests += 2**30


def _duplicate_stratum(m: pb.SiteSummary) -> None:
    m.strata.append(released(m))


def _turnaround_bins(m: pb.SiteSummary) -> None:
    h = next(h for h in m.turnaround if not h.withheld)
    h.within_target = h.total + 1


def _many_bins(m: pb.SiteSummary) -> None:
    h = next(h for h in m.turnaround if not h.withheld)
    h.counts.extend([0] * 10_000)


HOSTILE = {
    "suppressed cell hides failed > tests": (_suppressed_equivocal, "cells do not add up"),
    "failed > tests": (_failed_over_tests, "cells do not add up"),
    "panel: all required > patients": (_panel_over_patients, "cannot be more"),
    "panel: a biomarker > patients": (_panel_biomarker_over_patients, "cannot be more"),
    "matplotlib mathtext name": (_name("$\\frac{$"), "not in the standard's vocabulary"),
    "spreadsheet formula name": (
        _name('=HYPERLINK("http://x","y")'),
        "not in the standard's vocabulary",
    ),
    "homoglyph biomarker": (_name("EGFR\u0410"), "not in the standard's vocabulary"),
    "noise_scale NaN": (_noise(math.nan), "finite"),
    "noise_scale 1e6": (_noise(1e6), "noise_scale 1e+06 must lie in"),
    "sequence 2^64-1": (_sequence(2**64 - 1), "beyond"),
    "sequence 2^63": (_sequence(2**63), "beyond"),
    "sequence 2^63-1 (would brick the site)": (_sequence(2**63 - 1), "jumps more than"),
    "a stratum twice": (_duplicate_stratum, "appears twice"),
    "2^30 tests (exact limits would stall every benchmark)": (
        _huge_counts,
        "more than a lab reports in a period",
    ),
    "turnaround within > total": (_turnaround_bins, "within target cannot exceed"),
    "10,000 turnaround bins": (_many_bins, "more than the 100 allowed"),
}


@pytest.fixture
def network(coordinator, node_factory, synthetic_csv):
    """Three honest sites with accepted summaries, and a hostile one."""
    nodes = {}
    for i, site in enumerate(("lab-a", "lab-b", "lab-c", "lab-evil")):
        node = node_factory(site)
        node.ingest(synthetic_csv(site, rows=800, seed=i + 1))
        if site != "lab-evil":
            node.client.submit(signed(node, honest(node, 1)))
        nodes[site] = node
    return nodes


def test_a_hostile_summary_is_refused_with_a_reason(coordinator, network) -> None:
    evil = network["lab-evil"]
    before = ledger_size(coordinator)
    for case, (mutate, words) in HOSTILE.items():
        message = honest(evil, 1)
        mutate(message)
        with pytest.raises(RpcFailure) as caught:
            evil.client.submit(signed(evil, message))
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, (case, str(caught.value))
        assert words in str(caught.value), (case, str(caught.value))
    assert ledger_size(coordinator) == before
    # The honest version from the same site is accepted: only the hostile content was refused.
    evil.client.submit(signed(evil, honest(evil, 1)))
    assert ledger_size(coordinator) == before + 1


def test_an_oversized_summary_is_refused_before_it_is_read(coordinator, network) -> None:
    evil = network["lab-evil"]
    message = honest(evil, 1)
    message.strata[0].disclosure_note = "x" * 13_900_000  # the size of 45,000 strata
    envelope = signed(evil, message)
    assert len(envelope.payload) > 13_900_000
    with pytest.raises(RpcFailure) as caught:
        evil.client.submit(envelope)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than the 2,097,152 a summary may have" in str(caught.value)


def test_strata_count_is_bounded() -> None:
    message = pb.SiteSummary(sequence=1)
    for i in range(MAX_STRATA + 1):
        message.strata.add(biomarker="EGFR", method="pcr", specimen=f"s{i}", tests=0)
    with pytest.raises(InvalidRequest, match=f"more than the {MAX_STRATA} allowed"):
        check_summary(message, None)
    vocabulary = Vocabulary.of(load_standard(DEFAULT_STANDARD))
    assert {"EGFR", "MET_EX14", "NTRK"} <= vocabulary.biomarkers
    assert {"ngs_dna", "all", "any"} <= vocabulary.methods and "any" in vocabulary.specimens


def test_hostile_envelopes_in_a_batch_never_fail_the_honest_ones(coordinator, network) -> None:
    """Honest and hostile envelopes arrive together, so they share batches (group commits)."""
    evil = network["lab-evil"]
    honest_sites = [network[s] for s in ("lab-a", "lab-b", "lab-c")]
    outcomes: dict[str, list[str | grpc.StatusCode]] = {"honest": [], "hostile": []}
    lock = threading.Lock()
    start_line = threading.Barrier(4)

    def send(kind: str, node, envelopes) -> None:
        start_line.wait()
        for envelope in envelopes:
            result: str | grpc.StatusCode = "accepted"
            try:
                node.client.submit(envelope)
            except RpcFailure as exc:
                result = exc.code
            with lock:
                outcomes[kind].append(result)

    hostile = []
    for i, (mutate, _) in enumerate(HOSTILE.values()):
        message = honest(evil, 10 + i)
        mutate(message)
        hostile.append(signed(evil, message))
    threads = [threading.Thread(target=send, args=("hostile", evil, hostile * 3))]
    for node in honest_sites:
        envelopes = [signed(node, honest(node, seq)) for seq in range(2, 12)]
        threads.append(threading.Thread(target=send, args=("honest", node, envelopes)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["honest"] == ["accepted"] * 30
    assert set(outcomes["hostile"]) == {grpc.StatusCode.INVALID_ARGUMENT}


def test_a_commit_that_fails_for_one_envelope_is_retried_one_by_one(coordinator, network) -> None:
    """A real storage failure for one envelope (an SQLite trigger refusing lab-evil's row) inside
    a group commit: the others in the batch are still stored and receipted."""
    coordinator.service.conn.execute(
        "CREATE TRIGGER refuse_evil BEFORE INSERT ON summaries WHEN NEW.site_id = 'lab-evil' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    evil = network["lab-evil"]
    results: dict[str, object] = {}
    nodes = [network[s] for s in ("lab-a", "lab-b", "lab-c")] + [evil]
    envelopes = {n.config.site_id: signed(n, honest(n, 2)) for n in nodes}
    gate = threading.Barrier(len(nodes))

    def send(node) -> None:
        gate.wait()
        try:
            node.client.submit(envelopes[node.config.site_id])
            results[node.config.site_id] = "accepted"
        except RpcFailure as exc:
            results[node.config.site_id] = exc.code

    threads = [threading.Thread(target=send, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {
        "lab-a": "accepted",
        "lab-b": "accepted",
        "lab-c": "accepted",
        "lab-evil": grpc.StatusCode.INTERNAL,
    }
    stored = coordinator.service.conn.execute("SELECT site_id FROM summaries WHERE sequence = 2")
    assert sorted(s for (s,) in stored) == ["lab-a", "lab-b", "lab-c"]


def test_a_flooding_site_is_rate_limited_and_others_are_not(tmp_path, synthetic_csv) -> None:
    running = start(
        init_coordinator(tmp_path / "c"),
        "127.0.0.1:0",
        insecure=True,
        rate_limit=SiteRateLimit(per_minute=6, burst=3),
    )
    try:
        flood, calm = (
            make_node(tmp_path, running, "lab-flood"),
            make_node(tmp_path, running, "lab-calm"),
        )
        for node in (flood, calm):
            node.ingest(synthetic_csv(node.config.site_id, rows=300))
        codes: list[str | grpc.StatusCode] = []
        for seq in range(1, 8):
            try:
                flood.client.submit(signed(flood, honest(flood, seq)))
                codes.append("accepted")
            except RpcFailure as exc:
                codes.append(exc.code)
                message = str(exc)
        assert codes == ["accepted"] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
        assert "site lab-flood sent more than 3 submissions" in message and "wait" in message
        calm.client.submit(signed(calm, honest(calm, 1)))  # another site is not held back
        assert ledger_size(running) == 4
    finally:
        running.stop(grace=1)


def test_getbenchmark_is_computed_once_per_ledger_state(coordinator, network) -> None:
    sites = [network[s] for s in ("lab-a", "lab-b", "lab-c")]

    def ask(node):
        request = cpb.BenchmarkRequestPayload(site_id=node.config.site_id, period=PERIOD.label)
        return node.client.benchmark(
            dsse.sign(wire.BENCHMARK_REQUEST, wire.encode(request), node.config.signing_key())
        )

    cache = coordinator.service.benchmarks
    began = time.perf_counter()
    threads = [threading.Thread(target=ask, args=(sites[i % 3],)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    assert cache.computations == 1, f"64 calls computed {cache.computations} times"
    one = ask(sites[0])
    assert cache.computations == 1
    # A new accepted submission is a new ledger state: the next call computes again, once.
    sites[1].client.submit(signed(sites[1], honest(sites[1], 2)))
    assert ask(sites[0]).benchmark.payload and ask(sites[2]).benchmark.payload
    assert cache.computations == 2
    assert one.benchmark.payload
    print(f"64 GetBenchmark calls in {elapsed:.2f} s")
