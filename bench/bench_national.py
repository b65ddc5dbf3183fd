"""A national network in one run (issue 17): 3,000 labs x four quarters, signed by each lab's own
key, enrolled and submitted over real gRPC on loopback by 50 concurrent clients, ledgered with
receipts; then the benchmark and report of the last quarter, its audit bundle, `rarenet-audit
verify` of the bundle, and `verify-receipts` at a sample of real node data directories. Once the
last submission is receipted the run's ledger is checked (beside the benchmark, in a process of
its own): every receipt verifies, the signed tree head is the root recomputed from the leaves; at
the end, that head is still the latest, and the bundle verified.

The run is made at 300, 1,000 and 3,000 labs, to show how each phase grows. Everything goes
through the public commands and functions (rarenet-coordinator serve / benchmark --audit-bundle,
rarenet-audit verify, the node's enroll, outbox, send and receipts code), so the harness keeps
working as those change.

python -m bench.bench_national [--labs 300 1000 3000] [--templates 32] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import procstat
from bench.common import WORK
from bench.national_check import Given, LedgerCheckFailed, latest_head, submit_floor, write_given
from bench.national_labs import QUARTERS, TEMPLATES, Template, lab_payload, make_templates
from coordinator import enrolment, store
from coordinator.config import init as init_coordinator
from node import config as node_config
from node import enroll as node_enroll
from node import outbox, send
from node import store as node_store
from node.client import CoordinatorClient
from protos import dsse, keys, leaf, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb

T = TypeVar("T")

CLIENTS = 50
SAMPLE_NODES = 10  # labs run as real node data directories, checked with verify-receipts
BIN = Path(sys.executable).parent
LAST = QUARTERS[-1].label
SUBMIT = "sign + submit (gRPC)"  # each lab signs its summary as it sends it
BENCHMARK = "benchmark + audit bundle"  # `benchmark --audit-bundle`: the report and the bundle
CHECKS = "ledger + receipt checks"  # beside the benchmark, audit bundle and verify
STARTS = "coordinator start"  # serve, the sampled labs' node directories, the clients' channels
OTHER = "other"  # the driver between phases
TARGET_SECONDS, TARGET_MB, TARGET_VERIFY_SECONDS = 60.0, 2048.0, 15.0


@dataclass
class Lab:
    site_id: str
    key: Ed25519PrivateKey
    template: Template
    node_dir: Path | None = None  # a real node data directory (the sampled labs)
    given: list[Given] = field(default_factory=list)  # what it sent, the receipts it was given


@dataclass(frozen=True)
class Signed:
    """One lab's signed summary of a quarter: the serialised envelope, sent as it is."""

    blob: bytes
    sha256: str  # of the envelope (the receipt must name it)


