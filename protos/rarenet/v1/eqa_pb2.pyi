from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EqaSample(_message.Message):
    __slots__ = ("sample_id", "biomarkers")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    BIOMARKERS_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    biomarkers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sample_id: _Optional[str] = ..., biomarkers: _Optional[_Iterable[str]] = ...) -> None: ...

class EqaRound(_message.Message):
    __slots__ = ("round_id", "samples", "deadline", "commitment_sha256", "opened_at", "pass_share", "points_correct", "revealed_salt", "closed_at")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    PASS_SHARE_FIELD_NUMBER: _ClassVar[int]
    POINTS_CORRECT_FIELD_NUMBER: _ClassVar[int]
    REVEALED_SALT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    samples: _containers.RepeatedCompositeFieldContainer[EqaSample]
    deadline: str
    commitment_sha256: str
    opened_at: str
    pass_share: float
    points_correct: int
    revealed_salt: str
    closed_at: str
    def __init__(self, round_id: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[EqaSample, _Mapping]]] = ..., deadline: _Optional[str] = ..., commitment_sha256: _Optional[str] = ..., opened_at: _Optional[str] = ..., pass_share: _Optional[float] = ..., points_correct: _Optional[int] = ..., revealed_salt: _Optional[str] = ..., closed_at: _Optional[str] = ...) -> None: ...

class EqaCall(_message.Message):
    __slots__ = ("sample_id", "biomarker", "method", "result", "variant")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    BIOMARKER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    biomarker: str
    method: str
    result: str
    variant: str
    def __init__(self, sample_id: _Optional[str] = ..., biomarker: _Optional[str] = ..., method: _Optional[str] = ..., result: _Optional[str] = ..., variant: _Optional[str] = ...) -> None: ...

class EqaResponse(_message.Message):
    __slots__ = ("site_id", "round_id", "sequence", "schema_version", "software_version", "calls")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    round_id: str
    sequence: int
    schema_version: int
    software_version: str
    calls: _containers.RepeatedCompositeFieldContainer[EqaCall]
    def __init__(self, site_id: _Optional[str] = ..., round_id: _Optional[str] = ..., sequence: _Optional[int] = ..., schema_version: _Optional[int] = ..., software_version: _Optional[str] = ..., calls: _Optional[_Iterable[_Union[EqaCall, _Mapping]]] = ...) -> None: ...

class EqaScoreLine(_message.Message):
    __slots__ = ("sample_id", "biomarker", "expected_result", "expected_variant", "reported_result", "reported_variant", "outcome", "points")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    BIOMARKER_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RESULT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VARIANT_FIELD_NUMBER: _ClassVar[int]
    REPORTED_RESULT_FIELD_NUMBER: _ClassVar[int]
    REPORTED_VARIANT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    biomarker: str
    expected_result: str
    expected_variant: str
    reported_result: str
    reported_variant: str
    outcome: str
    points: int
    def __init__(self, sample_id: _Optional[str] = ..., biomarker: _Optional[str] = ..., expected_result: _Optional[str] = ..., expected_variant: _Optional[str] = ..., reported_result: _Optional[str] = ..., reported_variant: _Optional[str] = ..., outcome: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class EqaScoreSheet(_message.Message):
    __slots__ = ("round_id", "site_id", "lines", "points", "max_points", "score", "passed", "errors", "technical_failures", "pass_share", "response_leaf_index")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TECHNICAL_FAILURES_FIELD_NUMBER: _ClassVar[int]
    PASS_SHARE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    round_id: str
    site_id: str
    lines: _containers.RepeatedCompositeFieldContainer[EqaScoreLine]
    points: int
    max_points: int
    score: float
    passed: bool
    errors: int
    technical_failures: int
    pass_share: float
    response_leaf_index: int
    def __init__(self, round_id: _Optional[str] = ..., site_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[EqaScoreLine, _Mapping]]] = ..., points: _Optional[int] = ..., max_points: _Optional[int] = ..., score: _Optional[float] = ..., passed: _Optional[bool] = ..., errors: _Optional[int] = ..., technical_failures: _Optional[int] = ..., pass_share: _Optional[float] = ..., response_leaf_index: _Optional[int] = ...) -> None: ...
