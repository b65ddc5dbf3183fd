"""Ingest 1,000,000 canonical rows: rows/s, ratio to csv+executemany without validation, peak memory.
Targets (issue 3): >= 100,000 rows/s, within 2x of the baseline, peak memory under 300 MB.

A large file is validated in a second process while the first writes (node/validate.py); the peak
memory printed is the sum of both processes' peaks."""

from __future__ import annotations

from bench.common import WORK, big_export, child


def run(quick: bool = False) -> None:
    rows = 100_000 if quick else 1_000_000
    export = big_export(rows, WORK / f"export-{rows}.csv")
    base = child("bench.ingest_child", "baseline", str(export), str(WORK / "ingest-baseline"))
    ours = child("bench.ingest_child", "ours", str(export), str(WORK / "ingest-ours"))
    assert ours["rows"] == rows, ours
    rate, base_rate = rows / ours["seconds"], rows / base["seconds"]
    print(f"rows                     {rows:,}")
    print(
        f"baseline (csv+executemany, no validation)  {base['seconds']:.2f} s  {base_rate:,.0f} rows/s  "
        f"peak {base['peak_mb']:.0f} MB"
    )
    print(
        f"rarenet-node ingest      {ours['seconds']:.2f} s  {rate:,.0f} rows/s  peak {ours['peak_mb']:.0f} MB "
        f"(writer {ours['writer_mb']:.0f} MB + validator {ours['validator_mb']:.0f} MB)"
    )
    print(f"ratio to baseline        {ours['seconds'] / base['seconds']:.2f}x  (target <= 2x)")
    print(
        f"target >= 100,000 rows/s {'met' if rate >= 100_000 else 'NOT met'}; "
        f"peak < 300 MB {'met' if ours['peak_mb'] < 300 else 'NOT met'}"
    )