class Calls:
    """The Enroll and Submit calls of one client's channel, taking requests already serialised
    (each envelope is serialised once, when it is signed, as a node keeps it in its outbox)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.enroll: grpc.aio.UnaryUnaryMultiCallable = channel.unary_unary(
            "/rarenet.v1.Coordinator/Enroll",
            response_deserializer=cpb.EnrollResponse.FromString,
        )
        self.submit: grpc.aio.UnaryUnaryMultiCallable = channel.unary_unary(
            "/rarenet.v1.Coordinator/Submit",
            response_deserializer=cpb.SubmitResponse.FromString,
        )


PlainWork = Callable[[Lab, Calls], Awaitable[None]]  # a lab the harness plays itself
NodeWork = Callable[[Lab], None]  # a lab with a real node data directory, through the node's code


class Clients:
    """50 concurrent clients, each on a channel of its own kept open for the whole run (as a
    lab's node keeps its own); they take the labs in turn (lab i to client i % 50). One event
    loop drives them all (grpc.aio), which costs this process less CPU per call than 50 threads
    on blocking calls; the labs with real node data directories run the node's own blocking code
    in a thread each."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.calls = self.loop.run_until_complete(self._open(port))

    @staticmethod
    async def _open(port: int) -> list[Calls]:
        return [Calls(grpc.aio.insecure_channel(f"127.0.0.1:{port}")) for _ in range(CLIENTS)]

    def run(self, labs: list[Lab], plain: PlainWork, node: NodeWork) -> None:
        self.loop.run_until_complete(self._run(labs, plain, node))

    async def _run(self, labs: list[Lab], plain: PlainWork, node: NodeWork) -> None:
        errors: list[str] = []

        async def client(calls: Calls, mine: list[Lab]) -> None:
            for lab in mine:
                try:
                    if lab.node_dir is not None:
                        await asyncio.to_thread(node, lab)
                    else:
                        await plain(lab, calls)
                except Exception as exc:  # noqa: BLE001 - reported after the others finish
                    errors.append(f"{lab.site_id}: {exc}")
                    return

        count = len(self.calls)
        await asyncio.gather(*(client(c, labs[i::count]) for i, c in enumerate(self.calls)))
        if errors:
            raise SystemExit(f"{len(errors)} clients failed, e.g. {errors[0]}")

    def close(self) -> None:
        self.loop.run_until_complete(self._close())
        self.loop.close()

    async def _close(self) -> None:
        await asyncio.gather(*(c.channel.close() for c in self.calls))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


@dataclass
class Run:
    labs: int
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds
    cpu: dict[str, float] = field(
        default_factory=dict
    )  # CPU seconds: driver, coordinator, commands
    coordinator_pid: int | None = None
    coordinator_cpu: float = 0.0  # seconds, over the submissions
    submit_cpu: dict[str, float] = field(default_factory=dict)  # the same by process
    noop_cpu_ms: float = 0.0  # the coordinator's CPU per no-op RPC (a health check)
    submissions: int = 0
    coordinator_mb: dict[int, float] = field(default_factory=dict)
    children_mb: dict[str, float] = field(default_factory=dict)
    peak_mb: float = 0.0  # sampled: everything the run's processes held at once (MemorySampler)
    peak_phase: str = ""
    sampler: MemorySampler | None = None
    elapsed: float = 0.0  # wall seconds of the whole run (its phases and what lies between them)
    total_cpu: float = 0.0  # CPU seconds of the driver and every process it started, reaped
    notes: list[str] = field(default_factory=list)

    def coordinator_cpu_now(self) -> float:
        return procstat.cpu_seconds(self.coordinator_pid) if self.coordinator_pid else 0.0

    def timed(self, phase: str, fn: Callable[[], T]) -> T:
        if self.sampler is not None:
            self.sampler.phase = phase
        start, own, coordinator = time.perf_counter(), _own_cpu(), self.coordinator_cpu_now()
        value = fn()
        self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - start
        used = _own_cpu() - own + self.coordinator_cpu_now() - coordinator
        self.cpu[phase] = self.cpu.get(phase, 0.0) + used
        return value


def _cli(run: Run, phase: str, *argv: str) -> str:
    """Run one of the public commands, timed; keeps its peak memory and CPU; its output on failure."""
    out = WORK / "national" / f"{phase}.out"
    usage: list[Any] = []

    def command() -> tuple[int, str]:
        with out.open("w+") as fh:
            proc = subprocess.Popen(
                [str(BIN / argv[0]), *argv[1:]], stdout=fh, stderr=subprocess.STDOUT
            )
            _, status, rusage = os.wait4(proc.pid, 0)
            usage.append(rusage)
            fh.seek(0)
            return os.waitstatus_to_exitcode(status), fh.read()

    code, text = run.timed(phase, command)
    run.cpu[phase] += usage[0].ru_utime + usage[0].ru_stime
    run.children_mb[phase] = usage[0].ru_maxrss / 1024
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:2])} exited {code}:\n{text[-3000:]}")
    return text


