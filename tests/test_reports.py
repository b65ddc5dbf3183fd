"""The reports as people read them: safe CSV cells, names drawn literally, human labels, both
languages (every message translated), persistent marks, and the pages opened in real tools
(headless Chromium; poppler's pdffonts, pdftotext and pdftoppm for the PDF)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from coordinator import benchmark, report
from coordinator.followup import persistent_marks
from coordinator.lab_view import NetworkContext, for_lab, site_view
from coordinator.standards import load as load_standard
from protos.rarenet.v1 import summary_pb2 as pb
from rendering import lab_report, pdf
from rendering.csv_safe import neutral
from rendering.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent
STANDARD = load_standard(ROOT / "coordinator" / "standards" / "rarenet-nsclc-2026.1.toml")
HOSTILE_SITE = '=HYPERLINK("http://evil.example/","click")'
HOSTILE_BIOMARKER = "$\\frac{$"


def stratum(biomarker: str, method: str, specimen: str, pos: int, neg: int, failed: int):
    return pb.StratumCounts(
        biomarker=biomarker,
        method=method,
        specimen=specimen,
        histology_group="all",
        tests=pos + neg + failed,
        positive=pos,
        negative=neg,
        failed=failed,
    )


def summary(site: str, met_pos: int, cyto_failed: int, period: str = "2026Q3") -> pb.SiteSummary:
    """A lab with 400 MET exon 14 tests by DNA NGS and RNA NGS, and a hostile biomarker."""
    strata = []
    for method, pos in (("ngs_dna", met_pos // 3), ("ngs_dna_rna", met_pos - met_pos // 3)):
        strata.append(stratum("MET_EX14", method, "tissue", pos, 200 - pos, 0))
    strata.append(stratum("MET_EX14", "all", "tissue", met_pos, 400 - met_pos, 0))
    strata.append(stratum("MET_EX14", "all", "cytology", 2, 98 - cyto_failed, cyto_failed))
    strata.append(stratum(HOSTILE_BIOMARKER, "all", "tissue", 5, 95, 0))
    return pb.SiteSummary(
        site_id=site,
        period=period,
        schema_version=1,
        sequence=1,
        standard_version="2026.1",
        strata=strata,
        turnaround=[
            pb.TurnaroundHistogram(
                specimen="tissue",
                counts=[0, 5, 40, 30, 20, 10, 5, 2, 1, 1, 1, 3, 2],
                target_days=10,
            )
        ],
        concordance=[
            pb.ConcordanceTable(
                kind="inter_method",
                biomarker="ALK",
                index_method="ihc",
                comparator_method="fish",
                both_positive=6,
                both_negative=80,
            )
        ],
    )


SITES = {
    "lab-north": (8, 4),
    "lab-south": (9, 5),
    "lab-east": (7, 3),
    "lab-west": (8, 6),
    "lab-dna": (0, 40),  # no MET exon 14 found, many failed cytology samples
    HOSTILE_SITE: (8, 5),
}


@pytest.fixture(scope="module")
def network() -> dict:
    latest = {
        site: (i, summary(site, met, failed))
        for i, (site, (met, failed)) in enumerate(SITES.items())
    }
    inputs = benchmark.Inputs({"2026Q3": latest}, set(), [])
    return benchmark.compute_from(inputs, "2026Q3", STANDARD)


@pytest.fixture(scope="module")
def written(network, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    followup = {
        "meta": {
            "generated_at": "2026-11-25T10:00:00+00:00",
            "data_cutoff": "2026-11-20T08:00:00+00:00",
            "submitting": sorted(SITES),
            "missing": ["lab-quiet"],
            "volumes": {"total": 3000, "sites": {}},
            "tree_head": {"size": 7, "root": "ab" * 32},
        },
        "flag_history": {},
        "persistent": [
            {
                "site_id": "lab-dna",
                "indicator": "positivity",
                "subject": "MET_EX14",
                "periods": ["2026Q1", "2026Q2", "2026Q3"],
                "flagged_in": ["2026Q2", "2026Q3"],
            }
        ],
        "actions": [],
        "directory": [],
    }
    report.write(network, out, followup=followup, lab_reports=True)
    report.write(network, out / "zh", followup=followup, lang="zh", lab_reports=True)
    return out


def test_formula_cells_are_neutralised_in_every_csv(written) -> None:
    assert neutral("=1+1") == "'=1+1" and neutral("-2") == "'-2" and neutral("lab-a") == "lab-a"
    seen = 0
    for path in written.glob("*.csv"):
        with path.open(encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (path.name, cell)
                    seen += cell == "'" + HOSTILE_SITE
    assert seen >= 3  # strata, flags and concordance rows of the hostile lab, neutralised


def test_hostile_names_are_drawn_literally(written, network) -> None:
    assert HOSTILE_BIOMARKER in network["network"]["positivity"]
    html = (written / "index.html").read_text(encoding="utf-8")
    assert html.count('<figure class="funnel"') == 2
    assert "\\frac{" in html  # drawn as written, escaped for HTML, not read as mathematics
    assert 'href="http://evil' not in html and "=HYPERLINK(&#34;http" in html  # text, never a link


def test_no_raw_identifiers_on_the_pages(written) -> None:
    for page in [written / "index.html", *(written / "labs").glob("*.html")]:
        text = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
        text = re.sub(r"<svg.*?</svg>", " ", text, flags=re.S)
        for raw in (
            "in_control",
            "alarm_low",
            "alert_low",
            "tissue_plasma",
            "ngs_dna_rna",
            "inter_method",
        ):
            assert raw not in text, (page.name, raw)


def test_lab_report_marks_the_lab_on_every_funnel_and_names_no_peer(network) -> None:
    ctx = NetworkContext.of(network)
    html = lab_report.render(site_view(ctx, "lab-dna"), "en")
    funnels = re.findall(
        r'<figure class="funnel" id="funnel-[^"]*" data-biomarker="([^"]*)">(.*?)</figure>',
        html,
        re.S,
    )
    assert len(funnels) == 2
    for _, body in funnels:
        assert body.count('class="own-point"') == 1
    for peer in SITES:
        if peer != "lab-dna":
            assert peer not in html and "HYPERLINK" not in html
    # Red/amber/green at a glance, as the method flags (method 2026.2: q-values, docs/method.md):
    # MET exon 14 at 2 of 460 in one quarter is below the funnel's 95% limit but not a discovery
    # at q <= 0.05 among this period's tests, so its colour follows its flag status; 40 of 98
    # failed cytology samples are an alarm (red), and an indicator without a flag green.
    met_status = network["sites"]["lab-dna"]["positivity"]["MET_EX14"]["status"]
    colour = {"in_control": "green", "alert_low": "amber", "alarm_low": "red"}[met_status]
    assert re.search(rf'rag-{colour}">.*MET exon 14 skipping', html)
    assert re.search(r'rag-red">.*Failure rate.*cytology', html)
    assert re.search(r'rag-green">.*Failure rate.*tissue', html)
    # The node's path: the signed view with anonymous peers draws the same funnels itself.
    node_html = lab_report.render(for_lab(network, "lab-dna"), "zh")
    assert node_html.count('class="own-point"') == 2 and "个体报告" in node_html


def test_the_own_point_sits_where_the_data_put_it(network) -> None:
    """The ring is laid over the drawn funnel by the affine map recorded at drawing time: it must
    coincide with the lab's own dot that matplotlib drew."""
    ctx = NetworkContext.of(network)
    base = report.network_funnels(lab_report.Reader("en"), network, ctx, named=False)["MET_EX14"]
    p = network["sites"]["lab-north"]["positivity"]["MET_EX14"]
    marked = str(base.highlight(p["valid"], p["rate"], "lab-north"))
    circle = re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="7"', marked)
    assert circle is not None, marked
    cx, cy = (float(v) for v in circle.groups())
    dots = [
        (float(x), float(y))
        for x, y in re.findall(r'<use xlink:href="#[^"]+" x="([\d.]+)" y="([\d.]+)"', base.svg)
    ]
    assert dots and min(abs(x - cx) + abs(y - cy) for x, y in dots) < 0.5


