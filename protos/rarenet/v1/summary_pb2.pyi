from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DisclosurePolicy(_message.Message):
    __slots__ = ("min_denominator", "small_stratum_action", "small_count_suppression", "small_count_threshold", "differential_privacy", "perturbation")
    MIN_DENOMINATOR_FIELD_NUMBER: _ClassVar[int]
    SMALL_STRATUM_ACTION_FIELD_NUMBER: _ClassVar[int]
    SMALL_COUNT_SUPPRESSION_FIELD_NUMBER: _ClassVar[int]
    SMALL_COUNT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIAL_PRIVACY_FIELD_NUMBER: _ClassVar[int]
    PERTURBATION_FIELD_NUMBER: _ClassVar[int]
    min_denominator: int
    small_stratum_action: str
    small_count_suppression: bool
    small_count_threshold: int
    differential_privacy: DifferentialPrivacy
    perturbation: Perturbation
    def __init__(self, min_denominator: _Optional[int] = ..., small_stratum_action: _Optional[str] = ..., small_count_suppression: _Optional[bool] = ..., small_count_threshold: _Optional[int] = ..., differential_privacy: _Optional[_Union[DifferentialPrivacy, _Mapping]] = ..., perturbation: _Optional[_Union[Perturbation, _Mapping]] = ...) -> None: ...

class Perturbation(_message.Message):
    __slots__ = ("mechanism", "table", "max_noise", "noise_variance", "zero_exact", "key_scheme")
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    MAX_NOISE_FIELD_NUMBER: _ClassVar[int]
    NOISE_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    ZERO_EXACT_FIELD_NUMBER: _ClassVar[int]
    KEY_SCHEME_FIELD_NUMBER: _ClassVar[int]
    mechanism: str
    table: str
    max_noise: int
    noise_variance: float
    zero_exact: bool
    key_scheme: int
    def __init__(self, mechanism: _Optional[str] = ..., table: _Optional[str] = ..., max_noise: _Optional[int] = ..., noise_variance: _Optional[float] = ..., zero_exact: _Optional[bool] = ..., key_scheme: _Optional[int] = ...) -> None: ...

class DifferentialPrivacy(_message.Message):
    __slots__ = ("enabled", "mechanism", "epsilon", "noise_scale")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    NOISE_SCALE_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    mechanism: str
    epsilon: float
    noise_scale: float
    def __init__(self, enabled: _Optional[bool] = ..., mechanism: _Optional[str] = ..., epsilon: _Optional[float] = ..., noise_scale: _Optional[float] = ...) -> None: ...

class StratumCounts(_message.Message):
    __slots__ = ("biomarker", "method", "specimen", "histology_group", "tests", "positive", "negative", "failed", "equivocal", "withheld", "disclosure_note", "suppressed_cells")
    BIOMARKER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_FIELD_NUMBER: _ClassVar[int]
    HISTOLOGY_GROUP_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    EQUIVOCAL_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_CELLS_FIELD_NUMBER: _ClassVar[int]
    biomarker: str
    method: str
    specimen: str
    histology_group: str
    tests: int
    positive: int
    negative: int
    failed: int
    equivocal: int
    withheld: bool
    disclosure_note: str
    suppressed_cells: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, biomarker: _Optional[str] = ..., method: _Optional[str] = ..., specimen: _Optional[str] = ..., histology_group: _Optional[str] = ..., tests: _Optional[int] = ..., positive: _Optional[int] = ..., negative: _Optional[int] = ..., failed: _Optional[int] = ..., equivocal: _Optional[int] = ..., withheld: _Optional[bool] = ..., disclosure_note: _Optional[str] = ..., suppressed_cells: _Optional[_Iterable[str]] = ...) -> None: ...

class TurnaroundHistogram(_message.Message):
    __slots__ = ("specimen", "counts", "target_days", "within_target", "total", "withheld", "disclosure_note")
    SPECIMEN_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_DAYS_FIELD_NUMBER: _ClassVar[int]
    WITHIN_TARGET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    specimen: str
    counts: _containers.RepeatedScalarFieldContainer[int]
    target_days: int
    within_target: int
    total: int
    withheld: bool
    disclosure_note: str
    def __init__(self, specimen: _Optional[str] = ..., counts: _Optional[_Iterable[int]] = ..., target_days: _Optional[int] = ..., within_target: _Optional[int] = ..., total: _Optional[int] = ..., withheld: _Optional[bool] = ..., disclosure_note: _Optional[str] = ...) -> None: ...