class MemorySampler:
    """The run's memory as the machine holds it: every SAMPLE_SECONDS (or, while reading it costs
    much, a little less often), the proportional set size summed over this driver and every
    process it started (the coordinator, the commands and their own children), kept at its
    highest with the phase it was in. Processes that run together are counted together; a forked
    child's pages shared with its parent are counted once."""

    SAMPLE_SECONDS = 0.25
    PSS_SHARE = 20  # a proportional-size reading taking t seconds is not made again within 20 t

    def __init__(self, run: Run) -> None:
        self.run = run
        self.peak_mb, self.peak_phase = 0.0, ""
        self.phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        next_pss = 0.0
        while not self._stop.wait(self.SAMPLE_SECONDS):
            pids = procstat.tree(os.getpid())
            # The proportional set size is never above the resident set size: only when the
            # resident size is above the peak so far can the peak have grown. Reading the
            # proportional size costs the kernel a walk of every page (~20 ms a GB): it is read
            # at most a twentieth of the time (5% of a core).
            if procstat.rss_mb(pids) <= self.peak_mb or time.perf_counter() < next_pss:
                continue
            started = time.perf_counter()
            mb = procstat.pss_mb(os.getpid(), pids)
            next_pss = started + self.PSS_SHARE * (time.perf_counter() - started)
            if mb > self.peak_mb:
                self.peak_mb, self.peak_phase = mb, self.phase

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.run.peak_mb, self.run.peak_phase = self.peak_mb, self.peak_phase


class QuarterCloses:
    """When a quarter closes the coordinator benchmarks it (as `serve`'s scheduled report of a
    closed period does, in serve's own process); here one process (bench/national_close.py) keeps
    each closed quarter's flags, one quarter after another, while the next quarter's summaries
    come in. The last quarter's report reads them for its flag history instead of computing them
    (with two benchmarks in memory at once). Their CPU is counted (phase "quarter closes"); their
    wall time overlaps the submissions, and what is left when the last quarter's report is due is
    waited for."""

    PHASE = "quarter closes"

    def __init__(self, run: Run, data_dir: Path) -> None:
        self.run, self.data_dir = run, data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.log = WORK / "national" / "quarter-closes.out"
        self.started: list[float] = []  # when each close was asked for
        self.walls: list[float] = []  # each close's own wall time (not its wait in the queue)
        self.lines: list[str] = []
        self.reader: threading.Thread | None = None

    def closed(self, period: str) -> None:
        if self.proc is None:
            with self.log.open("w") as errors:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.national_close", str(self.data_dir)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    text=True,
                )
            self.reader = threading.Thread(target=self._read)
            self.reader.start()
        assert self.proc.stdin is not None
        self.started.append(time.perf_counter())
        self.proc.stdin.write(period + "\n")
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        finished = 0.0
        for line in self.proc.stdout:
            began = max(self.started[len(self.walls)], finished)
            finished = time.perf_counter()
            self.walls.append(finished - began)
            self.lines.append(line.rstrip())

    def wait(self) -> None:
        """Wait for the closes still running (that wall time is the phase's)."""
        start = time.perf_counter()
        if self.run.sampler is not None:
            self.run.sampler.phase = self.PHASE
        if self.proc is None:
            return
        assert self.proc.stdin is not None and self.reader is not None
        self.proc.stdin.close()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.reader.join()
        phases, cpu = self.run.phases, self.run.cpu
        phases[self.PHASE] = phases.get(self.PHASE, 0.0) + time.perf_counter() - start
        cpu[self.PHASE] = cpu.get(self.PHASE, 0.0) + usage.ru_utime + usage.ru_stime
        self.run.children_mb[self.PHASE] = usage.ru_maxrss / 1024
        if self.proc.returncode != 0 or len(self.lines) != len(self.started):
            said = "; ".join(self.lines)
            raise SystemExit(f"a quarter's close failed: {said} (see {self.log})")
        self.run.notes.append(
            f"quarter closes of {', '.join(q.label for q in QUARTERS[:-1])}: each quarter's"
            " flags kept as it closed, in one process while the next one's summaries came in ("
            + ", ".join(f"{w:.1f}" for w in self.walls)
            + " s wall each); the wall time left after the last submission is the phase's"
        )