def test_persistent_means_two_of_the_last_three_periods() -> None:
    periods = ["2026Q1", "2026Q2", "2026Q3", "2026Q4"]
    f = lambda rule, subject: {"rule": rule, "subject": subject, "level": "alert"}  # noqa: E731
    history = {
        "2026Q1": {"a": [f("failure_rate", "cytology")], "b": [f("turnaround", "all specimens")]},
        "2026Q2": {"a": [f("failure_rate", "cytology")], "c": [f("positivity_funnel", "MET_EX14")]},
        "2026Q3": {
            "b": [f("turnaround", "all specimens")],
            "c": [f("positivity_below_expected", "MET_EX14")],
        },
        "2026Q4": {"a": [f("failure_rate", "plasma")], "b": [f("turnaround", "all specimens")]},
    }
    marks = {
        (m["site_id"], m["indicator"], m["subject"]): m["flagged_in"]
        for m in persistent_marks(history, periods)
    }
    # a: cytology flagged in Q1 and Q2, but only Q2 is in the last three periods: not persistent.
    assert ("a", "failure_rate", "cytology") not in marks
    assert marks[("b", "turnaround", "all specimens")] == ["2026Q3", "2026Q4"]
    # Both positivity rules are one indicator.
    assert marks[("c", "positivity", "MET_EX14")] == ["2026Q2", "2026Q3"]
    assert len(marks) == 2


