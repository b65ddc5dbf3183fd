"""benchmark dict -> benchmark.json, CSV tables, the network report (index.html, plots inline as
SVG) and, for every lab, its individual report (labs/SITE.html, optionally .pdf).

benchmark.json is written exactly as computed (auditors recompute it); what the report adds from
the ledger (corrective actions, persistent flags, metadata, the testing-assistance directory) is
in followup.json, from coordinator/followup.py."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from markupsafe import Markup

from coordinator import second_process
from coordinator.lab_view import NetworkContext, followup_by_site, method_classes, site_view
from coordinator.standards import Standard
from method.report_bytes import benchmark_bytes
from rendering import csv_safe, lab_report, pdf, svg
from rendering.environment import environment
from rendering.i18n import LANGUAGES, Reader
from rendering.labels import METHOD_CLASSES, label
from rendering.plots import Funnel, funnel, funnel_pair, points_of

TEMPLATES = Path(__file__).parent / "templates"
DETAIL_LIMIT = 100  # more sites than this: one page per site, linked from the index

CSV_TABLES = {
    "strata.csv": (
        "site_id",
        "biomarker",
        "method",
        "specimen",
        "tests",
        "positive",
        "negative",
        "failed",
        "equivocal",
        "withheld",
        "rate",
        "ci95",
        "network_rate",
        "status",
    ),
    "flags.csv": ("site_id", "rule", "level", "subject", "message", "source"),
    "concordance.csv": (
        "site_id",
        "kind",
        "biomarker",
        "index_method",
        "comparator_method",
        "a",
        "b",
        "c",
        "d",
        "excluded_failed",
        "ppa",
        "ppa_ci95",
        "npa",
        "npa_ci95",
        "opa",
        "kappa",
        "kappa_ci95",
    ),
    "network.csv": (
        "biomarker",
        "method",
        "specimen",
        "tests",
        "positive",
        "negative",
        "failed",
        "equivocal",
        "rate",
        "ci95",
    ),
}
FOLLOWUP_TABLES = {
    "actions.csv": (
        "site_id",
        "action_id",
        "flag_period",
        "rule",
        "subject",
        "root_cause",
        "action",
        "due",
        "status",
        "closed_on",
        "closing_note",
        "state",
        "leaf_index",
    ),
    "persistent.csv": ("site_id", "indicator", "subject", "periods", "flagged_in"),
}


def _csv_rows(name: str, benchmark: dict, followup: dict) -> list[dict]:
    if name == "strata.csv":
        return [r for s in benchmark["sites"].values() for r in s["strata"]]
    if name == "flags.csv":
        return benchmark["flags"]
    if name == "concordance.csv":
        return [
            {"site_id": site, **t}
            for site, s in benchmark["sites"].items()
            for t in s["concordance"]
        ] + [{"site_id": "(network)", **t} for t in benchmark["network"]["concordance"]]
    if name == "actions.csv":
        today = _today(followup)
        return [
            {**a, "state": lab_report.action_state(a, today)} for a in followup.get("actions", [])
        ]
    if name == "persistent.csv":
        return followup.get("persistent", [])
    return benchmark["network"]["strata"]


def _today(followup: dict) -> dt.date:
    generated = followup.get("meta", {}).get("generated_at")
    return dt.datetime.fromisoformat(generated).date() if generated else dt.date.today()


def default_language(standard: Standard) -> str:
    """The report language a standard sets (`[report] language`), else English."""
    language = str(standard.data.get("report", {}).get("language", "en"))
    if language not in LANGUAGES:
        raise ValueError(
            f"the standard's [report] language {language!r} is not one of {', '.join(LANGUAGES)}"
        )
    return language


def page_name(site_id: str) -> str:
    """The file of a lab's page under labs/ (a site id is never trusted as a path)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", site_id).lstrip(".") + ".html"


