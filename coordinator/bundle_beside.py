"""The period's audit bundle built in a forked second process beside the `benchmark` command
(`rarenet-coordinator benchmark --audit-bundle FILE`), so that a two-core coordinator writes
the bundle's ledger members while the benchmark is computed.

The child starts before the computation and writes every member that does not depend on the
benchmark (envelopes, receipts, proofs, keys, the ledger's leaves: most of the bundle's work);
report/benchmark.json comes last (coordinator/audit_bundle.build's `report`). The parent hands
over the bytes it computed, with the fingerprint of their inputs, through a pipe, from a thread
(it never waits for the child to take them). The child writes them only if that fingerprint is
the one of the inputs its own snapshot of the store reads; otherwise, as `audit-bundle` does, it
uses the kept benchmark or computes it. The bundle is the one `audit-bundle` writes.

Where no second process can be had (coordinator/second_process.py says why), or the child fails,
the caller builds the bundle itself once the report is written (`build_here`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from coordinator import audit_bundle, second_process
from coordinator.config import DataDir
from coordinator.standards import Standard

_FINGERPRINT = 64  # hex SHA-256 of the inputs
_LENGTH = 8


class Cancelled(Exception):
    """The benchmark ended without handing over its report: no bundle is written."""


def _stop_cleanly(signum: int, frame: Any) -> None:
    sys.exit(1)  # SystemExit runs the builder's cleanup: no partial file is left behind


def _received(pipe: BinaryIO, inputs_sha256: str) -> bytes | None:
    """The report handed over, if computed from the inputs with this fingerprint; else None."""
    header = pipe.read(_FINGERPRINT + _LENGTH)
    if len(header) != _FINGERPRINT + _LENGTH:
        raise Cancelled("the benchmark ended without a report")
    size = int.from_bytes(header[_FINGERPRINT:], "big")
    report = pipe.read(size)
    if len(report) != size:
        raise Cancelled("the benchmark's report was cut short")
    return report if header[:_FINGERPRINT].decode() == inputs_sha256 else None


class BundleBeside:
    """A bundle being built in a second process; `child` is None where none could be had (`why`
    says why)."""

    def __init__(self, data: DataDir, standard: Standard, period: str, out: Path) -> None:
        read_end, self._write_end = os.pipe()

        def work() -> dict[str, Any]:
            os.close(self._write_end)  # the parent's end: EOF here if the parent goes
            signal.signal(signal.SIGTERM, _stop_cleanly)
            with os.fdopen(read_end, "rb") as pipe:
                manifest = audit_bundle.build(
                    data, standard, period, out, None, report=lambda sha: _received(pipe, sha)
                )
            return {"files": len(manifest["files"]), "tree_size": manifest["tree_size"]}

        started = second_process.start(work, "audit-bundle")
        os.close(read_end)
        self.child = None if isinstance(started, str) else started
        self.why = started if isinstance(started, str) else ""
        self._sender: threading.Thread | None = None
        if self.child is None:
            self._close_write_end()

    def give(self, inputs_sha256: str, report: bytes) -> None:
        """Hand the computed report to the child (in a thread, as the child takes it)."""
        if self.child is None or self._sender is not None:
            return
        header = inputs_sha256.encode() + len(report).to_bytes(_LENGTH, "big")

        def send() -> None:
            try:
                with os.fdopen(self._write_end, "wb") as pipe:
                    self._write_end = -1
                    pipe.write(header)
                    pipe.write(report)
            except OSError:
                pass  # the child ended: its answer says why

        self._sender = threading.Thread(target=send, name="report to the bundle", daemon=True)
        self._sender.start()

    def built(self) -> dict[str, Any] | str:
        """{"files", "tree_size"} of the bundle the child wrote, or why it did not."""
        if self.child is None:
            return self.why
        self._close_write_end()  # never handed a report: EOF, the child stops at the report
        try:
            answer = self.child.answer()
        except second_process.Failed as exc:
            return f"its second process failed ({exc})"
        finally:
            self._close_write_end()
            if self._sender is not None:
                self._sender.join()
        assert isinstance(answer, dict)
        return answer

    def cancel(self) -> None:
        """No report after all: the child stops and writes nothing."""
        self._close_write_end()  # EOF: the child stops when it asks for the report
        if self.child is not None:
            self.child.stop()
        if self._sender is not None:
            self._sender.join()

    def _close_write_end(self) -> None:
        if self._sender is None and self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1


def build_here(data: DataDir, standard: Standard, period: str, out: Path) -> dict[str, Any]:
    """The bundle built in this process, as `audit-bundle` does (from the kept benchmark, or
    computed): {"files", "tree_size"}."""
    manifest = audit_bundle.build(data, standard, period, out)
    return {"files": len(manifest["files"]), "tree_size": manifest["tree_size"]}
