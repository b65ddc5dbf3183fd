"""A quarter's close at the coordinator, as the national run plays it (bench/bench_national.py):
the quarter's benchmark is computed and its flags kept under the fingerprint of exactly its
inputs (coordinator.followup.period_flags, the computation `serve`'s scheduled report of a closed
period starts with), so the later report's flag history reads them instead of computing them.
No report is written.

python -m bench.national_close DATA_DIR PERIOD
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


if __name__ == "__main__":
    print(f"{sys.argv[2]}: flags of {close(Path(sys.argv[1]), sys.argv[2])} sites kept")
