"""Submissions per second with 50 concurrent node clients on loopback, against a no-op unary RPC
(the gRPC health check) on the same coordinator process, and the raw Ed25519 verify rate; and
the coordinator's CPU per call of each kind (steadier than rates on a shared machine), and the
intake's own CPU per submission without gRPC (what of Submit's cost is the RPC layer's).
Targets (issue 5): >= 1,000 accepted and ledgered submissions/s, and >= half the no-op rate.
The two kinds of call alternate over a few rounds and the medians are compared, because the
machine's speed varies from second to second. Clients send Submit's leaf-form metadata, as nodes
do (their leaves are headers).

python -m bench.bench_submit [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import procstat
from bench.common import WORK, Timer
from coordinator import enrolment, store
from coordinator.config import DataDir
from coordinator.config import init as init_coordinator
from coordinator.intake import Intake
from coordinator.ledger import Ledger
from coordinator.rate_limit import SiteRateLimit
from coordinator.standards import load as load_standard
from coordinator.summary_checks import Vocabulary
from protos import dsse, keys, leaf, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import coordinator_pb2_grpc as cgrpc
from protos.rarenet.v1 import summary_pb2 as pb
from protos.rarenet.v1.envelope_pb2 import Envelope

CLIENTS = 50


def _serve(data_dir: Path) -> tuple[subprocess.Popen, int]:
    port_file = data_dir.parent / "port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "rarenet-coordinator"),
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (port_file.exists() and port_file.read_text().strip()):
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def _run_clients(port: int, work: list[list], call) -> float:
    """One thread per client, each with its own channel, calling in order; returns seconds."""
    barrier = threading.Barrier(len(work) + 1)
    errors: list[str] = []

    def client(items):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = call(channel)
            barrier.wait()
            for item in items:
                try:
                    stub(item)
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                    return

    threads = [threading.Thread(target=client, args=(items,)) for items in work]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} calls failed, e.g. {errors[0]}")
    return seconds


ROUNDS = 3  # no-op and Submit alternate; the medians are printed (this machine is noisy)
SMALL_STRATA = ("EGFR", "ALK", "ROS1", "MET_EX14", "RET", "KRAS_G12C")


def _small_payload(site: str, sequence: int) -> bytes:
    """A 6-stratum summary (about 2 KB)."""
    return wire.encode(
        pb.SiteSummary(
            site_id=site,
            period="2026Q3",
            schema_version=1,
            sequence=sequence,
            standard_version="2026.1",
            strata=[
                pb.StratumCounts(
                    biomarker=b,
                    method="ngs_dna_rna",
                    specimen="tissue",
                    histology_group="all",
                    tests=200,
                    positive=sequence % 7,
                    negative=200 - sequence % 7,
                )
                for b in SMALL_STRATA
            ],
        )
    )


def _quarterly_payload_maker(root: Path):
    """A lab's real quarterly summary (5,000 synthetic results through ingest and summarize: strata,
    turnaround, concordance, panel, VAF; about 30 KB), with each site's id and sequence put in."""
    from coordinator.standards import DEFAULT_STANDARD
    from node import config as node_config
    from node import store as node_store
    from node import summary
    from node.ingest import ingest_file
    from node.mapping import Mapping
    from node.pseudonym import Pseudonymiser
    from node.standard import parse as parse_standard
    from node.synth import generate, write_csv
    from protos.periods import parse as parse_period

    period = parse_period("2026Q3")
    cfg = node_config.init(root / "lab", "lab-bench", "127.0.0.1:1", insecure=True)
    conn = node_store.connect(cfg.db_path)
    write_csv(generate("lab-bench", 5000, 1, ("normal",), period), root / "lab.csv")
    ingest_file(conn, root / "lab.csv", Pseudonymiser(b"bench"), Mapping())
    _, template = summary.build(conn, cfg, parse_standard(DEFAULT_STANDARD.read_text()), period, 1)
    conn.close()
    assert (
        template.count(b'"site_id": "lab-bench"') == 1 and template.count(b'"sequence": "1"') == 1
    )

    def payload(site: str, sequence: int) -> bytes:
        return template.replace(b'"site_id": "lab-bench"', f'"site_id": "{site}"'.encode()).replace(
            b'"sequence": "1"', f'"sequence": "{sequence}"'.encode()
        )

    return payload


def _enrolled_work(data: DataDir, make_payload, per_client: int) -> list[list[Envelope]]:
    """Each client's site enrolled in `data`, and the envelopes it will send, signed."""
    conn = store.connect(data.db)
    work = []
    for i in range(CLIENTS):
        site = f"site-{i:03d}"
        token, _ = enrolment.add_site(conn, site)
        key = keys.generate()
        request = cpb.EnrollPayload(site_id=site, token=token, public_key=keys.public_raw(key))
        enrolment.enroll(conn, dsse.sign(wire.ENROLL, wire.encode(request), key))
        work.append(
            [
                dsse.sign(wire.SITE_SUMMARY, make_payload(site, seq), key)
                for seq in range(1, ROUNDS * per_client + 1)
            ]
        )
    conn.close()
    return work


