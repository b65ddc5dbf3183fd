"""What makes a thousand labs' pages cheap changes no byte of them: the page templates compiled
with their messages translated and their values escaped as text read as plain Jinja (with its
i18n extension) renders them; each funnel joined into a page around the lab's mark is the funnel
with the lab ringed; the two processes writing the pages share them out exactly once, and a
second process that fails part way leaves no page unwritten."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from markupsafe import Markup, escape

from coordinator import benchmark, report, second_process
from coordinator.lab_view import NetworkContext, site_view
from rendering import lab_report
from rendering.environment import TEMPLATES, environment
from rendering.escaping import html_text
from rendering.i18n import Reader
from tests.test_reports import HOSTILE_SITE, STANDARD, summary

LABS = 9
SITES = [f"lab-{i:02d}" for i in range(LABS - 1)] + [HOSTILE_SITE + "<b>&'\"</b>"]


@pytest.fixture(scope="module")
def network() -> dict:
    latest = {site: (i, summary(site, 2 + 3 * (i % 5), i % 4)) for i, site in enumerate(SITES)}
    return benchmark.compute_from(
        benchmark.Inputs({"2026Q3": latest}, set(), []), "2026Q3", STANDARD
    )


FOLLOWUP = {
    "meta": {
        "generated_at": "2026-11-25T10:00:00+00:00",
        "data_cutoff": "2026-11-20T08:00:00+00:00",
    },
    "actions": [
        {
            "site_id": SITES[-1],
            "action_id": 1,
            "flag_period": "2026Q3",
            "rule": "failure_rate",
            "subject": "cytology",
            "root_cause": "<script>alert('x')</script> & \"quotes\" 100%",
            "action": "retrain <staff>",
            "due": "2026-12-01",
            "status": "open",
        }
    ],
    "persistent": [],
}


class _Html:
    def __html__(self) -> str:
        return "<i>already markup</i>"


class _Number:
    def __str__(self) -> str:
        return "<3 & >2"


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "<script>alert('x')</script> & \"q\"",
        "",
        Markup("<b>kept</b>"),
        0,
        -12,
        True,
        None,
        2.5e-7,
        float("nan"),
        _Html(),
        _Number(),
        Undefined(),
        "中文 <标签>",
    ],
)
def test_html_text_is_markupsafe_escape_as_text(value) -> None:
    assert html_text(value) == str(escape(value))
    assert type(html_text(value)) in (str, Markup)


def plain_jinja(reader: Reader) -> Environment:
    """The page templates as Jinja alone renders them: its i18n extension's calls, its escape."""
    ours = environment(reader)
    env = Environment(
        loader=FileSystemLoader([str(TEMPLATES)]),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=reader._, ngettext=reader.ngettext, newstyle=True
    )
    env.filters.update({k: v for k, v in ours.filters.items() if k not in env.filters})
    env.globals["reader"] = reader
    return env


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pages_compiled_for_speed_read_as_plain_jinja_renders_them(network, lang) -> None:
    ctx = NetworkContext.of(network)
    by_site = report.followup_by_site(FOLLOWUP)
    reference = plain_jinja(Reader(lang)).get_template("lab_report.html")
    for site in SITES:
        view = site_view(ctx, site, FOLLOWUP, by_site)
        template, context, _marked = lab_report._page(view, lang, None, None, "../index.html")
        ours = template.render(context)
        assert ours == reference.render(context)
        assert "<script>" not in ours and "<staff>" not in ours
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quotes&#34; 100%" in ours


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_each_funnel_joined_into_a_page_is_the_funnel_with_the_lab_ringed(network, lang) -> None:
    ctx = NetworkContext.of(network)
    base = report.network_funnels(Reader(lang), network, ctx, named=False)
    site = SITES[-1]
    page = lab_report.render(site_view(ctx, site), lang, funnels=base)
    figures = re.findall(
        r'<figure class="funnel" id="funnel-[^"]*" data-biomarker="([^"]*)">(.*?)</figure>',
        page,
        re.S,
    )
    positivity = network["sites"][site]["positivity"]
    assert len(figures) == len(positivity) == 2
    for biomarker, drawing in figures:
        p = positivity[Markup(biomarker).unescape()]
        assert drawing == base[Markup(biomarker).unescape()].highlight(p["valid"], p["rate"], site)
        assert drawing.count('class="own-point"') == 1
        assert str(escape(site)) in drawing
    assert "\x00" not in page


def test_two_processes_meeting_in_the_middle_take_each_page_once() -> None:
    meeting = report.Meeting(2000)
    child = second_process.start(
        lambda: list(iter(meeting.next_back, None)), "rarenet-test-meeting"
    )
    assert isinstance(child, second_process.Child)
    mine = list(iter(meeting.next_front, None))
    theirs = child.answer()
    assert isinstance(theirs, list)
    assert mine == list(range(len(mine)))  # from the first, in order
    assert theirs == list(range(1999, len(mine) - 1, -1))  # from the last, in order
    assert meeting.next_front() is None and meeting.next_back() is None


def test_a_second_process_failing_part_way_leaves_no_page_unwritten(
    network, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(report, "PAGES_SHARED_ABOVE", 4)
    parent = os.getpid()
    write_one = report.LabPages._write_one
    done: list[str] = []

    def failing_in_the_child(self: report.LabPages, site_id: str) -> list[Path]:
        if os.getpid() != parent and done:
            os._exit(5)  # the child dies after its first page
        done.append(site_id)
        return write_one(self, site_id)

    one = report.write_followup(network, tmp_path / "one", lab_reports=True, processes=1)
    monkeypatch.setattr(report.LabPages, "_write_one", failing_in_the_child)
    said: list[str] = []
    two = report.write_followup(
        network, tmp_path / "two", progress=said.append, lab_reports=True, processes=2
    )
    assert any("failed (it ended with exit code 5); writing them here" in m for m in said)
    assert [p.relative_to(tmp_path / "two") for p in two] == [
        p.relative_to(tmp_path / "one") for p in one
    ]
    for path in one:
        assert (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes() == (
            path.read_bytes()
        )