def test_every_message_has_a_chinese_translation() -> None:
    method_map = [
        ("rendering/**.py", "python"),
        ("coordinator/report.py", "python"),
        ("rendering/templates/**.html", "jinja2"),
        ("coordinator/templates/**.html", "jinja2"),
    ]
    used = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, keywords={"_": None, "N_": None, "gettext": None}
        )
        if isinstance(message, str)
    }
    assert len(used) > 150
    with (LOCALE_DIR / "zh" / "LC_MESSAGES" / "rarenet.po").open("rb") as fh:
        catalog = read_po(fh)
    missing = sorted(m for m in used if not ((entry := catalog.get(m)) and entry.string))
    assert not missing, f"untranslated (run pybabel update, then translate): {missing[:5]}"
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not fuzzy, fuzzy[:5]


def test_numbers_and_dates_follow_the_reader(written) -> None:
    en = (written / "index.html").read_text(encoding="utf-8")
    zh = (written / "zh" / "index.html").read_text(encoding="utf-8")
    assert "25 Nov 2026, 10:00 UTC" in en and "2026年11月25日 10:00 UTC" in zh
    assert '<html lang="zh-Hans">' in zh and "网络报告" in zh


# --- real tools -------------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def need(tool: str | None, what: str) -> str:
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no {what}: .ci/run installs it")
        pytest.skip(f"no {what} on this machine (Debian: apt-get install {what}); CI installs it")
    return tool


def dom(page: Path, tmp_path: Path) -> str:
    browser = need(pdf.browser(), "chromium")
    result = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    return result.stdout


@pytest.mark.slow
def test_pages_open_in_chromium_without_console_errors(written, tmp_path) -> None:
    index = dom(written / "index.html", tmp_path)
    assert len(re.findall(r'<figure class="funnel" data-biomarker="[^"]+">\s*<svg', index)) == 2
    for lang_dir in (written, written / "zh"):
        page = dom(lang_dir / "labs" / report.page_name("lab-dna"), tmp_path)
        figures = re.findall(r'<figure class="funnel".*?</figure>', page, re.S)
        assert len(figures) == 2 and all('class="own-point"' in f for f in figures)
        assert not re.search(r'(src|href)="https?://', page)


def fonts_in(pdf_path: Path) -> list[dict]:
    out = subprocess.run(
        ["pdffonts", str(pdf_path)], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in out.splitlines()[2:]:
        parts = line.split()
        # name, type..., encoding, emb, sub, uni, object, id
        rows.append({"name": parts[0], "emb": parts[-5], "uni": parts[-3]})
    return rows


@pytest.mark.slow
def test_the_chinese_pdf_embeds_its_fonts_and_draws_every_glyph(network, tmp_path) -> None:
    need(shutil.which("pdffonts"), "poppler-utils")
    cjk = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
    if not cjk.exists():
        need(None, "fonts-noto-cjk")
    ctx = NetworkContext.of(network)
    html = lab_report.render(site_view(ctx, "lab-dna"), "zh")
    out = pdf.print_html(html, tmp_path / "lab-dna.pdf")
    fonts = fonts_in(out)
    assert fonts and all(f["emb"] == "yes" for f in fonts), fonts
    assert all(f["uni"] == "yes" for f in fonts), fonts  # text maps back to Unicode
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "个体报告" in text and "状态一览" in text and "术语表" in text
    # No missing-glyph boxes: every character on the pages is in a font the page asks for.
    from fontTools.ttLib import TTCollection, TTFont
    from matplotlib import font_manager

    covered: set[int] = set()
    for face in TTCollection(str(cjk)).fonts:
        covered |= set(face.getBestCmap())
    covered |= set(TTFont(font_manager.findfont("DejaVu Sans")).getBestCmap())
    missing = sorted({c for c in text if not c.isspace() and ord(c) not in covered})
    assert not missing, missing
    png = tmp_path / "page"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(out), str(png)], check=True
    )
    first = next(tmp_path.glob("page*.png"))
    assert first.stat().st_size > 10_000  # a page with content, not a blank sheet


