from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlagReference(_message.Message):
    __slots__ = ("period", "rule", "subject")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    period: str
    rule: str
    subject: str
    def __init__(self, period: _Optional[str] = ..., rule: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class CorrectiveAction(_message.Message):
    __slots__ = ("site_id", "sequence", "schema_version", "software_version", "action_id", "flag", "root_cause", "action", "due", "status", "closed_on", "closing_note")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    ROOT_CAUSE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DUE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_ON_FIELD_NUMBER: _ClassVar[int]
    CLOSING_NOTE_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    sequence: int
    schema_version: int
    software_version: str
    action_id: str
    flag: FlagReference
    root_cause: str
    action: str
    due: str
    status: str
    closed_on: str
    closing_note: str
    def __init__(self, site_id: _Optional[str] = ..., sequence: _Optional[int] = ..., schema_version: _Optional[int] = ..., software_version: _Optional[str] = ..., action_id: _Optional[str] = ..., flag: _Optional[_Union[FlagReference, _Mapping]] = ..., root_cause: _Optional[str] = ..., action: _Optional[str] = ..., due: _Optional[str] = ..., status: _Optional[str] = ..., closed_on: _Optional[str] = ..., closing_note: _Optional[str] = ...) -> None: ...
