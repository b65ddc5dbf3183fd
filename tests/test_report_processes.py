"""A report run's second process (coordinator/second_process.py) changes no byte: the labs' pages
written half by a second process are the pages one process writes, in the same order; without a
second process, or when it fails, the report is still whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coordinator import benchmark, report, second_process
from coordinator.lab_view import NetworkContext, site_view
from rendering import lab_report
from tests.test_reports import STANDARD, summary

LABS = 12


@pytest.fixture(scope="module")
def network() -> dict:
    latest = {
        f"lab-{i:02d}": (i, summary(f"lab-{i:02d}", 2 + 3 * (i % 5), i % 4)) for i in range(LABS)
    }
    return benchmark.compute_from(
        benchmark.Inputs({"2026Q3": latest}, set(), []), "2026Q3", STANDARD
    )


def written(network: dict, out: Path, processes: int) -> tuple[list[str], list[str]]:
    said: list[str] = []
    paths = report.write_followup(
        network, out, progress=said.append, lab_reports=True, processes=processes
    )
    return [str(p.relative_to(out)) for p in paths], said


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_pages_shared_with_a_second_process_are_the_same_pages(
    network, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(report, "PAGES_SHARED_ABOVE", 4)  # share even this small network's pages
    alone, _ = written(network, tmp_path / "one", processes=1)
    shared, said = written(network, tmp_path / "two", processes=2)
    assert f"a second process shares the {LABS} lab reports, from the last" in said
    assert shared == alone  # the same files, listed in the same order
    assert len([p for p in alone if p.startswith("labs/")]) == LABS
    assert files(tmp_path / "two") == files(tmp_path / "one")


def test_without_a_second_process_every_page_is_written_here(
    network, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(report, "PAGES_SHARED_ABOVE", 4)
    alone, _ = written(network, tmp_path / "one", processes=1)
    monkeypatch.setattr(second_process, "START_METHOD", "no-such-start-method")
    fallback, said = written(network, tmp_path / "two", processes=2)
    assert any("every lab's page is written here" in m for m in said)
    assert fallback == alone
    assert files(tmp_path / "two") == files(tmp_path / "one")


def test_a_failed_child_is_reported_not_taken_for_an_answer() -> None:
    def raising() -> object:
        raise ValueError("the lab pages folder is full")

    child = second_process.start(raising, "rarenet-test")
    assert isinstance(child, second_process.Child) and child.pid != os.getpid()
    with pytest.raises(second_process.Failed, match="ValueError: the lab pages folder is full"):
        child.answer()
    dying = second_process.start(lambda: os._exit(3), "rarenet-test")
    assert isinstance(dying, second_process.Child)
    with pytest.raises(second_process.Failed, match="exit code 3"):
        dying.answer()
    answering = second_process.start(lambda: {"pid": os.getpid()}, "rarenet-test")
    assert isinstance(answering, second_process.Child)
    assert answering.answer() == {"pid": answering.pid}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_as_utf8_is_the_page_encoded(network, lang) -> None:
    ctx = NetworkContext.of(network)
    view = site_view(ctx, "lab-03")
    page = lab_report.render(view, lang)
    assert not page.isascii()  # the pieces encoded one by one include non-ASCII ones
    assert lab_report.render_utf8(view, lang) == page.encode("utf-8")


def test_funnels_drawn_in_a_second_process_are_the_funnels_drawn_here(network, monkeypatch) -> None:
    """While the caller writes benchmark.json and the CSV tables (`meanwhile`), a second process
    draws the funnels: the very drawings one process makes; if the child fails, here."""
    here, nothing = report.drawn(network, "en", True)
    assert nothing is None and (("en", True) in here.funnels and ("en", False) in here.funnels)
    beside, done = report.drawn(network, "en", True, meanwhile=lambda: "written", processes=2)
    assert done == "written"
    assert beside.funnels == here.funnels
    started: list[int] = []
    real_start = second_process.start

    def failing(work, name):  # the child's work raises: its answer is Failed
        child = real_start(lambda: 1 / 0, name)
        started.append(1)
        return child

    monkeypatch.setattr(second_process, "start", failing)
    fallback, done = report.drawn(network, "en", True, meanwhile=lambda: "written", processes=2)
    assert started and done == "written" and fallback.funnels == here.funnels