def chance(benchmark: dict) -> dict:
    """What chance alone would give under the method's false-discovery control (method/flags.py):
    how many site x indicator tests were made, and the q levels that bound the share of false
    flags among the alerts and the alarms."""
    method = benchmark.get("method") or {}
    flagged = [f for f in benchmark["flags"] if f.get("q") is not None]
    return {
        "tests": sum((method.get("families") or {}).values()),
        "alert_q": method.get("alert_q", 0.05),
        "alarm_q": method.get("alarm_q", 0.01),
        "alerts": sum(f["level"] == "alert" for f in flagged),
        "alarms": sum(f["level"] == "alarm" for f in flagged),
    }


def network_funnels(
    reader: Reader, benchmark: dict, ctx: NetworkContext, named: bool, anonymous_too: bool = False
) -> dict[str, Funnel]:
    """Each biomarker's funnel, labs named or not; with `anonymous_too` (named ones for the index
    when every lab's page follows), the anonymous ones come from the same drawings. Kept in `ctx`:
    a report run draws each funnel once."""
    key = (reader.lang, named)
    if key not in ctx.funnels:
        positivity = sorted(benchmark["network"]["positivity"].items())
        if named and anonymous_too:
            points = {b: points_of(benchmark["sites"], b, True) for b, _ in positivity}
            ctx.funnels.update(_funnel_pairs(reader.lang, positivity, ctx.curves, points))
        else:
            ctx.funnels[key] = {
                b: funnel(
                    reader, b, net, ctx.curves[b], points_of(benchmark["sites"], b, named), named
                )
                for b, net in positivity
            }
    return ctx.funnels[key]


def _funnel_pairs(
    lang: str, positivity: list[tuple[str, dict]], curves: dict, points: dict[str, list]
) -> dict[tuple[str, bool], dict[str, Funnel]]:
    """Each biomarker's funnel drawn once, anonymous and named (from the same drawing), as
    NetworkContext.funnels keeps them. It reads no site's entry: `points` are read before."""
    reader = Reader(lang)
    pairs = {b: funnel_pair(reader, b, net, curves[b], points[b]) for b, net in positivity}
    return {
        (lang, False): {b: pair[0] for b, pair in pairs.items()},
        (lang, True): {b: pair[1] for b, pair in pairs.items()},
    }


def _network_trends(reader: Reader, ctx: NetworkContext) -> Markup | None:
    periods = ctx.periods
    if not ctx.trend_network:
        return None
    panels = [
        (label(reader, "biomarker", b), [None] * len(periods), rates)
        for b, rates in ctx.trend_network.items()
    ]
    return svg.small_multiples(
        panels,
        periods,
        "",
        reader._("network"),
        reader._("Network positivity by period"),
        fmt=lambda v: reader.pct(v, 1),
    )


def render_index(
    benchmark: dict,
    ctx: NetworkContext,
    followup: dict,
    lang: str,
    lab_pages: bool,
) -> str:
    reader = Reader(lang)
    sites = benchmark["sites"]
    today = _today(followup)
    named = network_funnels(reader, benchmark, ctx, named=True, anonymous_too=lab_pages)
    detail = len(sites) <= DETAIL_LIMIT
    persistent = followup.get("persistent", [])
    persistent_sites = {m["site_id"] for m in persistent}
    actions = [
        {**a, "state": lab_report.action_state(a, today)} for a in followup.get("actions", [])
    ]
    league = sorted(
        sites.values(),
        key=lambda s: (
            {"alarm": 0, "alert": 1, "ok": 2}[s["status"]],
            -len(s["flags"]),
            s["site_id"],
        ),
    )
    sections = {}
    if detail:
        by_site = followup_by_site(followup)
        for s in league:
            view = site_view(ctx, s["site_id"], followup, by_site)
            periods = view["history"]["periods"]
            panels = [
                (
                    label(reader, "biomarker", b),
                    own,
                    view["history"]["network"].get(b, [None] * len(periods)),
                )
                for b, own in view["history"]["own"].items()
            ]
            sections[s["site_id"]] = {
                "trend": svg.small_multiples(
                    panels,
                    periods,
                    s["site_id"],
                    reader._("network"),
                    reader._("Positivity by period"),
                    fmt=lambda v: reader.pct(v, 1),
                )
                if panels
                else None,
                "glance": lab_report.glance(reader, view),
                "todo": [
                    {"flag": f, "text": lab_report.sentence(reader, f, s)}
                    for f in sorted(s["flags"], key=lambda f: f["level"] != "alarm")
                ],
            }
    network_methods = [
        (b, cls, cell)
        for b, classes in sorted(method_classes(benchmark["network"]["strata"]).items())
        for cls, cell in classes.items()
    ]
    env = environment(reader, TEMPLATES)
    return env.get_template("benchmark.html").render(
        b=benchmark,
        funnels={b: Markup(f.svg) for b, f in named.items()},
        trends=_network_trends(reader, ctx),
        league=league,
        detail=detail,
        sections=sections,
        lab_pages=lab_pages,
        page_name=page_name,
        meta=followup.get("meta", {}),
        chance=chance(benchmark),
        actions=actions,
        persistent=persistent,
        persistent_sites=persistent_sites,
        directory=followup.get("directory", []),
        network_methods=network_methods,
        method_class_names=METHOD_CLASSES,
        network_failure=ctx.failure,
        network_turnaround=ctx.turnaround,
    )


