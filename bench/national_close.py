"""Quarter closes at the coordinator, as the national run plays them (bench/bench_national.py):
each closed quarter's benchmark is computed and its flags kept under the fingerprint of exactly
its inputs (coordinator.followup.period_flags, the computation `serve`'s scheduled report of a
closed period starts with), so the later report's flag history reads them instead of computing
them. No report is written.

One process closes every quarter, as `serve` does in its own process: each line read from stdin
is a period to close; for each, one line is written when its flags are kept. It ends when stdin
ends, with status 1 if a close failed (the line says why).

python -m bench.national_close DATA_DIR < periods
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from coordinator import followup
from coordinator.config import DataDir
from coordinator.standards import load


def close(data_dir: Path, period: str) -> int:
    """Keep the period's flags; how many sites were flagged."""
    data = DataDir(data_dir).check()
    conn = sqlite3.connect(data.db, timeout=60)
    try:
        return len(followup.period_flags(conn, period, load(data.standard)))
    finally:
        conn.close()


def main() -> int:
    data_dir, status = Path(sys.argv[1]), 0
    for line in sys.stdin:
        period = line.strip()
        try:
            print(f"{period}: flags of {close(data_dir, period)} sites kept", flush=True)
        except Exception as exc:  # noqa: BLE001 - said on the line; the run fails at the end
            print(f"{period}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
