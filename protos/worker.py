"""A second Python process that answers pickled messages on its stdin with pickled messages on
its stdout, so that work the interpreter lock would keep on one core can use the other.

The node checks the rows of a large export in one while it writes them (node/validate.py). The
worker module runs `serve(handle)`; the parent holds a `Worker`.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any


class WorkerStopped(Exception):
    """The worker process is gone; the message says how it stopped."""


class Worker:
    def __init__(self, module: str, name: str) -> None:
        """Start `python -m module`; `name` says what it does, in messages ("the {name} process")."""
        self.name = name
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        )
        self._stderr = tempfile.TemporaryFile()
        # -P: the current directory is not put on sys.path, so a folder there named like a package is not imported.
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", module],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        if self._proc.stdin is None or self._proc.stdout is None:  # not so with PIPE
            raise RuntimeError(f"the {name} process has no pipes")
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stopped(self) -> bool:
        """Whether the process has ended (and been reaped)."""
        return self._proc.poll() is not None

    def send(self, message: object) -> None:
        try:
            pickle.dump(message, self._stdin, pickle.HIGHEST_PROTOCOL)
            self._stdin.flush()
        except OSError:  # BrokenPipeError among them
            raise WorkerStopped(self._how()) from None

    def receive(self) -> object:
        try:
            return pickle.load(self._stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise WorkerStopped(self._how()) from None

    def end_input(self) -> None:
        """No more messages: the worker finishes what it has and exits."""
        self._stdin.close()

    def close(self) -> None:
        for pipe in (self._stdin, self._stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._stderr.close()

    def _how(self) -> str:
        """How the worker stopped, with the last line it wrote to stderr."""
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.seek(0)
        last = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-1:]
        code = self._proc.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return f"the {self.name} process stopped ({how}{': ' + last[0] if last else ''})"


def serve(handle: Callable[[Any], Iterable[object]]) -> None:
    """The worker's side: for each message on stdin, write each answer handle yields; return at
    the end of the input, and leave quietly if the parent has gone.

    SIGTERM and SIGINT are the parent's to act on: `systemctl stop` signals every process of the
    unit, and the node finishes its running job before it stops, so its helper must not die first
    (the parent ends the helper by closing its input, or kills it)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while True:
            try:
                message = pickle.load(stdin)
            except EOFError:
                return
            for answer in handle(message):
                pickle.dump(answer, stdout, pickle.HIGHEST_PROTOCOL)
                stdout.flush()
    except BrokenPipeError:
        os._exit(0)