def _intake_alone_ms(root: Path, make_payload, per_client: int) -> float:
    """CPU milliseconds per submission of the coordinator's intake without gRPC: the same
    envelopes handed to coordinator/intake.py by CLIENTS threads at once (verify, decode, check,
    ledger, store, receipt, group commit), in this process. Submit's CPU over the gRPC server
    less this is what the RPC layer costs."""
    data = init_coordinator(root / "intake-alone")
    work = _enrolled_work(data, make_payload, per_client)
    conn = store.connect(data.db)
    intake = Intake(
        conn,
        Ledger(conn, data.signing_key()),
        data.db,
        vocabulary=Vocabulary.of(load_standard(data.standard)),
        rate_limit=SiteRateLimit(per_minute=0),
    )
    barrier = threading.Barrier(CLIENTS + 1)

    def client(items: list[Envelope]) -> None:
        barrier.wait()
        for item in items:
            intake.submit(item, leaf_header=True)

    threads = [threading.Thread(target=client, args=(items,)) for items in work]
    for t in threads:
        t.start()
    barrier.wait()
    before = time.process_time()
    for t in threads:
        t.join()
    used = time.process_time() - before
    intake.close()
    ledgered = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    conn.close()
    count = sum(map(len, work))
    assert ledgered == count, f"{ledgered} ledgered of {count}"
    return 1000 * used / count


def _measure(root: Path, make_payload, per_client: int) -> dict:
    """Enrol the clients' sites, then alternate no-op and Submit rounds against one coordinator."""
    data = init_coordinator(root / "coordinator")
    work = _enrolled_work(data, make_payload, per_client)
    total = CLIENTS * per_client
    proc, port = _serve(data.path)
    noop_rates, submit_rates = [], []
    cpu = {"noop": 0.0, "submit": 0.0}  # the coordinator's CPU seconds in each kind of round
    try:
        check = health_pb2.HealthCheckRequest(service="")
        for r in range(ROUNDS):
            before = procstat.cpu_seconds(proc.pid)
            noop_rates.append(
                total
                / _run_clients(
                    port,
                    [[check] * per_client for _ in range(CLIENTS)],
                    lambda ch: health_pb2_grpc.HealthStub(ch).Check,  # type: ignore[attr-defined]  # the types-grpcio-health-checking stub's HealthStub has no methods
                )
            )
            between = procstat.cpu_seconds(proc.pid)
            submit_rates.append(
                total
                / _run_clients(
                    port,
                    [items[r * per_client : (r + 1) * per_client] for items in work],
                    lambda ch: partial(
                        cgrpc.CoordinatorStub(ch).Submit, metadata=(leaf.LEAF_FORM_METADATA,)
                    ),
                )
            )
            cpu["noop"] += between - before
            cpu["submit"] += procstat.cpu_seconds(proc.pid) - between
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ledgered = sqlite3.connect(data.db).execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    assert ledgered == ROUNDS * total, f"{ledgered} ledgered of {ROUNDS * total}"
    return {
        "noop": noop_rates,
        "submit": submit_rates,
        "ledgered": ledgered,
        "envelope": work[0][0],
        "cpu_ms": {kind: 1000 * seconds / (ROUNDS * total) for kind, seconds in cpu.items()}
        | {"intake": _intake_alone_ms(root, make_payload, per_client)},
    }


def run(quick: bool = False) -> None:
    per_client = 20 if quick else 100
    root = WORK / "submit"
    shutil.rmtree(root, ignore_errors=True)
    print(
        f"clients                  {CLIENTS} concurrent, {per_client} calls each, {ROUNDS} alternating rounds (medians)"
    )
    for name, make_payload in (
        ("6-stratum summary", _small_payload),
        ("quarterly lab summary", _quarterly_payload_maker(root)),
    ):
        figures = _measure(root / name.replace(" ", "-"), make_payload, per_client)
        noop_rate, submit_rate = (
            statistics.median(figures["noop"]),
            statistics.median(figures["submit"]),
        )
        envelope = figures["envelope"]
        key = keys.generate()
        signed = dsse.sign(wire.SITE_SUMMARY, envelope.payload, key)
        trusted = {dsse.keyid(key.public_key()): keys.public_raw(key)}
        n = 2000
        with Timer() as raw:
            for _ in range(n):
                dsse.verify(signed, trusted)
        print(f"-- {name} ({len(envelope.payload):,} payload bytes)")
        print(
            f"no-op unary RPC (health) {noop_rate:,.0f} calls/s  (rounds: {', '.join(f'{r:,.0f}' for r in figures['noop'])})"
        )
        print(
            f"Submit, accepted+ledgered {submit_rate:,.0f} submissions/s  (rounds: "
            f"{', '.join(f'{r:,.0f}' for r in figures['submit'])}; {figures['ledgered']:,} in the ledger)"
        )
        ratios = [s / n for s, n in zip(figures["submit"], figures["noop"])]
        print(
            f"ratio to no-op           {submit_rate / noop_rate:.2f}  (per round "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.5)"
        )
        print(
            f"signature verifications  {submit_rate:,.0f}/s in Submit; raw Ed25519 DSSE verify {n / raw.seconds:,.0f}/s"
        )
        print(
            f"coordinator CPU per call Submit {figures['cpu_ms']['submit']:.2f} ms, no-op "
            f"{figures['cpu_ms']['noop']:.2f} ms (all its threads and processes); the intake alone"
            f" {figures['cpu_ms']['intake']:.2f} ms (no gRPC: {CLIENTS} threads hand it the same"
            " envelopes)"
        )
        print(
            f"targets                  >= 1,000/s {'met' if submit_rate >= 1000 else 'NOT met'}; "
            f"ratio >= 0.5 {'met' if submit_rate >= noop_rate / 2 else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 calls per client, not 100")
    run(quick=parser.parse_args().quick)


if __name__ == "__main__":
    main()
