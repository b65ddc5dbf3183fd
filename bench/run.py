"""make bench: speed and memory figures, each against a baseline measured in the same run.

    python -m bench.run [ingest summarize submit report] [--quick]
"""
from __future__ import annotations

import argparse
import importlib

BENCHES = ("ingest", "summarize", "submit", "report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", default=list(BENCHES), choices=BENCHES)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    for name in args.which:
        print(f"\n== {name}")
        importlib.import_module(f"bench.bench_{name}").run(quick=args.quick)


if __name__ == "__main__":
    main()
