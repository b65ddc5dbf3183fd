"""One piece of a report run done in a forked second process, so a two-core coordinator does two
things at once (coordinator/earlier_flags.py, the lab pages in coordinator/report.py).

Forked: the child starts with this process's memory (the code imported, the data read so far) as
shared pages, not a copy, and sends back only its answer (pickled; keep it small). The garbage
collector is frozen across the fork so the child's collections do not write to those pages.
Where no second process can be had (no fork start method on this platform, or the start fails)
`start` returns why instead; where the child fails, `Child.answer` says why: the caller then does
the work itself, one piece after the other, as it always did."""

from __future__ import annotations

import gc
import multiprocessing
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

START_METHOD = (
    "fork"  # the child shares the imported code and data; spawn would import it all again
)


class Failed(Exception):
    """The child ended without an answer, or its work raised (the message says which)."""


def _run(sender: Connection, work: Callable[[], object]) -> None:
    try:
        answer: tuple[bool, object] = (True, work())
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the parent must hear of it
        answer = (False, f"{type(exc).__name__}: {exc}")
    try:
        sender.send(answer)
    finally:
        sender.close()


class Child:
    """A started second process doing `work`."""

    def __init__(self, process: BaseProcess, receiver: Connection) -> None:
        self.process = process
        self.receiver = receiver
        self.pid = process.pid  # recorded as started: the only process this module signals

    def answer(self) -> object:
        """Wait for what `work` returned; Failed (with why) if it raised or the child died."""
        try:
            ok, value = self.receiver.recv()
        except (EOFError, OSError):
            self.process.join()
            ok, value = False, f"it ended with exit code {self.process.exitcode}"
        finally:
            self.receiver.close()
        self.process.join()
        if not ok:
            raise Failed(str(value))
        return value

    def stop(self) -> None:
        """End the child if it still runs (the caller failed or was interrupted)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.receiver.close()


def start(work: Callable[[], object], name: str) -> Child | str:
    """`work()` running in a forked child, or why no second process could be had."""
    if not sys.platform.startswith("linux") or START_METHOD not in (
        multiprocessing.get_all_start_methods()
    ):  # macOS: a forked child of a process that loaded system frameworks may crash or hang
        return f"no {START_METHOD!r} processes on this platform"
    context: Any = multiprocessing.get_context(START_METHOD)  # typed by its name only
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_run, args=(sender, work), name=name, daemon=True)
    gc.freeze()
    try:
        process.start()
    except OSError as exc:
        receiver.close()
        return f"no second process ({exc})"
    finally:
        gc.unfreeze()
        sender.close()  # the child holds the sending end: EOF here if it dies without answering
    return Child(process, receiver)
