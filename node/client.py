"""The node's gRPC client for the coordinator: TLS by default, deadlines on every call."""

from __future__ import annotations

import grpc

from node import tls_files
from node.config import NodeConfig
from node.errors import ConfigError, SubmitError, Unreachable
from protos import leaf
from protos.net import is_loopback
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import coordinator_pb2_grpc as cgrpc
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1.envelope_pb2 import Envelope

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Labs sit behind NAT and hospital firewalls that drop idle connections: ping every 5 minutes.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 2),
]
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.ABORTED,
}


class RpcFailure(SubmitError):
    """A call the coordinator answered with an error status (`code`)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE


class RpcUnreachable(Unreachable, RpcFailure):
    """A call that failed in a way worth retrying: the coordinator is down, busy or unreachable."""


def rpc_failure(code: grpc.StatusCode, message: str) -> RpcFailure:
    return (RpcUnreachable if code in RETRYABLE else RpcFailure)(code, message)


def open_channel(config: NodeConfig) -> grpc.Channel:
    if config.insecure:
        if not is_loopback(config.coordinator):
            raise ConfigError(
                f"insecure = true is allowed only for a loopback coordinator, not {config.coordinator}; "
                "set ca_file (and cert_file/key_file for mTLS) in node.toml"
            )
        return grpc.insecure_channel(config.coordinator, options=CHANNEL_OPTIONS)
    if not config.ca_file:
        raise ConfigError(
            "node.toml has no [coordinator] ca_file; TLS needs the network CA certificate"
        )
    files = tls_files.check(config)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
    )
    return grpc.secure_channel(config.coordinator, credentials, options=CHANNEL_OPTIONS)


class CoordinatorClient:
    def __init__(self, config: NodeConfig, channel: grpc.Channel | None = None) -> None:
        self.address = config.coordinator
        self.timeout = config.timeout_seconds
        self.tls = not config.insecure
        self.channel = channel or open_channel(config)
        self.stub = cgrpc.CoordinatorStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, metadata=()):
        try:
            return method(request, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            tls_problem = tls_files.explain(details, self.tls, self.address)
            if tls_problem:  # a mistake to fix, not a coordinator that is down
                raise RpcFailure(code, tls_problem) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                message = (
                    f"the coordinator at {self.address} cannot be reached ({details}); "
                    "nothing is lost: try again later"
                )
            else:
                message = f"the coordinator refused: {code.name}: {details}"
            raise rpc_failure(code, message) from None

    def enroll(self, request: Envelope) -> cpb.EnrollResponse:
        return self._call(self.stub.Enroll, request)

    def submit(self, envelope: Envelope) -> cpb.SubmitResponse:
        return self._call(self.stub.Submit, envelope, (leaf.LEAF_FORM_METADATA,))

    def standards(self, version: str = "") -> cpb.GetStandardsResponse:
        return self._call(self.stub.GetStandards, cpb.GetStandardsRequest(version=version))

    def benchmark(self, request: Envelope) -> cpb.GetBenchmarkResponse:
        return self._call(self.stub.GetBenchmark, request)

    def eqa_rounds(self) -> list[Envelope]:
        return list(self._call(self.stub.GetEqaRounds, cpb.GetEqaRoundsRequest()).rounds)

    def eqa_score(self, request: Envelope) -> Envelope:
        return self._call(self.stub.GetEqaScore, request).score_sheet

    def checkpoint(self, tree_size: int = 0) -> cpb.GetCheckpointResponse:
        return self._call(self.stub.GetCheckpoint, cpb.GetCheckpointRequest(tree_size=tree_size))

    def add_cosignature(self, cosigned: bytes) -> cpb.AddCosignatureResponse:
        return self._call(self.stub.AddCosignature, cpb.AddCosignatureRequest(checkpoint=cosigned))

    def tree_head(self) -> Envelope:
        return self._call(self.stub.GetTreeHead, cpb.GetTreeHeadRequest()).signed_tree_head

    def inclusion_proof(self, leaf_index: int, tree_size: int) -> lpb.InclusionProof:
        return self._call(
            self.stub.GetInclusionProof,
            cpb.GetInclusionProofRequest(leaf_index=leaf_index, tree_size=tree_size),
        )

    def consistency_proof(self, first: int, second: int) -> lpb.ConsistencyProof:
        return self._call(
            self.stub.GetConsistencyProof,
            cpb.GetConsistencyProofRequest(first_size=first, second_size=second),
        )
