from protos.rarenet.v1 import envelope_pb2 as _envelope_pb2
from protos.rarenet.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollPayload(_message.Message):
    __slots__ = ("site_id", "token", "public_key", "requested_at", "previous_keyid")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_KEYID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    token: str
    public_key: bytes
    requested_at: str
    previous_keyid: str
    def __init__(self, site_id: _Optional[str] = ..., token: _Optional[str] = ..., public_key: _Optional[bytes] = ..., requested_at: _Optional[str] = ..., previous_keyid: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("site_id", "keyid", "coordinator_public_key", "signed_tree_head")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    KEYID_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNED_TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    keyid: str
    coordinator_public_key: bytes
    signed_tree_head: _envelope_pb2.Envelope
    def __init__(self, site_id: _Optional[str] = ..., keyid: _Optional[str] = ..., coordinator_public_key: _Optional[bytes] = ..., signed_tree_head: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("receipt", "signed_tree_head", "inclusion_proof", "checkpoint")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    receipt: _envelope_pb2.Envelope
    signed_tree_head: _envelope_pb2.Envelope
    inclusion_proof: _ledger_pb2.InclusionProof
    checkpoint: bytes
    def __init__(self, receipt: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., signed_tree_head: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., inclusion_proof: _Optional[_Union[_ledger_pb2.InclusionProof, _Mapping]] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...

class GetStandardsRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class GetStandardsResponse(_message.Message):
    __slots__ = ("version", "standard")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STANDARD_FIELD_NUMBER: _ClassVar[int]
    version: str
    standard: _envelope_pb2.Envelope
    def __init__(self, version: _Optional[str] = ..., standard: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class BenchmarkRequestPayload(_message.Message):
    __slots__ = ("site_id", "period", "requested_at")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    period: str
    requested_at: str
    def __init__(self, site_id: _Optional[str] = ..., period: _Optional[str] = ..., requested_at: _Optional[str] = ...) -> None: ...

class GetBenchmarkResponse(_message.Message):
    __slots__ = ("benchmark",)
    BENCHMARK_FIELD_NUMBER: _ClassVar[int]
    benchmark: _envelope_pb2.Envelope
    def __init__(self, benchmark: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class GetTreeHeadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTreeHeadResponse(_message.Message):
    __slots__ = ("signed_tree_head",)
    SIGNED_TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    signed_tree_head: _envelope_pb2.Envelope
    def __init__(self, signed_tree_head: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("leaf_index", "tree_size")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("first_size", "second_size")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ...) -> None: ...

class GetEqaRoundsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEqaRoundsResponse(_message.Message):
    __slots__ = ("rounds",)
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    rounds: _containers.RepeatedCompositeFieldContainer[_envelope_pb2.Envelope]
    def __init__(self, rounds: _Optional[_Iterable[_Union[_envelope_pb2.Envelope, _Mapping]]] = ...) -> None: ...

class EqaScoreRequestPayload(_message.Message):
    __slots__ = ("site_id", "round_id", "requested_at")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    round_id: str
    requested_at: str
    def __init__(self, site_id: _Optional[str] = ..., round_id: _Optional[str] = ..., requested_at: _Optional[str] = ...) -> None: ...

class GetEqaScoreResponse(_message.Message):
    __slots__ = ("score_sheet",)
    SCORE_SHEET_FIELD_NUMBER: _ClassVar[int]
    score_sheet: _envelope_pb2.Envelope
    def __init__(self, score_sheet: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("tree_size",)
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    def __init__(self, tree_size: _Optional[int] = ...) -> None: ...

class WitnessKey(_message.Message):
    __slots__ = ("site_id", "public_key")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    public_key: bytes
    def __init__(self, site_id: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint", "witnesses")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    WITNESSES_FIELD_NUMBER: _ClassVar[int]
    checkpoint: bytes
    witnesses: _containers.RepeatedCompositeFieldContainer[WitnessKey]
    def __init__(self, checkpoint: _Optional[bytes] = ..., witnesses: _Optional[_Iterable[_Union[WitnessKey, _Mapping]]] = ...) -> None: ...

class AddCosignatureRequest(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: bytes
    def __init__(self, checkpoint: _Optional[bytes] = ...) -> None: ...

class AddCosignatureResponse(_message.Message):
    __slots__ = ("cosigners",)
    COSIGNERS_FIELD_NUMBER: _ClassVar[int]
    cosigners: int
    def __init__(self, cosigners: _Optional[int] = ...) -> None: ...
