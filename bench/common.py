"""Helpers for the benchmarks: child-process measurement and a large synthetic export."""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from node.synth import generate
from node.vocabulary import FIELDS
from protos.periods import parse as parse_period

WORK = Path("bench-work")


def child(module: str, *args: str) -> dict:
    """Run `python -m module args` and return its JSON line plus its peak RSS (MB)."""
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{module} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS of this process (or, with RUSAGE_CHILDREN, of the largest child it waited for), MB."""
    return resource.getrusage(who).ru_maxrss / 1024


def big_export(rows: int, path: Path) -> Path:
    """`rows` canonical rows: a synthetic block of 100,000 repeated with distinct ids."""
    if path.exists() and sum(1 for _ in path.open("rb")) == rows + 1:
        return path
    block = generate("bench", min(rows, 100_000), 1, ("normal",), parse_period("2026Q3"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        written = 0
        copy = 0
        while written < rows:
            for row in block:
                if written == rows:
                    break
                values = [row[f] for f in FIELDS]
                values[0] = f"{copy}-{values[0]}"
                values[1] = f"{copy}-{values[1]}"
                writer.writerow(values)
                written += 1
            copy += 1
    return path


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
