"""Reading submitted payloads: decoding, and the checks that need nothing but the payload (schema
version, period, sequence, cells adding up).

A lab's quarterly summary is about 30 KB of JSON, read strictly by protos/wire.py in about a
quarter of a millisecond; the intake (coordinator/intake.py) reads each payload here, in its own
thread, then checks what needs its own state (the signer's site, today's date, EQA deadlines).
Payloads were once read in a second process while the intake committed: the pickling, the pipes
and the second copy of each message cost more CPU than the reading itself, once it was fast.
"""

from __future__ import annotations

from coordinator.errors import CoordinatorError, InvalidRequest, WrongState
from coordinator.summary_checks import MAX_SEQUENCE, Vocabulary, check_summary
from protos import wire
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import action_pb2 as apb
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb

MESSAGE_TYPES = {
    wire.SITE_SUMMARY: pb.SiteSummary,
    wire.EQA_RESPONSE: epb.EqaResponse,
    wire.CORRECTIVE_ACTION: apb.CorrectiveAction,
}
KNOWN_SCHEMAS = {wire.SCHEMA_VERSION}

Payload = pb.SiteSummary | epb.EqaResponse | apb.CorrectiveAction


def read(
    payload_type: str, payload: bytes, vocabulary: Vocabulary | None = None
) -> tuple[Payload, CoordinatorError | None]:
    """The payload decoded as its type says, and what is wrong with its content (None if nothing);
    ContractError, saying why, if it cannot be read as that type. Names in summaries are checked
    against `vocabulary` (the standard's) when one is given."""
    message: Payload
    message, fields = wire.decode_fields(payload, MESSAGE_TYPES[payload_type])
    try:
        check_content(message, vocabulary, fields)
        return message, None
    except CoordinatorError as exc:
        return message, exc
    except Exception as exc:  # noqa: BLE001 - an unforeseen payload is refused, not a crash
        return message, InvalidRequest(f"the payload's content cannot be checked: {exc}")


def check_content(
    message: pb.SiteSummary | epb.EqaResponse | apb.CorrectiveAction,
    vocabulary: Vocabulary | None = None,
    fields: wire.JsonObject | None = None,
) -> None:
    """`fields`: the JSON object a summary was decoded from (wire.decode_fields), if it was."""
    if message.schema_version not in KNOWN_SCHEMAS:
        what = {
            pb.SiteSummary: "summary",
            epb.EqaResponse: "EQA response",
            apb.CorrectiveAction: "corrective action",
        }[type(message)]
        raise WrongState(
            f"{what} schema version {message.schema_version} is not known here "
            f"(known: {sorted(KNOWN_SCHEMAS)}); upgrade rarenet-node or the coordinator"
        )
    if isinstance(message, apb.CorrectiveAction):
        from coordinator import actions

        actions.check_content(message)
        return
    if isinstance(message, epb.EqaResponse):
        if not 1 <= message.sequence <= MAX_SEQUENCE or not message.round_id:
            raise InvalidRequest(
                f"an EQA response needs a round_id and a sequence number from 1 to {MAX_SEQUENCE}"
            )
        return
    try:
        period = parse_period(message.period)
    except ContractError as exc:
        raise InvalidRequest(str(exc)) from exc
    if message.period != period.label:
        raise InvalidRequest(
            f"period {message.period!r} must be written {period.label!r} (the canonical form)"
        )
    if message.sequence < 1:
        raise InvalidRequest("sequence numbers start at 1")
    check_summary(message, vocabulary, fields)
