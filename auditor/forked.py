"""Work run in a forked child process beside the parent's, sending back only small JSON messages
through a pipe.

The child starts with a copy-on-write view of everything the parent had read, so nothing large
crosses the pipe either way (pickling the summaries was what made an earlier pool of processes
not pay). A child that fails, is killed, or sends anything that is not a JSON object gives None
from `receive`: the caller then does the work itself. Where forking is not safe (can_fork),
nothing is started and the caller does the work itself too.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

Message = dict[str, Any]
_LENGTH = 8
MAX_MESSAGE = 64 * 2**20


def can_fork() -> bool:
    """Linux only: on macOS a forked child of a process that loaded system frameworks may crash
    (Python starts processes by spawning there), and Windows has no fork."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class Forked:
    """`work(send)` running in a child process, each `send(message)` received by `receive()`."""

    def __init__(self, work: Callable[[Callable[[Message], None]], None]) -> None:
        read_end, write_end = os.pipe()
        # The objects both processes start with are kept out of the collector's sight while the
        # child runs, so that collecting in either does not write to (and so copy) the pages
        # they share.
        gc.freeze()
        try:
            self.pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            gc.unfreeze()
            raise
        if self.pid == 0:  # the child: never returns to the caller's code
            code = 1
            try:
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    work(lambda message: _send(out, message))
                code = 0
            except BaseException:  # noqa: BLE001 - the parent receives None and does the work
                pass
            finally:
                os._exit(code)
        os.close(write_end)
        self._pipe: BinaryIO = os.fdopen(read_end, "rb")
        self._reaped = False
        self._ended = False
        # The pipe is drained as the child writes, so the child never waits for this process to
        # read (a message larger than the pipe's buffer would stall it until receive()).
        self._messages: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()

    def _read_all(self) -> None:
        """In a thread: every message as it comes, then None (the child ended, failed, or sent
        something unreadable)."""
        try:
            while True:
                header = self._pipe.read(_LENGTH)
                size = int.from_bytes(header, "big") if len(header) == _LENGTH else -1
                data = self._pipe.read(size) if 0 <= size <= MAX_MESSAGE else b""
                message = json.loads(data) if len(data) == size else None
                if not isinstance(message, dict):
                    break
                self._messages.put(message)
        except (OSError, ValueError):
            pass
        self._messages.put(None)

    def receive(self) -> Message | None:
        """The child's next message, waiting for it; None once the child sent none (it ended,
        failed, or sent something unreadable: it is then stopped)."""
        if self._ended:
            return None
        message = self._messages.get()
        if message is None:
            self._ended = True
            self.stop()
        return message

    def stop(self) -> None:
        """End the child if it still runs (nothing more is wanted from it), and reap it."""
        self._ended = True
        if not self._reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self._reaped = True
            gc.unfreeze()
        self._reader.join()  # the child is gone: its end of the pipe is closed, the read ends
        self._pipe.close()


def _send(out: BinaryIO, message: Message) -> None:
    data = json.dumps(message).encode()
    out.write(len(data).to_bytes(_LENGTH, "big") + data)
    out.flush()
