"""One ingest measured in its own process: `python -m bench.ingest_child ours|baseline FILE DIR`."""

from __future__ import annotations

import csv
import json
import resource
import shutil
import sqlite3
import sys
from pathlib import Path

from bench.common import Timer, peak_mb


def baseline(path: Path, db: Path) -> int:
    """The floor: the csv module and sqlite3 executemany of the same rows, no validation."""
    conn = sqlite3.connect(db)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        conn.execute(f"CREATE TABLE rows ({', '.join(header)})")
        marks = ", ".join("?" * len(header))
        rows = 0
        while True:
            batch = [r for _, r in zip(range(5000), reader)]
            if not batch:
                break
            conn.executemany(f"INSERT INTO rows VALUES ({marks})", batch)
            rows += len(batch)
    conn.commit()
    conn.close()
    return rows


def ours(path: Path, data_dir: Path) -> int:
    from node import config, store
    from node.ingest import ingest_file
    from node.mapping import Mapping
    from node.pseudonym import Pseudonymiser

    cfg = config.init(data_dir, "bench", "127.0.0.1:1", insecure=True)
    conn = store.connect(cfg.db_path)
    result = ingest_file(conn, path, Pseudonymiser(cfg.pseudonym_secret()), Mapping())
    assert result.rows == result.accepted + result.duplicates + result.quarantined
    return result.accepted


def main() -> None:
    kind, path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with Timer() as t:
        rows = (
            baseline(path, out / "baseline.db") if kind == "baseline" else ours(path, out / "node")
        )
    # The validation process runs beside this one: the peak counted is the sum of both peaks.
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": t.seconds,
                "peak_mb": peak_mb() + peak_mb(resource.RUSAGE_CHILDREN),
                "writer_mb": peak_mb(),
                "validator_mb": peak_mb(resource.RUSAGE_CHILDREN),
            }
        )
    )


if __name__ == "__main__":
    main()
