from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TreeHead(_message.Message):
    __slots__ = ("tree_size", "root_hash", "timestamp_ms")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    def __init__(self, tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("site_id", "period", "sequence", "envelope_sha256", "leaf_index", "received_at", "tree_head", "payload_type", "leaf_header")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_SHA256_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    LEAF_HEADER_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    period: str
    sequence: int
    envelope_sha256: str
    leaf_index: int
    received_at: str
    tree_head: TreeHead
    payload_type: str
    leaf_header: LeafHeader
    def __init__(self, site_id: _Optional[str] = ..., period: _Optional[str] = ..., sequence: _Optional[int] = ..., envelope_sha256: _Optional[str] = ..., leaf_index: _Optional[int] = ..., received_at: _Optional[str] = ..., tree_head: _Optional[_Union[TreeHead, _Mapping]] = ..., payload_type: _Optional[str] = ..., leaf_header: _Optional[_Union[LeafHeader, _Mapping]] = ...) -> None: ...

class LeafHeader(_message.Message):
    __slots__ = ("site_id", "period", "sequence", "payload_type", "payload_sha256", "envelope_sha256")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_SHA256_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    period: str
    sequence: int
    payload_type: str
    payload_sha256: str
    envelope_sha256: str
    def __init__(self, site_id: _Optional[str] = ..., period: _Optional[str] = ..., sequence: _Optional[int] = ..., payload_type: _Optional[str] = ..., payload_sha256: _Optional[str] = ..., envelope_sha256: _Optional[str] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("leaf_index", "tree_size", "hashes")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("first_size", "second_size", "hashes")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...
