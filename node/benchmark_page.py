"""The lab's own individual report (as signed by the coordinator) as HTML and PDF. The page is
rendered by the shared `rendering` package from the view the coordinator signed: the lab named,
its peers not."""

from __future__ import annotations

from pathlib import Path

from node.errors import NodeError
from rendering import lab_report, pdf
from rendering.i18n import check_language


def render(benchmark: dict, lang: str = "en") -> str:
    if "funnel_curves" not in benchmark:
        raise NodeError(
            "the coordinator sent a benchmark without report data (an older coordinator); "
            "use --json, or ask the centre to upgrade"
        )
    try:
        check_language(lang)
    except ValueError as exc:
        raise NodeError(str(exc)) from exc
    return lab_report.render(benchmark, lang)


def write_pages(
    benchmark: dict, lang: str, html_path: Path | None, pdf_path: Path | None
) -> list[Path]:
    """Write the HTML page and/or its PDF; returns the files written."""
    html = render(benchmark, lang)
    written = []
    if html_path:
        html_path.write_text(html, encoding="utf-8")
        written.append(html_path)
    if pdf_path:
        try:
            pdf.print_html(html, pdf_path)
        except pdf.PdfUnavailable as exc:
            raise NodeError(str(exc)) from exc
        written.append(pdf_path)
    return written
