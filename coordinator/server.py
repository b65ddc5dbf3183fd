"""The coordinator's gRPC server: servicer, error mapping, health, reflection, TLS/mTLS."""

from __future__ import annotations

import json
import logging
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coordinator import enrolment, eqa, peer_identity, store, store_check, witnesses
from coordinator.benchmark_cache import BenchmarkCache
from coordinator.config import AlreadyServing, DataDir, SetupError
from coordinator.errors import (
    AlreadyRecorded,
    CoordinatorError,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    NothingToReport,
    NotPermitted,
    RateLimited,
    TemporarilyUnavailable,
    WrongState,
)
from coordinator.intake import Intake, authenticate
from coordinator.ledger import Ledger
from coordinator.rate_limit import SiteRateLimit
from coordinator.standards import Standard
from coordinator.standards import load as load_standard
from coordinator.summary_checks import Vocabulary
from coordinator.tls_files import TlsFiles, load_server_credentials
from protos import dsse, keys, leaf, wire
from protos.errors import ContractError
from protos.exits import most_specific
from protos.lockfile import AlreadyLocked, DirectoryLock
from protos.net import is_loopback
from protos.periods import parse as parse_period
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import coordinator_pb2_grpc as cgrpc
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1.envelope_pb2 import Envelope

log = logging.getLogger("rarenet.coordinator")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS = [
    # gRPC sets SO_REUSEPORT by default: a second coordinator on the same port would share it and
    # append to the same ledger with a tree of its own. Refuse to bind instead.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 600_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 60_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


# The one place the coordinator's errors become gRPC status codes. A CoordinatorError of no class
# here (a bad standard file, say) is INTERNAL with its message; anything else is INTERNAL with a
# generic message, the detail in the log only.
STATUS_CODES: dict[type[BaseException], grpc.StatusCode] = {
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    NotPermitted: grpc.StatusCode.PERMISSION_DENIED,
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    WrongState: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyRecorded: grpc.StatusCode.ALREADY_EXISTS,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    NothingToReport: grpc.StatusCode.NOT_FOUND,
    TemporarilyUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: CoordinatorError) -> grpc.StatusCode:
    """The status code of the error's most specific class in STATUS_CODES (INTERNAL if none)."""
    return most_specific(error, STATUS_CODES) or grpc.StatusCode.INTERNAL


def _guard(method):
    """Answer a CoordinatorError with its status code; anything unexpected becomes INTERNAL."""

    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except CoordinatorError as exc:
            context.abort(status_code(exc), str(exc))
        except Exception:  # noqa: BLE001 - the last line of defence
            log.exception("unexpected error in %s", method.__name__)
            context.abort(
                grpc.StatusCode.INTERNAL, "internal error at the coordinator; it has been logged"
            )

    wrapper.__name__ = method.__name__
    return wrapper


class CoordinatorService(cgrpc.CoordinatorServicer):
    def __init__(
        self,
        data: DataDir,
        standard: Standard,
        clock=None,
        rate_limit: SiteRateLimit | None = None,
        mtls: bool = False,
    ) -> None:
        self.data = data
        self.conn = store.connect(data.db)
        self.key = data.signing_key()
        self.public_key = keys.public_raw(self.key)
        self.ledger = Ledger(self.conn, self.key)
        self.intake = Intake(
            self.conn, self.ledger, data.db, clock, Vocabulary.of(standard), rate_limit
        )
        self.standard = standard
        self.signed_standard = dsse.sign(wire.STANDARD, standard.text.encode("utf-8"), self.key)
        witnesses.ensure_schema(self.conn)
        self._last_checkpoint: tuple[bytes, bytes] | None = None  # (head payload, checkpoint)
        self._checkpoint_lock = threading.Lock()  # one signature per head, not one per caller
        self.mtls = mtls  # client certificates are required: each must name the site it acts for
        self.benchmarks = BenchmarkCache()

    def _identities(self, context) -> frozenset[str] | None:
        return peer_identity.identities(context) if self.mtls else None

    def close(self) -> None:
        self.intake.close()
        self.conn.close()

    @_guard
    def Enroll(self, request: Envelope, context) -> cpb.EnrollResponse:
        with self.intake.lock:
            enrolled = enrolment.enroll(self.conn, request, self._identities(context))
            head = self.ledger.latest_head(self.conn)
        self.intake.enrolled(enrolled.keyid, enrolled.site_id)
        log.info("enrolled site %s with key %s", enrolled.site_id, enrolled.keyid[:16])
        return cpb.EnrollResponse(
            site_id=enrolled.site_id,
            keyid=enrolled.keyid,
            coordinator_public_key=self.public_key,
            signed_tree_head=head,
        )

    @_guard
    def Submit(self, request: Envelope, context) -> cpb.SubmitResponse:
        headers = leaf.LEAF_FORM_METADATA in tuple(context.invocation_metadata() or ())
        response = self.intake.submit(request, self._identities(context), leaf_header=headers)
        response.checkpoint = self._checkpoint(response.signed_tree_head.payload)
        return response

    def _checkpoint(self, head_payload: bytes) -> bytes:
        """The signed checkpoint of a signed tree head's payload; a batch's callers share one (one
        signature, and the head is read once: the first caller signs it while the others of its
        batch wait for it, rather than each signing it again)."""
        cached = self._last_checkpoint
        if cached is not None and cached[0] == head_payload:
            return cached[1]
        with self._checkpoint_lock:
            cached = self._last_checkpoint
            if cached is None or cached[0] != head_payload:
                head = wire.decode(head_payload, lpb.TreeHead)
                signed = witnesses.signed_checkpoint(self.key, head.tree_size, head.root_hash)
                cached = (head_payload, signed.encode())
                self._last_checkpoint = cached
            return cached[1]

    @_guard
    def GetStandards(self, request: cpb.GetStandardsRequest, context) -> cpb.GetStandardsResponse:
        if request.version and request.version != self.standard.version:
            raise NotFound(
                f"this coordinator serves standard {self.standard.version}, not {request.version}"
            )
        return cpb.GetStandardsResponse(
            version=self.standard.version, standard=self.signed_standard
        )

    def _signed_request(self, request: Envelope, payload_type: str, message_type, context):
        """A site's signed request: (site id, decoded payload). The payload must name the signer's own
        site. Reads through the intake's per-thread connection, never holding the ledger lock."""
        site_id, _ = authenticate(self.intake.reader(), request, payload_type)
        peer_identity.check_identity(site_id, self._identities(context))
        try:
            ask = wire.decode(request.payload, message_type)
        except ContractError as exc:
            raise InvalidRequest(str(exc)) from exc
        if ask.site_id != site_id:
            raise InvalidRequest(f"site {site_id} may ask only about itself, not {ask.site_id!r}")
        return site_id, ask

    @_guard
    def GetBenchmark(self, request: Envelope, context) -> cpb.GetBenchmarkResponse:
        site_id, ask = self._signed_request(
            request, wire.BENCHMARK_REQUEST, cpb.BenchmarkRequestPayload, context
        )
        try:
            period = parse_period(ask.period)
        except ContractError as exc:
            raise InvalidRequest(str(exc)) from exc
        full = self.benchmarks.get(
            self.intake.reader(), len(self.ledger), period.label, self.standard
        )
        if site_id not in full["sites"]:
            raise NotFound(f"no summary from {site_id} for {period}; submit one first")
        from coordinator import followup, lab_view

        reader = self.intake.reader()
        extra = followup.gather(
            reader,
            full,
            self.standard,
            compute=lambda label: self.benchmarks.get(
                reader, len(self.ledger), label, self.standard
            ),
        )
        payload = json.dumps(
            lab_view.for_lab(full, site_id, extra), sort_keys=True, indent=2, ensure_ascii=False
        ).encode("utf-8")
        return cpb.GetBenchmarkResponse(benchmark=dsse.sign(wire.SITE_BENCHMARK, payload, self.key))

    @_guard
    def GetEqaRounds(self, request: cpb.GetEqaRoundsRequest, context) -> cpb.GetEqaRoundsResponse:
        return cpb.GetEqaRoundsResponse(
            rounds=[wire.parse_envelope(r) for r in eqa.announcements(self.intake.reader())]
        )

    @_guard
    def GetEqaScore(self, request: Envelope, context) -> cpb.GetEqaScoreResponse:
        site_id, ask = self._signed_request(
            request, wire.EQA_SCORE_REQUEST, cpb.EqaScoreRequestPayload, context
        )
        sheet = eqa.score_sheet(self.intake.reader(), ask.round_id, site_id)
        return cpb.GetEqaScoreResponse(score_sheet=wire.parse_envelope(sheet))

    @_guard
    def GetCheckpoint(
        self, request: cpb.GetCheckpointRequest, context
    ) -> cpb.GetCheckpointResponse:
        if not request.tree_size:
            with self.intake.lock:
                self.ledger.latest_head(self.conn)  # the empty tree's head, on a new ledger
        return witnesses.checkpoint_response(
            self.intake.reader(), self.key, request.tree_size or None
        )

    @_guard
    def AddCosignature(
        self, request: cpb.AddCosignatureRequest, context
    ) -> cpb.AddCosignatureResponse:
        with self.intake.lock:
            site_id, count = witnesses.add(
                self.conn, self.key, request.checkpoint, enrolment.now(), self._identities(context)
            )
        log.info("cosignature from %s; %d witness(es) on that checkpoint", site_id, count)
        return cpb.AddCosignatureResponse(cosigners=count)

    @_guard
    def GetTreeHead(self, request, context) -> cpb.GetTreeHeadResponse:
        with self.intake.lock:
            return cpb.GetTreeHeadResponse(signed_tree_head=self.ledger.latest_head(self.conn))

    @_guard
    def GetInclusionProof(
        self, request: cpb.GetInclusionProofRequest, context
    ) -> lpb.InclusionProof:
        with self.intake.lock:
            try:
                return self.ledger.inclusion(request.leaf_index, request.tree_size)
            except ContractError as exc:
                raise InvalidRequest(str(exc)) from exc

    @_guard
    def GetConsistencyProof(
        self, request: cpb.GetConsistencyProofRequest, context
    ) -> lpb.ConsistencyProof:
        with self.intake.lock:
            try:
                return self.ledger.consistency(request.first_size, request.second_size)
            except ContractError as exc:
                raise InvalidRequest(str(exc)) from exc


@dataclass
class Running:
    server: grpc.Server
    port: int
    service: CoordinatorService
    lock: DirectoryLock

    def stop(self, grace: float = 5.0) -> None:
        self.server.stop(grace).wait()
        self.service.close()
        self.lock.release()


def start(
    data: DataDir,
    listen: str,
    tls: TlsFiles | None = None,
    insecure: bool = False,
    standard_path: Path | None = None,
    workers: int = 16,
    clock=None,
    rate_limit: SiteRateLimit | None = None,
    check_store: bool = True,
) -> Running:
    """Start serving; listen "127.0.0.1:0" picks a free port (returned). The store is checked
    first (coordinator/store_check.py): a store that fails is not served. (check_store=False
    only lets tests play a coordinator that serves a tampered store, as a dishonest one would.)"""
    data.check()
    if tls is None and not insecure:
        raise SetupError(
            "give --tls-cert and --tls-key (TLS is the default), or --insecure on a loopback address"
        )
    if tls is None and not is_loopback(listen):
        raise SetupError(f"--insecure is allowed only on a loopback address, not {listen}")
    standard = load_standard(standard_path or data.standard)
    credentials = load_server_credentials(tls) if tls else None
    try:
        lock = DirectoryLock(data.path / "serve.lock").acquire()
    except AlreadyLocked:
        raise AlreadyServing(
            f"another coordinator is already serving {data.path}; one ledger has one writer"
        ) from None
    try:
        if check_store:
            store_check.check_store(data).raise_if_failed()
        service = CoordinatorService(
            data, standard, clock, rate_limit, mtls=bool(tls and tls.client_ca)
        )
    except BaseException:
        lock.release()
        raise
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=SERVER_OPTIONS,
        maximum_concurrent_rpcs=workers * 16,
    )
    cgrpc.add_CoordinatorServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        cpb.DESCRIPTOR.services_by_name["Coordinator"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    try:
        port = (
            server.add_secure_port(listen, credentials)
            if credentials
            else server.add_insecure_port(listen)
        )
    except RuntimeError:
        port = 0
    if port == 0:
        service.close()
        lock.release()
        raise SetupError(
            f"cannot listen on {listen}: is the port in use, or another coordinator running?"
        )
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(names[0], health_pb2.HealthCheckResponse.SERVING)
    log.info("coordinator serving on port %d (standard %s)", port, standard.label)
    return Running(server, port, service, lock)
