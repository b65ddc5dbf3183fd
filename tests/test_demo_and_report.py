"""The demo network end to end (separate processes, real gRPC), and its report in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The demo network takes minutes to set up: `make test-all` runs it (once, for both tests).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.run",
            "--out",
            str(work / "report"),
            "--work",
            str(work / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, work / "report"


def test_demo_runs_and_flags_the_planted_sites(demo) -> None:
    result, report = demo
    assert result.returncode == 0, result.stdout + result.stderr
    assert (report / "index.html").stat().st_size > 10_000
    benchmark = json.loads((report / "benchmark.json").read_text())
    sites = benchmark["sites"]
    assert len(sites) == 6

    def rules(site):
        return {(f["rule"], f["subject"], f["level"]) for f in sites[site]["flags"]}

    # The DNA-only lab misses MET exon 14 skipping: the method-class test (DNA-only labs against
    # RNA-capable ones) finds it. Its own quarter's count carries bounded cell-key noise in each
    # of its cells (docs/privacy.md): a few MET exon 14 positives in ~1070 tests may be released
    # as several more, so the single-period funnel is not always sure enough to flag it (one
    # clean-clone run in three had no funnel flag); the funnel or the two-quarter window does.
    assert {("method_class", "MET_EX14", level) for level in ("alert", "alarm")} & rules(
        "lab-dnaonly"
    )
    own = {(rule, level) for rule, subject, level in rules("lab-dnaonly") if subject == "MET_EX14"}
    assert own & {
        (rule, level)
        for rule in ("positivity_funnel", "rare_driver_window")
        for level in ("alert", "alarm")
    }
    assert ("turnaround", "all specimens", "alarm") in rules("lab-slow")
    assert ("failure_rate", "cytology", "alarm") in rules("lab-cytofail")
    for site in ("lab-beijing", "lab-shanghai", "lab-guangzhou"):
        assert not sites[site]["flags"], site  # calibrated flags: none on a well-behaved lab
    assert benchmark["method_version"]
    for flag in benchmark["flags"]:
        assert flag["source"] and flag["message"] and flag["figures"], flag
        if not flag["rule"].startswith("eqa"):
            assert 0 <= flag["p"] <= flag["q"] <= 0.05, flag
            assert f"p = {flag['p']:.2g}" in flag["message"], flag
    # Each cytology test is counted once, not once per biomarker (~11 times).
    cytology = sites["lab-cytofail"]["failure"]["cytology"]
    assert cytology["strata_failed_sum"] > 8 * cytology["failed"]
    assert cytology["exact"] is True  # from the node's tests per specimen, not a proxy
    assert re.search(
        r"cytology failures: \d+ of \d+ tests \(exact per-test counts\)", result.stdout
    )
    # The table printed at the end names the misbehaving sites (the DNA-only lab's few MET exon
    # 14 positives carry bounded noise, so it may stand at alert rather than alarm).
    for site, levels in (
        ("lab-dnaonly", "alert|alarm"),
        ("lab-slow", "alarm"),
        ("lab-cytofail", "alarm"),
    ):
        assert re.search(rf"{site}\s+\S+\s+({levels})", result.stdout), result.stdout
    for name in ("strata.csv", "flags.csv", "concordance.csv", "network.csv"):
        assert (report / name).read_text().count("\n") > 1, name


def chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


def test_report_renders_in_headless_chromium(demo, tmp_path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Chromium: .ci/run installs Debian's chromium")
        pytest.skip("no Chromium on this machine (apt-get install chromium); CI installs it")
    _, report = demo
    page = (report / "index.html").as_uri()
    html = (report / "index.html").read_text()
    assert not re.search(r'(src|href)="https?://', html), "the page must be self-contained"
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            *profile,
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    figures = re.findall(
        r'<figure class="funnel" data-biomarker="([A-Z0-9_]+)">\s*<svg', dom.stdout
    )
    assert len(figures) == 11 and "MET_EX14" in figures
    assert dom.stdout.count("<path") > 100  # the plots were drawn, not left empty
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "benchmark-report.png"
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            *profile,
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            page,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 50_000