class ConcordanceTable(_message.Message):
    __slots__ = ("kind", "biomarker", "index_method", "comparator_method", "both_positive", "index_positive_comparator_negative", "index_negative_comparator_positive", "both_negative", "excluded_failed", "withheld", "disclosure_note")
    KIND_FIELD_NUMBER: _ClassVar[int]
    BIOMARKER_FIELD_NUMBER: _ClassVar[int]
    INDEX_METHOD_FIELD_NUMBER: _ClassVar[int]
    COMPARATOR_METHOD_FIELD_NUMBER: _ClassVar[int]
    BOTH_POSITIVE_FIELD_NUMBER: _ClassVar[int]
    INDEX_POSITIVE_COMPARATOR_NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    INDEX_NEGATIVE_COMPARATOR_POSITIVE_FIELD_NUMBER: _ClassVar[int]
    BOTH_NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FAILED_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    biomarker: str
    index_method: str
    comparator_method: str
    both_positive: int
    index_positive_comparator_negative: int
    index_negative_comparator_positive: int
    both_negative: int
    excluded_failed: int
    withheld: bool
    disclosure_note: str
    def __init__(self, kind: _Optional[str] = ..., biomarker: _Optional[str] = ..., index_method: _Optional[str] = ..., comparator_method: _Optional[str] = ..., both_positive: _Optional[int] = ..., index_positive_comparator_negative: _Optional[int] = ..., index_negative_comparator_positive: _Optional[int] = ..., both_negative: _Optional[int] = ..., excluded_failed: _Optional[int] = ..., withheld: _Optional[bool] = ..., disclosure_note: _Optional[str] = ...) -> None: ...

class PanelCoverage(_message.Message):
    __slots__ = ("patients", "biomarkers", "with_all_required", "withheld", "disclosure_note")
    PATIENTS_FIELD_NUMBER: _ClassVar[int]
    BIOMARKERS_FIELD_NUMBER: _ClassVar[int]
    WITH_ALL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    patients: int
    biomarkers: _containers.RepeatedCompositeFieldContainer[BiomarkerCoverage]
    with_all_required: int
    withheld: bool
    disclosure_note: str
    def __init__(self, patients: _Optional[int] = ..., biomarkers: _Optional[_Iterable[_Union[BiomarkerCoverage, _Mapping]]] = ..., with_all_required: _Optional[int] = ..., withheld: _Optional[bool] = ..., disclosure_note: _Optional[str] = ...) -> None: ...

class BiomarkerCoverage(_message.Message):
    __slots__ = ("biomarker", "with_valid_result")
    BIOMARKER_FIELD_NUMBER: _ClassVar[int]
    WITH_VALID_RESULT_FIELD_NUMBER: _ClassVar[int]
    biomarker: str
    with_valid_result: int
    def __init__(self, biomarker: _Optional[str] = ..., with_valid_result: _Optional[int] = ...) -> None: ...

class VafHistogram(_message.Message):
    __slots__ = ("biomarker", "method", "edges", "counts", "withheld", "disclosure_note")
    BIOMARKER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    biomarker: str
    method: str
    edges: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    withheld: bool
    disclosure_note: str
    def __init__(self, biomarker: _Optional[str] = ..., method: _Optional[str] = ..., edges: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., withheld: _Optional[bool] = ..., disclosure_note: _Optional[str] = ...) -> None: ...

class SpecimenTests(_message.Message):
    __slots__ = ("specimen", "tests", "failed", "withheld", "disclosure_note")
    SPECIMEN_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_NOTE_FIELD_NUMBER: _ClassVar[int]
    specimen: str
    tests: int
    failed: int
    withheld: bool
    disclosure_note: str
    def __init__(self, specimen: _Optional[str] = ..., tests: _Optional[int] = ..., failed: _Optional[int] = ..., withheld: _Optional[bool] = ..., disclosure_note: _Optional[str] = ...) -> None: ...

class SiteSummary(_message.Message):
    __slots__ = ("site_id", "period", "schema_version", "sequence", "software_version", "policy", "standard_version", "strata", "turnaround", "concordance", "panel", "vaf", "specimen_tests", "testing_directory")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STANDARD_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATA_FIELD_NUMBER: _ClassVar[int]
    TURNAROUND_FIELD_NUMBER: _ClassVar[int]
    CONCORDANCE_FIELD_NUMBER: _ClassVar[int]
    PANEL_FIELD_NUMBER: _ClassVar[int]
    VAF_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_TESTS_FIELD_NUMBER: _ClassVar[int]
    TESTING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    period: str
    schema_version: int
    sequence: int
    software_version: str
    policy: DisclosurePolicy
    standard_version: str
    strata: _containers.RepeatedCompositeFieldContainer[StratumCounts]
    turnaround: _containers.RepeatedCompositeFieldContainer[TurnaroundHistogram]
    concordance: _containers.RepeatedCompositeFieldContainer[ConcordanceTable]
    panel: PanelCoverage
    vaf: _containers.RepeatedCompositeFieldContainer[VafHistogram]
    specimen_tests: _containers.RepeatedCompositeFieldContainer[SpecimenTests]
    testing_directory: bool
    def __init__(self, site_id: _Optional[str] = ..., period: _Optional[str] = ..., schema_version: _Optional[int] = ..., sequence: _Optional[int] = ..., software_version: _Optional[str] = ..., policy: _Optional[_Union[DisclosurePolicy, _Mapping]] = ..., standard_version: _Optional[str] = ..., strata: _Optional[_Iterable[_Union[StratumCounts, _Mapping]]] = ..., turnaround: _Optional[_Iterable[_Union[TurnaroundHistogram, _Mapping]]] = ..., concordance: _Optional[_Iterable[_Union[ConcordanceTable, _Mapping]]] = ..., panel: _Optional[_Union[PanelCoverage, _Mapping]] = ..., vaf: _Optional[_Iterable[_Union[VafHistogram, _Mapping]]] = ..., specimen_tests: _Optional[_Iterable[_Union[SpecimenTests, _Mapping]]] = ..., testing_directory: _Optional[bool] = ...) -> None: ...
