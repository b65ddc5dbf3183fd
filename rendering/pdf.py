"""Print a report page to PDF with headless Chromium (Debian's `chromium`, installed by .ci/run).

Chromium embeds the fonts it draws with (subsets), so a Chinese report carries its CJK font
(Debian's fonts-noto-cjk) inside the PDF; `pdffonts` lists them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
)


class PdfUnavailable(Exception):
    """No browser to print with, or it failed; the message says what to do."""


def browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_html(html: str, out: Path, timeout: float = 120.0) -> Path:
    """Write `html` as a PDF at `out` (A4, as the page's print style sets)."""
    exe = browser()
    if exe is None:
        raise PdfUnavailable(
            "no Chromium to print the PDF with: install it (Debian: apt-get install chromium "
            "fonts-noto-cjk) or use --html and print from a browser"
        )
    with tempfile.TemporaryDirectory(prefix="rarenet-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        target = Path(tmp) / "report.pdf"
        result = subprocess.run(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={tmp}/profile",
                f"--print-to-pdf={target}",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0 or not target.exists() or target.stat().st_size == 0:
            raise PdfUnavailable(
                f"Chromium could not print the report (exit {result.returncode}): "
                f"{result.stderr.strip()[-400:]}"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, out)
    return out
