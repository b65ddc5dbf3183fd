"""Work run in a forked child process beside the parent's, sending back only small JSON messages
through a pipe, and fed bytes by the parent through another.

The child starts with a copy-on-write view of everything the parent had read; what the parent
reads afterwards it hands over as bytes (`give`), which the child takes in order (`take`), so the
child works on the very bytes the parent read, and never reads them again. Nothing is pickled
either way (pickling the summaries was what made an earlier pool of processes not pay). A child
that fails, is killed, or sends anything that is not a JSON object gives None from `receive`: the
caller then does the work itself. Where forking is not safe (can_fork), nothing is started and
the caller does the work itself too.
"""

from __future__ import annotations

import fcntl
import gc
import itertools
import json
import os
import queue
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO

Message = dict[str, Any]
Take = Callable[[], bytes | None]
Send = Callable[[Message], None]
_LENGTH = 8
MAX_MESSAGE = 64 * 2**20
_FEED_BUFFER = 2**20  # the pipe's and the child's reader's


def can_fork() -> bool:
    """Linux only: on macOS a forked child of a process that loaded system frameworks may crash
    (Python starts processes by spawning there), and Windows has no fork."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class Forked:
    """`work(take, send)` running in a child process: each `give(data)` of the parent is taken by
    `take()` in the child (None once the parent gave its last), each `send(message)` of the child
    received by `receive()` in the parent."""

    def __init__(self, work: Callable[[Take, Send], None]) -> None:
        feed_read, feed_write = os.pipe()
        try:
            read_end, write_end = os.pipe()
        except OSError:
            os.close(feed_read)
            os.close(feed_write)
            raise
        _widen(feed_write)
        # The objects both processes start with are kept out of the collector's sight while the
        # child runs, so that collecting in either does not write to (and so copy) the pages
        # they share.
        gc.freeze()
        try:
            self.pid = os.fork()
        except OSError:
            for end in (read_end, write_end, feed_read, feed_write):
                os.close(end)
            gc.unfreeze()
            raise
        if self.pid == 0:  # the child: never returns to the caller's code
            code = 1
            try:
                os.close(read_end)
                os.close(feed_write)
                with (
                    os.fdopen(write_end, "wb") as out,
                    os.fdopen(feed_read, "rb", _FEED_BUFFER) as feed,
                ):
                    work(lambda: _take(feed), lambda message: _send(out, message))
                code = 0
            except BaseException:  # noqa: BLE001 - the parent receives None and does the work
                pass
            finally:
                os._exit(code)
        os.close(write_end)
        os.close(feed_read)
        self._pipe: BinaryIO = os.fdopen(read_end, "rb")
        self._feed: _Feed | None = _Feed(feed_write)
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

    def give(self, data: bytes) -> bool:
        """Hand the child `data`, without waiting for it to take what was given before (up to
        MAX_AHEAD bytes are held here meanwhile): the child takes each in order. False once the
        child takes no more (it ended or failed: `receive` then gives None)."""
        if self._feed is None:
            return False
        if not self._feed.put(len(data).to_bytes(_LENGTH, "big"), data):
            self._close_feed()
            return False
        return True

    def behind(self) -> int:
        """How many bytes given the child has not taken yet beyond what the pipe holds (0 while
        it keeps up)."""
        return self._feed.held if self._feed is not None else 0

    def flush(self) -> bool:
        """Wait until the child can take all that was given."""
        if self._feed is None:
            return False
        if not self._feed.drain(0):
            self._close_feed()
            return False
        return True

    def give_no_more(self) -> bool:
        """The last `give`: the child's `take` gives None once it took all that was given."""
        flushed = self.flush()
        self._close_feed()
        return flushed

    def _close_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()

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
        self._close_feed()
        self._reader.join()  # the child is gone: its end of the pipe is closed, the read ends
        self._pipe.close()


MAX_AHEAD = 64 * 2**20  # what the parent holds that the child has not taken yet, at most


class _Feed:
    """The parent's end of the pipe to the child, written without waiting for the child to read:
    what the pipe has no room for is kept, and written at the next put (or drain)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._pieces: deque[memoryview] = deque()
        self.held = 0  # bytes put and not written yet

    def put(self, *pieces: bytes) -> bool:
        """Write the pieces after what is held; False when the child takes no more."""
        for piece in pieces:
            if piece:
                self._pieces.append(memoryview(piece))
                self.held += len(piece)
        return self.drain(MAX_AHEAD)

    def drain(self, keep: int) -> bool:
        """Write what is held, waiting for the child to read until at most `keep` bytes are
        left; False when the child takes no more."""
        try:
            while self._pieces:
                try:
                    written = os.writev(self.fd, list(itertools.islice(self._pieces, _IOV)))
                except BlockingIOError:
                    if self.held <= keep:
                        return True
                    select.select([], [self.fd], [])
                    continue
                self.held -= written
                while written:
                    first = self._pieces[0]
                    if written < len(first):
                        self._pieces[0] = first[written:]
                        break
                    written -= len(first)
                    self._pieces.popleft()
        except OSError:  # the child closed its end (it ended or failed)
            return False
        return True

    def close(self) -> None:
        self._pieces.clear()
        os.close(self.fd)


_IOV = 64  # pieces written by one call


def _widen(fd: int) -> None:
    """A pipe buffer of _FEED_BUFFER where Linux allows it (the default 64 KB holds two
    payloads); the default otherwise."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _FEED_BUFFER)
    except (OSError, AttributeError):
        pass


def _take(feed: BinaryIO) -> bytes | None:
    """The parent's next `give`, or None once it gave its last (closed the pipe, or ended)."""
    header = feed.read(_LENGTH)
    if len(header) != _LENGTH:
        return None
    size = int.from_bytes(header, "big")
    data = feed.read(size)
    return data if len(data) == size else None


def _send(out: BinaryIO, message: Message) -> None:
    data = json.dumps(message).encode()
    out.write(len(data).to_bytes(_LENGTH, "big") + data)
    out.flush()