class Beside:
    """Commands run one after another in the background while the driver goes on (the checks of
    the run's ledger and receipts, beside the benchmark, audit bundle and verify): their CPU is
    counted in `phase`, their wall time only as the wait left when `wait` is called."""

    def __init__(self, run: Run, phase: str, commands: list[list[str]]) -> None:
        self.run, self.phase, self.commands = run, phase, commands
        self.outputs: list[str] = []
        self.failed: list[str] = []
        self.cpu = 0.0
        self.peak_mb = 0.0
        self.thread = threading.Thread(target=self._run_all)
        self.thread.start()

    def _run_all(self) -> None:
        for argv in self.commands:
            with subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as proc:
                assert proc.stdout is not None
                text = proc.stdout.read()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu += usage.ru_utime + usage.ru_stime
            self.peak_mb = max(self.peak_mb, usage.ru_maxrss / 1024)
            self.outputs.append(text)
            if proc.returncode != 0:
                self.failed.append(
                    f"{' '.join(argv[:3])} exited {proc.returncode}:\n{text[-3000:]}"
                )

    def wait(self) -> list[str]:
        """Each command's output, once all have ended; SystemExit if one failed."""
        start = time.perf_counter()
        if self.run.sampler is not None:
            self.run.sampler.phase = self.phase
        self.thread.join()
        phases, cpu = self.run.phases, self.run.cpu
        phases[self.phase] = phases.get(self.phase, 0.0) + time.perf_counter() - start
        cpu[self.phase] = cpu.get(self.phase, 0.0) + self.cpu
        self.run.children_mb[self.phase] = self.peak_mb
        if self.failed:
            raise SystemExit("; ".join(self.failed))
        return self.outputs


