"""Decoding submitted payloads in a second process.

A lab's quarterly summary is about 30 KB of JSON, and reading it strictly is most of the intake's
work. The intake (coordinator/intake.py) sends a batch's payloads here, checks the signatures and
commits the previous batch meanwhile, then takes the decoded messages back. Decoding is
`protos.wire.decode` either way; only the process differs (see protos/worker.py).
"""
from __future__ import annotations

from protos import wire
from protos.errors import ContractError
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.worker import Worker, WorkerStopped, serve

MESSAGE_TYPES = {wire.SITE_SUMMARY: pb.SiteSummary, wire.EQA_RESPONSE: epb.EqaResponse}


def decode_all(payloads: list[tuple[str, bytes]]) -> list[tuple[bool, bytes | str]]:
    """For each (payload type, payload): (True, the message serialised) or (False, why it cannot be read)."""
    out: list[tuple[bool, bytes | str]] = []
    for payload_type, payload in payloads:
        try:
            out.append((True, wire.decode(payload, MESSAGE_TYPES[payload_type]).SerializeToString()))
        except ContractError as exc:
            out.append((False, str(exc)))
    return out


class Decoder:
    """The parent's side: one worker process, started when first needed and again if it stops."""

    def __init__(self) -> None:
        self._worker: Worker | None = None

    def send(self, payloads: list[tuple[str, bytes]]) -> None:
        if self._worker is None:
            self._worker = Worker("coordinator.decoding", "payload decoding")
        try:
            self._worker.send(payloads)
        except WorkerStopped:
            self.close()
            raise

    def receive(self) -> list[tuple[bool, bytes | str]]:
        """The answer to the last send (WorkerStopped if the process died; the next send starts another)."""
        try:
            return self._worker.receive()
        except WorkerStopped:
            self.close()
            raise

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def _answer(payloads):
    yield decode_all(payloads)


if __name__ == "__main__":
    from coordinator.decoding import _answer as answer  # by the module's importable name

    serve(answer)
