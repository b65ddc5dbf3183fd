"""make demo: a coordinator and six lab nodes on loopback, each a separate process, real gRPC,
real signatures, real ledger, and a real benchmark report in ./demo-report/.

Three labs are planted to misbehave; the table at the end shows whether the benchmark caught them.
The demo exits 1 if a planted misbehaviour is not flagged, or a well-behaved lab is flagged at all
(an alert or an alarm: the method's flags are calibrated, so a flag on a well-behaved lab is a
false discovery the demo must not show).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from protos.periods import Period
from protos.periods import parse as parse_period

BIN = Path(sys.executable).parent
LABS = {  # site id: (synthetic profile, the flag rule the benchmark should raise)
    "lab-beijing": ("normal", None),
    "lab-shanghai": ("normal", None),
    "lab-guangzhou": ("normal", None),
    "lab-dnaonly": ("dna_only", ("method_class", "MET_EX14")),  # no RNA method: the class test
    "lab-slow": ("slow", ("turnaround", None)),
    "lab-cytofail": ("failing_cytology", ("failure_rate", "cytology")),
}
ROWS_PER_PERIOD = 12000
# Fixed, closed periods: the synthetic network (and so the demo's result) is the same every day.
PERIODS = ("2026Q2", "2026Q3")


def run(*args: str, capture: bool = False) -> str:
    result = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"demo step failed: {' '.join(args)}")
    return result.stdout.strip() if capture else ""


def start_coordinator(work: Path) -> tuple[subprocess.Popen, int]:
    port_file = work / "coordinator.port"
    log = (work / "coordinator.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "rarenet-coordinator"),
            "serve",
            "--data-dir",
            str(work / "coordinator"),
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--port-file",
            str(port_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the coordinator did not start; see {work / 'coordinator.log'}")
        time.sleep(0.1)
    return proc, int(port_file.read_text())


def lab(work: Path, site: str, profile: str, port: int, periods: list[Period], seed: int) -> None:
    data = work / site
    run(
        "rarenet-node",
        "init",
        "--data-dir",
        str(data),
        "--site-id",
        site,
        "--coordinator",
        f"127.0.0.1:{port}",
        "--insecure",
    )
    token = run(
        "rarenet-coordinator",
        "sites",
        "add",
        "--data-dir",
        str(work / "coordinator"),
        site,
        capture=True,
    )
    run("rarenet-node", "enroll", "--data-dir", str(data), "--token", token)
    for p in periods:
        export = work / "exports" / f"{site}-{p.label}.csv"
        run(
            "rarenet-node",
            "synth",
            "--site-id",
            site,
            "--rows",
            str(ROWS_PER_PERIOD),
            "--seed",
            str(seed),
            "--profile",
            profile,
            "--period",
            p.label,
            "--out",
            str(export),
        )
        run("rarenet-node", "ingest", "--data-dir", str(data), str(export))
        run("rarenet-node", "submit", "--data-dir", str(data), "--period", p.label)
    run("rarenet-node", "verify-receipts", "--data-dir", str(data))


def table(benchmark: dict) -> tuple[str, list[str]]:
    lines = [f"{'site':<15} {'planted':<17} {'status':<7} flags (level rule: subject)"]
    problems = []
    for site, (profile, expected) in LABS.items():
        entry = benchmark["sites"][site]
        flags = entry["flags"]
        shown = "; ".join(f"{f['level']} {f['rule']}: {f['subject']}" for f in flags) or "-"
        lines.append(f"{site:<15} {profile:<17} {entry['status']:<7} {shown}")
        if expected:
            rule, subject = expected
            if not any(
                f["rule"] == rule and (subject is None or f["subject"] == subject) for f in flags
            ):
                problems.append(f"{site}: planted {profile} but no {rule} flag")
            if rule == "failure_rate":  # counted from the node's exact tests per specimen
                counts = entry["failure"].get(subject, {})
                lines.append(
                    f"{'':<15} {subject} failures: {counts.get('failed')} of {counts.get('tests')} "
                    f"tests ({'exact per-test counts' if counts.get('exact') else 'NOT exact'})"
                )
                if not counts.get("exact"):
                    problems.append(f"{site}: {subject} failure rate not on exact per-test counts")
        elif flags:
            shown_flags = ", ".join(
                f"{f['level']} {f['rule']} {f['subject']} (q = {f['q']})" for f in flags
            )
            problems.append(f"{site}: well-behaved but flagged: {shown_flags}")
    return "\n".join(lines), problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-report", type=Path)
    parser.add_argument("--work", default="demo-work", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    periods = [parse_period(p) for p in PERIODS]
    period = periods[-1]
    run("rarenet-coordinator", "init", "--data-dir", str(args.work / "coordinator"))
    coordinator, port = start_coordinator(args.work)
    print(
        f"coordinator on 127.0.0.1:{port} (pid {coordinator.pid}); {len(LABS)} labs; periods "
        f"{', '.join(p.label for p in periods)}"
    )
    try:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=3) as pool:
            jobs = [
                pool.submit(lab, args.work, site, profile, port, periods, seed)
                for seed, (site, (profile, _)) in enumerate(LABS.items(), start=1)
            ]
            for job in jobs:
                job.result()
        print(
            f"{len(LABS)} labs enrolled, ingested and submitted signed summaries; receipts verified"
        )
        shutil.rmtree(args.out, ignore_errors=True)
        run(
            "rarenet-coordinator",
            "benchmark",
            "--data-dir",
            str(args.work / "coordinator"),
            "--period",
            period.label,
            "--out",
            str(args.out),
        )
    finally:
        coordinator.send_signal(signal.SIGTERM)
        coordinator.wait(timeout=30)
    benchmark = json.loads((args.out / "benchmark.json").read_text())
    text, problems = table(benchmark)
    print(f"\nBenchmark {period.label} (standard {benchmark['standard']['version']}):\n{text}\n")
    print(
        f"report: {args.out / 'index.html'} and {args.out / 'benchmark.json'} "
        f"({time.monotonic() - started:.0f} s)"
    )
    for problem in problems:
        print(f"DEMO CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