def _serve(data_dir: Path) -> tuple[subprocess.Popen, int]:
    port_file = data_dir / "port"
    port_file.unlink(missing_ok=True)
    log = (data_dir / "serve.log").open("w")
    config = data_dir / "serve.toml"  # reports once a day: the run times the benchmark itself
    config.write_text(
        f'[server]\ndata_dir = "{data_dir.resolve()}"\nlisten = "127.0.0.1:0"\n'
        "[tls]\ninsecure = true\n[reports]\nevery_seconds = 86400\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [str(BIN / "rarenet-coordinator"), "serve", "--config", str(config)]
        + ["--port-file", str(port_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None:
            raise SystemExit(f"the coordinator did not start; see {data_dir / 'serve.log'}")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def _node_directories(sample: list[Lab], root: Path, port: int) -> None:
    """A real node data directory for each sampled lab (`rarenet-node init`), with its own key."""
    for lab in sample:
        cfg = node_config.init(root / lab.site_id, lab.site_id, f"127.0.0.1:{port}", insecure=True)
        lab.node_dir, lab.key = cfg.data_dir, cfg.signing_key()


def _enroll(tokens: dict[str, str]) -> tuple[PlainWork, NodeWork]:
    async def plain(lab: Lab, calls: Calls) -> None:
        request = cpb.EnrollPayload(
            site_id=lab.site_id,
            token=tokens[lab.site_id],
            public_key=keys.public_raw(lab.key),
            requested_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        signed = dsse.sign(wire.ENROLL, wire.encode(request), lab.key)
        await calls.enroll(wire.envelope_bytes(signed), timeout=120)

    def node(lab: Lab) -> None:  # what `rarenet-node enroll` does
        assert lab.node_dir is not None
        cfg = node_config.load(lab.node_dir)
        conn = node_store.connect(cfg.db_path)
        with CoordinatorClient(cfg) as client:
            node_enroll.enroll(cfg, conn, client, tokens[lab.site_id])
        conn.close()

    return plain, node


def _submit(quarter: int, signing: list[float]) -> tuple[PlainWork, NodeWork]:
    """Each lab signs its summary of the quarter with its own key just before it sends it, as a
    node does (its CPU, added to `signing`, is the driver's: the labs' machines, not the
    coordinator's)."""
    period = QUARTERS[quarter].label
    metadata = (leaf.LEAF_FORM_METADATA,)

    def sign(lab: Lab) -> Signed:
        start = time.process_time()
        payload = lab_payload(lab.template.payloads[quarter], lab.site_id, quarter + 1)
        blob = wire.envelope_bytes(dsse.sign(wire.SITE_SUMMARY, payload, lab.key))
        signed = Signed(blob, hashlib.sha256(blob).hexdigest())
        signing[0] += time.process_time() - start
        return signed

    async def plain(lab: Lab, calls: Calls) -> None:
        # the node's check of the receipt is left to the ledger check at the end
        mine = sign(lab)
        response = await calls.submit(mine.blob, timeout=120, metadata=metadata)
        receipt = wire.envelope_bytes(response.receipt)
        lab.given.append(Given(period, quarter + 1, mine.sha256, receipt))

    def node(lab: Lab) -> None:  # the outbox, then `rarenet-node submit`'s flush
        assert lab.node_dir is not None
        mine = sign(lab)
        cfg = node_config.load(lab.node_dir)
        conn = node_store.connect(cfg.db_path)
        outbox.add(conn, wire.parse_envelope(mine.blob), period, quarter + 1)
        with CoordinatorClient(cfg) as client:
            report = send.flush(conn, cfg, client)
        if report.failed or not report.delivered:
            raise RuntimeError(f"the node could not deliver: {report.failed}")
        (blob,) = conn.execute(
            "SELECT receipt FROM receipts WHERE sequence = ?", (quarter + 1,)
        ).fetchone()
        conn.close()
        lab.given.append(Given(period, quarter + 1, mine.sha256, bytes(blob)))

    return plain, node


def _noop_cpu_ms(pid: int, port: int, calls: int = 40) -> float:
    """The coordinator's CPU per no-op unary RPC (the gRPC health check), 50 clients at once:
    what any call costs before it does anything."""
    check = health_pb2.HealthCheckRequest(service="")

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            for _ in range(calls):
                stub.Check(check, timeout=60)

    before = procstat.cpu_seconds(pid)
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 1000 * (procstat.cpu_seconds(pid) - before) / (calls * CLIENTS)


def national(size: int, templates: list[Template], root: Path) -> Run:
    run = Run(size)
    shutil.rmtree(root, ignore_errors=True)  # the previous run's files
    start, cpu_before = time.perf_counter(), _own_cpu() + _children_cpu()
    run.sampler = MemorySampler(run)
    data = init_coordinator(root / "coordinator")
    coordinator_pem = root / "coordinator.pem"
    coordinator_pem.write_bytes(keys.public_pem(keys.public_raw(data.signing_key())))

    labs = run.timed(
        "lab keys",
        lambda: [
            Lab(f"lab-{i:05d}", keys.generate(), templates[i % len(templates)]) for i in range(size)
        ],
    )
    conn = store.connect(data.db)
    added = run.timed("sites add", lambda: enrolment.add_sites(conn, [lab.site_id for lab in labs]))
    tokens = {site_id: token for site_id, (token, _) in added.items()}
    conn.close()
    proc, port = run.timed(STARTS, lambda: _serve(data.path))
    run.coordinator_pid = proc.pid
    run.cpu[STARTS] += run.coordinator_cpu_now()  # serve's own start
    try:
        sample = labs[:: max(1, size // SAMPLE_NODES)][:SAMPLE_NODES]
        run.timed(STARTS, partial(_node_directories, sample, root / "nodes", port))
        clients = run.timed(STARTS, lambda: Clients(port))
        run.timed("enrol (gRPC)", partial(clients.run, labs, *_enroll(tokens)))
        signing = [0.0]  # CPU seconds the labs spent signing, within the submit phase
        closes = QuarterCloses(run, data.path)
        for q in range(len(QUARTERS)):
            before, own, signed = procstat.cpu_by_process(proc.pid), _own_cpu(), signing[0]
            run.timed(SUBMIT, partial(clients.run, labs, *_submit(q, signing)))
            clients_cpu = _own_cpu() - own - (signing[0] - signed)
            run.submit_cpu["clients"] = run.submit_cpu.get("clients", 0.0) + clients_cpu
            for pid, seconds in procstat.cpu_by_process(proc.pid).items():
                name = "serve" if pid == proc.pid else "decoding"
                used = seconds - before.get(pid, 0.0)
                run.submit_cpu[name] = run.submit_cpu.get(name, 0.0) + used
                run.coordinator_cpu += used
            run.submissions += len(labs)
            if q < len(QUARTERS) - 1:
                closes.closed(QUARTERS[q].label)
        clients.close()
        run.submit_cpu["labs signing"] = signing[0]
        closes.wait()
        # The ledger and the sampled nodes' receipts are checked beside the benchmark, audit
        # bundle and verify: the ledger is complete once the last submission is receipted.
        given = root / "given.json"
        run.timed(CHECKS, lambda: write_given(given, {lab.site_id: lab.given for lab in labs}))
        nodes = [str(lab.node_dir) for lab in sample]
        checks = Beside(
            run,
            CHECKS,
            [
                [sys.executable, "-m", "bench.national_check", str(data.db), str(coordinator_pem)]
                + [str(given), *nodes],
                [str(BIN / "rarenet-node"), "verify-receipts", "--data-dir", nodes[-1]],
            ],
        )
        out, bundle = root / "report", root / f"audit-{LAST}.zip"
        # The report and the audit bundle of the quarter at once: the bundle's ledger members
        # are written in a second process while the benchmark is computed.
        _cli(
            run,
            BENCHMARK,
            "rarenet-coordinator",
            "benchmark",
            "--data-dir",
            str(data.path),
            "--period",
            LAST,
            "--out",
            str(out),
            "--audit-bundle",
            str(bundle),
        )
        verified = _cli(
            run,
            "audit verify",
            "rarenet-audit",
            "verify",
            str(bundle),
            "--coordinator-key",
            str(coordinator_pem),
        )
        run.notes.append(f"rarenet-audit verify: {verified.strip().splitlines()[-1]}")
        ledger_text, cli_text = checks.wait()
        ledger_line, receipts_line, head_line = ledger_text.strip().splitlines()[-3:]
        run.notes.append(f"{receipts_line}; CLI: {cli_text.strip().splitlines()[0]}")
        run.notes.append(ledger_line)
        # Nothing was appended after the submissions: the head checked is still the latest.
        _, checked_size, checked_root = head_line.split()
        if run.timed(CHECKS, partial(latest_head, data.db)) != (
            int(checked_size),
            bytes.fromhex(checked_root),
        ):
            raise LedgerCheckFailed("the ledger grew after it was checked: check it again")
        # The run ends here: the coordinator would go on serving. Its CPU so far is the run's.
        run.elapsed = time.perf_counter() - start
        run.total_cpu = _own_cpu() + _children_cpu() + run.coordinator_cpu_now() - cpu_before
        run.sampler.stop()
        # Not part of the run: the cost of a no-op RPC, measured on the same server.
        run.noop_cpu_ms = _noop_cpu_ms(proc.pid, port)
        run.coordinator_mb = procstat.peak_rss_mb(proc.pid)
    finally:
        run.coordinator_pid = None
        proc.terminate()
        proc.wait(timeout=600)
    stored = sum(f.stat().st_size for f in data.path.glob("coordinator.db*"))
    run.notes.append(
        f"coordinator.db {stored / 1e6:,.0f} MB for {run.submissions:,} submissions"
        f" ({stored / run.submissions / 1e3:.0f} KB each, summary, envelope, receipt and indexes)"
    )
    other = run.elapsed - sum(run.phases.values()), run.total_cpu - sum(run.cpu.values())
    run.phases[OTHER], run.cpu[OTHER] = other
    return run


# The session's CPU budget at 3,000 labs (seconds; audit verify: wall), each phase's share of the
# 60 s whole on two cores; scaled by labs for a smaller run (the templates are made once).
AIMS: tuple[tuple[str, tuple[str, ...], float, bool], ...] = (
    ("lab keys + sites add + enrol", ("lab keys", "sites add", "enrol (gRPC)"), 5.0, False),
    ("coordinator start + other", (STARTS, OTHER), 1.5, False),
    ("sign + submit (every side)", (SUBMIT,), 30.0, False),
    ("quarter closes (2nd core)", ("quarter closes",), 15.0, False),
    ("benchmark + audit bundle", (BENCHMARK,), 15.0, False),
    ("audit verify (wall)", ("audit verify",), 12.0, True),
    ("ledger + receipt checks", (CHECKS,), 4.0, False),
)
TEMPLATES_AIM = 5.0
AIM_LABS = 3000


@dataclass(frozen=True)
class Templates:
    count: int
    wall: float
    cpu: float
    note: str


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _cells(wall: float, cpu: float, labs: int) -> str:
    return f"{wall:7.1f} {cpu:6.1f} {1000 * cpu / labs:6.2f}"


def _phase_cpu(phase: str, run: Run) -> float:
    return run.cpu.get(phase, 0.0)


def _growth(runs: list[Run], cpu: Callable[[Run], float]) -> str:
    if len(runs) < 2 or not cpu(runs[0]):
        return ""
    return f"{cpu(runs[-1]) / runs[-1].labs / (cpu(runs[0]) / runs[0].labs):5.2f}x"


def report(runs: list[Run], templates: Templates, floor: dict[str, float]) -> None:
    """Each phase: wall seconds, CPU seconds (driver, coordinator and the commands together), and
    CPU milliseconds per lab; growth is the CPU per lab of the largest run over the smallest's.
    On a shared machine the wall time swells with the other work; the CPU time much less."""
    sizes = [r.labs for r in runs]
    big = runs[-1]
    print(
        "\nCPU s: the driver (clients, signing, checks), the coordinator and the commands"
        " together; ms/lab: CPU per lab;\ngrowth: CPU per lab at the largest size over the"
        " smallest (1.00x: the cost per lab stays flat)"
    )
    print(f"{'':<22}" + "".join(f"{f'{n:,} labs':>22}" for n in sizes) + "   growth")
    print(f"{'phase':<22}" + f"{'wall s  CPU s  ms/lab':>22}" * len(runs) + "   per lab")
    for phase in dict.fromkeys(p for r in runs for p in r.phases):
        cells = [_cells(r.phases.get(phase, 0), r.cpu.get(phase, 0), r.labs) for r in runs]
        growth = _growth(runs, partial(_phase_cpu, phase))
        print(f"{phase:<22}" + "".join(f"{c:>22}" for c in cells) + f"   {growth}")
    walls = [sum(r.phases.values()) for r in runs]
    cpus = [sum(r.cpu.values()) for r in runs]
    totals = [_cells(w, c, r.labs) for w, c, r in zip(walls, cpus, runs)]
    growth = _growth(runs, lambda r: sum(r.cpu.values()))
    print(f"{'whole (no templates)':<22}" + "".join(f"{c:>22}" for c in totals) + f"   {growth}")
    print(f"templates (once)      {templates.wall:7.1f} {templates.cpu:6.1f}   ({templates.note})")

    scale = big.labs / AIM_LABS
    where = "at 3,000 labs" if big.labs == AIM_LABS else f"scaled to {big.labs:,} labs"
    print(f"\n== CPU budget {where} (the session's aims for a 60 s run on 2 cores)")
    rows = [("templates", templates.cpu, TEMPLATES_AIM)]
    for name, phases, aim, wall in AIMS:
        used = sum((big.phases if wall else big.cpu).get(p, 0.0) for p in phases)
        rows.append((name, used, aim * scale))
    for name, used, aim in rows:
        print(f"  {name:<32} {used:6.1f} s   aim <= {aim:5.1f} s   {_verdict(used <= aim)}")

    whole_wall, whole_cpu = walls[-1] + templates.wall, cpus[-1] + templates.cpu
    print(
        f"\n== {big.labs:,} labs x {len(QUARTERS)} quarters ({big.submissions:,} signed summaries)"
    )
    for note in big.notes:
        print(f"  {note}")
    print(
        f"whole national run      {whole_wall:.1f} s wall with the templates ({walls[-1]:.1f} s"
        f" without); {whole_wall / TARGET_SECONDS:.2f} of the 60 s target:"
        f" {_verdict(whole_wall <= TARGET_SECONDS)}"
    )
    print(
        f"                        {whole_cpu:.1f} s CPU with the templates ({cpus[-1]:.1f} s"
        f" without): on 2 idle cores at least {whole_cpu / 2:.1f} s"
        f" ({whole_cpu / 2 / TARGET_SECONDS:.2f} of the target)"
    )
    coordinator_mb = sum(big.coordinator_mb.values())
    driver_mb = procstat.peak_rss_mb(os.getpid()).get(os.getpid(), 0.0)
    largest = max(big.children_mb, key=lambda name: big.children_mb[name])
    print(
        f"peak memory             {big.peak_mb:.0f} MB, everything the run's processes held at"
        f" once (proportional set size, sampled every {MemorySampler.SAMPLE_SECONDS} s or so), during"
        f" {big.peak_phase!r}; {big.peak_mb / TARGET_MB:.2f} of the 2 GB target:"
        f" {_verdict(big.peak_mb <= TARGET_MB)}"
    )
    print(
        f"                        each process's own peak: coordinator {coordinator_mb:.0f} MB,"
        f" driver {driver_mb:.0f} MB, largest command {big.children_mb[largest]:.0f} MB"
        f" ({largest}; its children not counted)"
    )
    seconds, cpu = big.phases["audit verify"], big.cpu["audit verify"]
    print(
        f"rarenet-audit verify    {seconds:.1f} s wall ({cpu:.1f} s CPU) for the {big.labs:,}-lab"
        f" bundle; {seconds / TARGET_VERIFY_SECONDS:.2f} of the 15 s target:"
        f" {_verdict(seconds <= TARGET_VERIFY_SECONDS)}"
    )
    per = 1000 * big.coordinator_cpu / big.submissions
    floor_cpu = sum(v for k, v in floor.items() if k != "fsync wait")
    print(
        f"Submit                  coordinator CPU {per:.2f} ms per submission"
        f" ({' + '.join(k for k in big.submit_cpu if k not in ('clients', 'labs signing'))});"
        f" floor {floor_cpu:.2f} ms CPU = "
        + " + ".join(f"{k} {v:.2f}" for k, v in floor.items() if k != "fsync wait")
    )
    parts = ", ".join(f"{k} {1000 * v / big.submissions:.2f}" for k, v in big.submit_cpu.items())
    print(
        f"                        (ms per submission: {parts}; a no-op RPC alone costs the"
        f" coordinator {big.noop_cpu_ms:.2f} ms, measured on the same server after the run)"
    )
    print(
        f"                        {per / floor_cpu:.2f}x the floor (aim <= 2x):"
        f" {_verdict(per <= 2 * floor_cpu)}; the durable write's fsync waits a further"
        f" {floor['fsync wait']:.2f} ms (once per batch: group commit);"
        f" {big.submissions / big.phases[SUBMIT]:,.0f} submissions/s wall"
    )


def run(quick: bool = False, sizes: tuple[int, ...] | None = None, count: int = TEMPLATES) -> None:
    sizes = sizes or ((150, 300) if quick else (300, 1000, 3000))
    root = WORK / "national"
    root.mkdir(parents=True, exist_ok=True)
    start, own, children = time.perf_counter(), _own_cpu(), _children_cpu()
    made = make_templates(root / "templates", count)
    wall = time.perf_counter() - start
    cpu = _own_cpu() - own + _children_cpu() - children  # and the template processes'
    sizes_kb = sorted(len(p) for t in made for p in t.payloads)
    templates = Templates(
        len(made),
        wall,
        cpu,
        f"{len(made)} template labs x {len(QUARTERS)} quarters through the node's summary code,"
        f" made afresh; payloads {sizes_kb[0] / 1000:.0f}-{sizes_kb[-1] / 1000:.0f} KB, median"
        f" {statistics.median(sizes_kb) / 1000:.0f} KB; each template serves"
        f" {max(sizes) / len(made):.0f} of the {max(sizes):,} labs",
    )
    print(f"templates               {templates.note}: {wall:.1f} s wall, {cpu:.1f} s CPU")
    gc.freeze()  # the templates stay to the end: no collection need look at them again
    runs = []
    for size in sizes:
        print(f"-- {size:,} labs ...", flush=True)
        runs.append(national(size, made, root / f"labs-{size}"))
        print(
            f"   {sum(runs[-1].phases.values()):.1f} s wall, {sum(runs[-1].cpu.values()):.1f} s CPU",
            flush=True,
        )
    floor = submit_floor(root / "floor", made[0])
    report(runs, templates, floor)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labs", type=int, nargs="+", help="sizes (default 300 1000 3000)")
    parser.add_argument(
        "--templates", type=int, default=TEMPLATES, help=f"template labs (default {TEMPLATES})"
    )
    parser.add_argument("--quick", action="store_true", help="150 and 300 labs")
    args = parser.parse_args()
    run(args.quick, tuple(args.labs) if args.labs else None, args.templates)


if __name__ == "__main__":
    main()