def test_the_standard_file_is_untouched_by_reports(written) -> None:
    b = json.loads((written / "benchmark.json").read_text(encoding="utf-8"))
    assert set(b) == {
        "period",
        "standard",
        "sites",
        "network",
        "eqa",
        "flags",
        "trends",
        "method_version",
        "method",
        "notes",
    }


def test_eqa_per_sub_scheme_and_the_methods_own_estimates(network) -> None:
    """EQA results grouped by biomarker (the sub-scheme), and keys a newer benchmark method adds
    (q on flags, patients likely missed with interval and cause) shown when present."""
    view = site_view(NetworkContext.of(network), "lab-dna")
    site = json.loads(json.dumps(view["site"]))
    site["eqa"] = {
        "2026-R2": {
            "points": 6,
            "max_points": 10,
            "score": 0.6,
            "passed": False,
            "errors": 2,
            "technical_failures": 0,
            "outcomes": {
                "S1/ALK": "correct",
                "S2/ALK": "correct",
                "S1/MET_EX14": "false_negative",
                "S3/MET_EX14": "correct",
                "S2/ROS1": "wrong_variant",
            },
        }
    }
    site["flags"][0]["q"] = 0.0123
    site["patients_likely_missed"] = {
        "MET_EX14": {"estimate": 6.4, "interval": [2.1, 11.9], "likely_cause": "DNA-only panel"}
    }
    html = lab_report.render({**view, "site": site}, "en")
    eqa = html[html.index('id="eqa"') : html.index('id="history"')]
    assert "6/10" in eqa and "fail" in eqa
    rows = re.findall(r"<tr><td class=\"l\">([^<]+)</td><td>(\d+)</td><td>(\d+)</td>", eqa)
    assert ("MET exon 14 skipping", "1", "2") in rows and ("ALK", "2", "2") in rows
    assert "false negative 1" in eqa and "wrong variant 1" in eqa
    assert "q = 0.012" in html
    missed = html[html.index('id="missed"') : html.index('id="turnaround"')]
    assert "6.4" in missed and "2.1–11.9" in missed and "DNA-only panel" in missed
    assert "Estimated by the benchmark method." in missed


@pytest.mark.slow
def test_more_than_100_labs_get_a_page_each_linked_from_the_index(tmp_path) -> None:
    latest = {f"lab-{i:03d}": (i, summary(f"lab-{i:03d}", 8, 4)) for i in range(101)}
    big = benchmark.compute_from(
        benchmark.Inputs({"2026Q3": latest}, set(), []), "2026Q3", STANDARD
    )
    report.write(big, tmp_path)
    pages = sorted(p.name for p in (tmp_path / "labs").glob("*.html"))
    assert len(pages) == 101
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert all(f'href="labs/{name}"' in index for name in pages)
    assert 'class="site"' not in index  # no section per lab on the index


def test_the_standard_sets_the_default_language(tmp_path) -> None:
    text = (ROOT / "coordinator" / "standards" / "rarenet-nsclc-2026.1.toml").read_text()
    (tmp_path / "zh.toml").write_text(text + '\n[report]\nlanguage = "zh"\n')
    (tmp_path / "xx.toml").write_text(text + '\n[report]\nlanguage = "klingon"\n')
    assert report.default_language(STANDARD) == "en"
    assert report.default_language(load_standard(tmp_path / "zh.toml")) == "zh"
    with pytest.raises(ValueError, match="klingon"):
        report.default_language(load_standard(tmp_path / "xx.toml"))