class LabPages:
    """Every lab's individual report in one folder (SITE.html and, with as_pdf, SITE.pdf), written
    for any share of the labs. The funnels' background is drawn once; each page lays its lab's
    point over it."""

    def __init__(
        self,
        benchmark: dict,
        out: Path,
        followup: dict | None = None,
        lang: str = "en",
        as_pdf: bool = False,
        ctx: NetworkContext | None = None,
        network_link: str | None = "../index.html",
    ) -> None:
        self.benchmark = benchmark
        self.out = out
        self.followup = followup or {}
        self.lang = lang
        self.as_pdf = as_pdf
        self.ctx = ctx or NetworkContext.of(benchmark)
        self.network_link = network_link
        self.base = network_funnels(Reader(lang), benchmark, self.ctx, named=False)
        self.today = _today(self.followup)
        self.by_site = followup_by_site(self.followup)

    def write(self, sites: list[str]) -> list[Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        return [path for site_id in sites for path in self._write_one(site_id)]

    def write_from(self, sites: list[str], take: Callable[[], int | None]) -> list[Path]:
        """The pages of `sites[i]` for each i that `take` gives, until it gives None."""
        self.out.mkdir(parents=True, exist_ok=True)
        written = []
        while (i := take()) is not None:
            written += self._write_one(sites[i])
        return written

    def _write_one(self, site_id: str) -> list[Path]:
        pieces = lab_report.render_pieces(
            site_view(self.ctx, site_id, self.followup, self.by_site),
            self.lang,
            funnels=self.base,
            today=self.today,
            network_link=self.network_link,
        )
        path = self.out / page_name(site_id)
        write_pieces(path, pieces)
        if not self.as_pdf:
            return [path]
        html = b"".join(pieces).decode("utf-8")
        return [path, pdf.print_html(html, path.with_suffix(".pdf"))]


def write_pieces(path: Path, pieces: list[bytes]) -> None:
    """`path.write_bytes(b"".join(pieces))` in one gathering write: a lab's page (433 KB at 3,000
    labs, nine tenths of it funnels shared by every page) is never copied into one buffer first."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        done = os.writev(fd, pieces)
        if done < sum(map(len, pieces)):  # a short write (a signal, a full disk): the rest
            with open(fd, "wb", closefd=False) as fh:
                fh.write(b"".join(pieces)[done:])
    finally:
        os.close(fd)


def write_lab_reports(
    benchmark: dict,
    out: Path,
    followup: dict | None = None,
    lang: str = "en",
    as_pdf: bool = False,
    ctx: NetworkContext | None = None,
    network_link: str | None = "../index.html",
) -> list[Path]:
    """Every lab's individual report in out/ (SITE.html and, with as_pdf, SITE.pdf)."""
    pages = LabPages(benchmark, out, followup, lang, as_pdf, ctx, network_link)
    return pages.write(sorted(benchmark["sites"]))


def write_benchmark(benchmark: dict, out: Path, encoded: bytes | None = None) -> list[Path]:
    """benchmark.json and the benchmark's CSV tables in out/: what needs no follow-up, so a report
    run writes them while the flag history is still being found. benchmark.json holds
    method.report_bytes.benchmark_bytes(benchmark): `encoded` if given (the bytes
    benchmark.compute_report kept, not encoded a second time), else encoded here."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "benchmark.json"
    path.write_bytes(benchmark_bytes(benchmark) if encoded is None else encoded)
    written = [path]
    for name, columns in CSV_TABLES.items():
        path = out / name
        csv_safe.write(path, columns, _csv_rows(name, benchmark, {}))
        written.append(path)
    return written


def with_lab_pages(benchmark: dict, lab_reports: bool | None) -> bool:
    """Whether a report has a page per lab: asked for, or by default above DETAIL_LIMIT labs."""
    return len(benchmark["sites"]) > DETAIL_LIMIT if lab_reports is None else lab_reports


T = TypeVar("T")


def drawn(
    benchmark: dict,
    lang: str = "en",
    lab_reports: bool | None = None,
    meanwhile: Callable[[], T] | None = None,
    processes: int = 1,
) -> tuple[NetworkContext, T | None]:
    """The network's side of the report with its funnels drawn: what needs no follow-up, so a
    report run draws it while the flag history is still being found (see `write_followup`); and
    what `meanwhile()` returned. With two processes the funnels (about 2 s of matplotlib at 3,000
    labs) are drawn in a forked second process while this one runs `meanwhile` (writing
    benchmark.json and the CSV tables); they come back pickled (about 1 MB). Where no second
    process can be had, or it fails, they are drawn here: the same drawings."""
    ctx = NetworkContext.of(benchmark)
    anonymous_too = with_lab_pages(benchmark, lab_reports)
    child = None
    if processes > 1 and meanwhile is not None and anonymous_too:
        # Each lab's point is read here, before the fork: the child reads no site's entry (and
        # so copies none of the pages this process holds them in).
        positivity = sorted(benchmark["network"]["positivity"].items())
        points = {b: points_of(benchmark["sites"], b, True) for b, _ in positivity}
        curves = ctx.curves
        started = second_process.start(
            lambda: _funnel_pairs(lang, positivity, curves, points), "funnels"
        )
        child = None if isinstance(started, str) else started
    done = meanwhile() if meanwhile is not None else None
    if child is not None:
        try:
            answer = child.answer()
            assert isinstance(answer, dict)
            ctx.funnels.update(answer)
        except second_process.Failed:
            pass  # drawn here, below
    if (lang, True) not in ctx.funnels:
        network_funnels(Reader(lang), benchmark, ctx, named=True, anonymous_too=anonymous_too)
    return ctx, done


def write_followup(
    benchmark: dict,
    out: Path,
    progress: Callable[[str], None] | None = None,
    followup: dict | None = None,
    lang: str = "en",
    lab_reports: bool | None = None,
    lab_pdfs: bool = False,
    processes: int = 1,
    ctx: NetworkContext | None = None,
) -> list[Path]:
    """The rest of the report after `write_benchmark` (see `write`): the follow-up's tables and
    followup.json, index.html and the labs' pages. With `processes` 2 (a command of its own,
    never inside a threaded server: it forks), a second process writes half the labs' pages.
    `ctx`: `drawn(benchmark, lang, lab_reports)[0]`, if already made."""
    out.mkdir(parents=True, exist_ok=True)
    followup = followup or {}
    written = []
    for name, columns in (FOLLOWUP_TABLES if followup else {}).items():
        path = out / name
        csv_safe.write(path, columns, _csv_rows(name, benchmark, followup))
        written.append(path)
    if followup:
        path = out / "followup.json"
        path.write_text(
            json.dumps(followup, sort_keys=True, ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8",
        )
        written.append(path)
    if progress:
        progress("drawing the network report")
    ctx = ctx or drawn(benchmark, lang, lab_reports)[0]  # before a second process starts on pages
    with_labs = with_lab_pages(benchmark, lab_reports)
    sites = sorted(benchmark["sites"])
    shared: tuple[second_process.Child, Meeting] | None = None
    if with_labs:
        pages = LabPages(benchmark, out / "labs", followup, lang, lab_pdfs, ctx)
        shared = _share_pages(pages, sites, progress) if processes > 1 else None
    try:
        path = out / "index.html"
        path.write_text(render_index(benchmark, ctx, followup, lang, with_labs), encoding="utf-8")
        written.append(path)
        if with_labs:
            if progress:
                progress(f"writing {len(sites)} lab reports")
            if shared:
                child, meeting = shared
                mine = pages.write_from(sites, meeting.next_front)
                written += mine + _shared_pages(pages, child, sites[len(mine) :], progress)
            else:
                written += pages.write(sites)
    finally:
        if shared:
            shared[0].stop()
    return written


PAGES_SHARED_ABOVE = 200  # labs: fewer pages take less time than starting a second process


LOCK_WAIT = 60.0  # seconds; the lock is held for a few instructions


class Meeting:
    """One list of pages written from both ends, this process from the front and the second
    process from the back, until they meet: both finish together, however their speeds differ
    (this one writes the index first; another program may hold one core), where halves fixed in
    advance leave one process waiting for the other."""

    def __init__(self, count: int) -> None:
        self._lock = multiprocessing.Lock()
        # The next page from the front, and one past the next from the back; shared with the
        # forked child.
        self._ends = multiprocessing.RawArray("q", [0, count])

    def next_front(self) -> int | None:
        if not self._lock.acquire(timeout=LOCK_WAIT):  # the other died holding it: stop here
            return None
        try:
            i = self._ends[0]
            if i >= self._ends[1]:
                return None
            self._ends[0] = i + 1
            return int(i)
        finally:
            self._lock.release()

    def next_back(self) -> int | None:
        if not self._lock.acquire(timeout=LOCK_WAIT):  # the other died holding it: stop here
            return None
        try:
            j = self._ends[1] - 1
            if j < self._ends[0]:
                return None
            self._ends[1] = j
            return int(j)
        finally:
            self._lock.release()


def _share_pages(
    pages: LabPages, sites: list[str], progress: Callable[[str], None] | None
) -> tuple[second_process.Child, Meeting] | None:
    """A second process writing the labs' pages from the last towards the first (while this one
    writes the index, then the pages from the first) until the two meet, or None where there are
    few, PDFs too (printing starts its own browser), or no second process."""
    if pages.as_pdf or len(sites) <= PAGES_SHARED_ABOVE:
        return None
    meeting = Meeting(len(sites))
    child = second_process.start(
        lambda: pages.write_from(sites, meeting.next_back)[::-1], "rarenet-lab-pages"
    )
    if isinstance(child, str):
        if progress:
            progress(f"{child}: every lab's page is written here")
        return None
    if progress:
        progress(f"a second process shares the {len(sites)} lab reports, from the last")
    return child, meeting


def _shared_pages(
    pages: LabPages,
    child: second_process.Child,
    theirs: list[str],
    progress: Callable[[str], None] | None,
) -> list[Path]:
    """The pages the second process wrote (`theirs`: those this one left), or, if it failed,
    those pages written here."""
    try:
        written = child.answer()
    except second_process.Failed as exc:
        if progress:
            progress(f"the second process writing lab pages failed ({exc}); writing them here")
        return pages.write(theirs)
    assert isinstance(written, list)
    return written


def write(
    benchmark: dict,
    out: Path,
    progress: Callable[[str], None] | None = None,
    followup: dict | None = None,
    lang: str = "en",
    lab_reports: bool | None = None,
    lab_pdfs: bool = False,
    encoded: bytes | None = None,
) -> list[Path]:
    """The network report in out/; with lab_reports (the default above DETAIL_LIMIT sites, where
    the index links to them instead of holding a section per site) every lab's report in
    out/labs/. `encoded`: benchmark.json's bytes if already made (write_benchmark)."""
    return write_benchmark(benchmark, out, encoded) + write_followup(
        benchmark, out, progress, followup, lang, lab_reports, lab_pdfs
    )
