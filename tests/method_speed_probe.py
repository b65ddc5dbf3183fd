"""Time method.benchmark.compute on a coordinator data directory and compare its outputs.

Not a test (pytest does not collect it): a measuring probe for the method's speed.

    python tests/method_speed_probe.py DATA_DIR OUTDIR [--periods 2026Q3,2026Q2] [--profile]
    python tests/method_speed_probe.py --compare REFDIR NEWDIR

Inputs are read once per period (coordinator.benchmark.inputs, the standard as the coordinator's
benchmark command loads it) and cached as pickles in OUTDIR; each compute is timed in CPU seconds
(time.process_time) and its result saved as OUTDIR/PERIOD.json. --compare reports keys or values
that differ, with floats compared to 1e-12 relative.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import pickle
import pstats
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

PERIODS = ("2026Q3", "2025Q4", "2026Q1", "2026Q2")


def _load(data_dir: Path, period: str, cache: Path) -> tuple[Any, Any]:
    from coordinator import benchmark as bench
    from coordinator.standards import load as load_standard

    standard = load_standard(data_dir / "standard.toml")
    pkl = cache / f"inputs-{period}.pkl"
    if pkl.exists():
        return pickle.loads(pkl.read_bytes()), standard
    conn = sqlite3.connect(data_dir / "coordinator.db")
    data = bench.inputs(conn, period, standard)
    pkl.write_bytes(pickle.dumps(data))
    return data, standard


def run(data_dir: Path, out: Path, periods: list[str], profile: bool, repeat: int) -> None:
    from method import benchmark as method_benchmark

    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for period in periods:
        data, standard = _load(data_dir, period, out)
        best = math.inf
        for _ in range(repeat):
            profiler = cProfile.Profile() if profile else None
            start = time.process_time()
            if profiler:
                profiler.enable()
            result = method_benchmark.compute(data, period, standard)
            if profiler:
                profiler.disable()
            best = min(best, time.process_time() - start)
        total += best
        print(f"{period}: {len(result['sites'])} sites, {best:.2f} s CPU", flush=True)
        (out / f"{period}.json").write_text(json.dumps(result, sort_keys=True, indent=0))
        if profiler:
            profiler.dump_stats(out / f"{period}.prof")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    print(f"total {total:.2f} s CPU")


def _diff(a: Any, b: Any, path: str, found: list[str], worst: list[float]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            found.append(f"{path}: keys {sorted(a.keys() ^ b.keys())[:5]}")
        for k in a.keys() & b.keys():
            _diff(a[k], b[k], f"{path}.{k}", found, worst)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{path}: lengths {len(a)} {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", found, worst)
    elif isinstance(a, float) and isinstance(b, float) and a != b:
        rel = abs(a - b) / max(abs(a), abs(b))
        worst[0] = max(worst[0], rel)
        if rel > 1e-12:
            found.append(f"{path}: {a!r} != {b!r} (rel {rel:.2e})")
    elif a != b or type(a) is not type(b):
        found.append(f"{path}: {a!r} != {b!r}")


def compare(ref: Path, new: Path) -> int:
    status = 0
    for path in sorted(ref.glob("*.json")):
        if not (new / path.name).exists():
            continue
        a = json.loads(path.read_text())
        b = json.loads((new / path.name).read_text())
        found: list[str] = []
        worst = [0.0]
        _diff(a, b, path.stem, found, worst)
        identical = path.read_bytes() == (new / path.name).read_bytes()
        print(
            f"{path.stem}: {'byte-identical' if identical else 'differs'}; "
            f"{len(found)} differences beyond 1e-12; largest float rel diff {worst[0]:.2e}"
        )
        other = [line for line in found if "(rel " not in line]
        print(f"    of which {len(other)} not floats (keys, lengths, strings, ints, bools)")
        for line in (other + found)[:12]:
            print("   ", line)
        status |= bool(found)
    return status


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs=2, type=Path)
    parser.add_argument("--periods", default=",".join(PERIODS))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.compare:
        return compare(*args.paths)
    run(args.paths[0], args.paths[1], args.periods.split(","), args.profile, args.repeat)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
