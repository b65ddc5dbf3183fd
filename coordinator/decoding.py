"""Reading submitted payloads in a second process: decoding, and the checks that need nothing
but the payload (schema version, period, sequence, cells adding up).

A lab's quarterly summary is about 30 KB of JSON, and reading it strictly is most of the intake's
work. The intake (coordinator/intake.py) sends a batch's payloads here, checks the signatures and
commits the previous batch meanwhile, then takes the messages back and checks what needs its own
state (the signer's site, today's date, EQA deadlines). See protos/worker.py.
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
from protos.worker import Worker, WorkerStopped, serve

MESSAGE_TYPES = {
    wire.SITE_SUMMARY: pb.SiteSummary,
    wire.EQA_RESPONSE: epb.EqaResponse,
    wire.CORRECTIVE_ACTION: apb.CorrectiveAction,
}
KNOWN_SCHEMAS = {wire.SCHEMA_VERSION}

Read = tuple[bool, bytes | str, CoordinatorError | None]


def read_all(payloads: list[tuple[str, bytes]], vocabulary: Vocabulary | None = None) -> list[Read]:
    """For each (payload type, payload): (True, the message serialised, what is wrong with its
    content or None), or (False, why it cannot be read as that type, None). Names in summaries
    are checked against `vocabulary` (the standard's) when one is given."""
    out: list[Read] = []
    for payload_type, payload in payloads:
        try:
            message: pb.SiteSummary | epb.EqaResponse | apb.CorrectiveAction = wire.decode(
                payload, MESSAGE_TYPES[payload_type]
            )
        except ContractError as exc:
            out.append((False, str(exc), None))
            continue
        try:
            check_content(message, vocabulary)
            problem = None
        except CoordinatorError as exc:
            problem = exc
        except Exception as exc:  # noqa: BLE001 - one payload must not stop the batch's process
            problem = InvalidRequest(f"the payload's content cannot be checked: {exc}")
        out.append((True, message.SerializeToString(), problem))
    return out


def check_content(
    message: pb.SiteSummary | epb.EqaResponse | apb.CorrectiveAction,
    vocabulary: Vocabulary | None = None,
) -> None:
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
    check_summary(message, vocabulary)


class Decoder:
    """The parent's side: one worker process, started when first needed and again if it stops."""

    def __init__(self, vocabulary: Vocabulary | None = None) -> None:
        self._worker: Worker | None = None
        self._vocabulary = vocabulary

    def send(self, payloads: list[tuple[str, bytes]]) -> None:
        if self._worker is None:
            self._worker = Worker("coordinator.decoding", "payload decoding")
        try:
            self._worker.send((self._vocabulary, payloads))
        except WorkerStopped:
            self.close()
            raise

    def receive(self) -> list[Read]:
        """The answer to the last send (WorkerStopped if the process died; the next send starts another)."""
        try:
            if self._worker is None:
                raise WorkerStopped("the payload decoding process was not started")
            answer = self._worker.receive()
            if not isinstance(answer, list):
                raise WorkerStopped(
                    f"the payload decoding process answered {type(answer).__name__}"
                )
            return answer
        except WorkerStopped:
            self.close()
            raise

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def _answer(message: tuple[Vocabulary | None, list[tuple[str, bytes]]]):
    vocabulary, payloads = message
    yield read_all(payloads, vocabulary)


if __name__ == "__main__":
    from coordinator.decoding import _answer as answer  # by the module's importable name

    serve(answer)
