"""make bench: speed and memory figures, each against a baseline measured in the same run.

python -m bench.run [ingest summarize submit report national] [--quick]
"""

from __future__ import annotations

import argparse
import importlib

BENCHES = ("ingest", "summarize", "submit", "report", "national")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "which", nargs="*", metavar="BENCH", help=f"any of {', '.join(BENCHES)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    unknown = set(args.which) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench {sorted(unknown)}; choose from {', '.join(BENCHES)}")
    for name in args.which or BENCHES:
        print(f"\n== {name}")
        importlib.import_module(f"bench.bench_{name}").run(quick=args.quick)


if __name__ == "__main__":
    main()
