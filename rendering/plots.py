"""Funnel plots drawn once per biomarker with matplotlib, and the lab's own point laid over them.

A funnel's background (limits, network line, every lab's point) is the same for every lab, so it is
drawn once; a lab's own report overlays its point with `highlight`, using the affine map from data
to SVG coordinates the drawing recorded. That keeps a thousand labs' reports cheap.
Every name drawn is passed through `plain` first: matplotlib reads `$...$` as mathematics, and a
biomarker or site named `$\\frac{$` must be drawn as written, not crash the report."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from markupsafe import Markup, escape  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from rendering.i18n import Reader  # noqa: E402
from rendering.labels import label  # noqa: E402
from rendering.svg import GREY, NETWORK, OKABE_ITO, OWN  # noqa: E402

# Debian's fonts-noto-cjk, made known to matplotlib even when its font cache predates the fonts
# (the cache is only rebuilt on a matplotlib upgrade), so Chinese labels are measured right.
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
for _path in CJK_FONTS:
    if Path(_path).exists() and not any(f.fname == _path for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(_path)
plt.rcParams["svg.fonttype"] = "none"  # text stays text: the browser draws it with its fonts
plt.rcParams["svg.hashsalt"] = "rarenet"
# Listed as families (not via "sans-serif") so matplotlib falls back glyph by glyph to the CJK font.
plt.rcParams["font.family"] = ["DejaVu Sans", "Noto Sans CJK SC", "sans-serif"]
plt.rcParams["axes.unicode_minus"] = False
DPI = 72.0  # one SVG user unit per point per pixel: data -> SVG is one affine map
RASTER_ABOVE = 200
MAX_NAMED = 40  # more names than this on one funnel cannot be read


def plain(text: object) -> str:
    """`text` as matplotlib draws it literally (no mathtext)."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


@dataclass
class Funnel:
    svg: str
    # SVG x = ax + bx * n ; SVG y = ay + by * rate
    ax: float
    bx: float
    ay: float
    by: float

    def mark(self, n: int, rate: float | None, name: str) -> str:
        """The SVG of one lab's point marked (a ring and its name), "" where it has no point."""
        if rate is None or not n:
            return ""
        x, y = self.ax + self.bx * n, self.ay + self.by * rate
        return (
            f'<g class="own-point" data-n="{n}" data-rate="{rate:.6g}">'
            f'<circle cx="{x:.2f}" cy="{y:.2f}" r="7" fill="none" stroke="{OWN}" stroke-width="2.5"/>'
            f'<circle cx="{x:.2f}" cy="{y:.2f}" r="3.5" fill="{OWN}"/>'
            f'<text x="{x + 9:.2f}" y="{y - 8:.2f}" font-size="11" font-weight="bold" '
            f'fill="{OWN}">{escape(name)}</text></g>'
        )

    def highlight(self, n: int, rate: float | None, name: str) -> Markup:
        """The funnel with one lab's point marked (`mark`, laid over the drawing)."""
        end = self.svg.rindex("</svg>")
        return Markup(self.svg[:end] + self.mark(n, rate, name) + self.svg[end:])

    @cached_property
    def utf8_halves(self) -> tuple[bytes, bytes]:
        """The drawing in UTF-8, cut where a lab's mark goes (before its closing tag): encoded
        once, so a thousand labs' pages each add only their mark between the two halves."""
        end = self.svg.rindex("</svg>")
        return self.svg[:end].encode("utf-8"), self.svg[end:].encode("utf-8")


def funnel(
    reader: Reader,
    biomarker: str,
    network: dict,
    curve: dict,
    points: list[tuple[str | None, int, float | None, str]],
    name_points: bool,
) -> Funnel:
    """The positivity funnel of `biomarker`: network rate, the 95% and 99.8% limits (`curve`, from
    `funnel_grid` and the benchmark's statistics), one dot per lab (label, valid results, rate,
    status); labs named when `name_points`, else anonymous."""
    return _drawn(reader, biomarker, network, curve, points, name_points, anonymous_too=False)[0]


def funnel_pair(
    reader: Reader,
    biomarker: str,
    network: dict,
    curve: dict,
    points: list[tuple[str | None, int, float | None, str]],
) -> tuple[Funnel, Funnel]:
    """(anonymous, named) funnels from one drawing: saved once before the labs' names are written
    on it and once after, byte for byte what `funnel` draws for each (the network report and every
    lab's page need both)."""
    anonymous, named = _drawn(reader, biomarker, network, curve, points, True, anonymous_too=True)
    return anonymous, named


def _drawn(
    reader: Reader,
    biomarker: str,
    network: dict,
    curve: dict,
    points: list[tuple[str | None, int, float | None, str]],
    name_points: bool,
    anonymous_too: bool,
) -> list[Funnel]:
    _ = reader._
    theta = network["rate"]
    ns = curve["n"]
    limits = list(zip(curve["lower998"], curve["lower95"], curve["upper95"], curve["upper998"]))
    n_lo, n_hi = ns[0], ns[-1]
    fig = plt.figure(figsize=(6.4, 3.9), dpi=DPI)
    ax = fig.add_axes((0.11, 0.14, 0.62, 0.76))
    ax.fill_between(ns, [lim[0] for lim in limits], [lim[3] for lim in limits], color="#f2f2f2")
    ax.plot(ns, [lim[1] for lim in limits], color=OKABE_ITO["orange"], lw=1, label=_("95% limits"))
    ax.plot(ns, [lim[2] for lim in limits], color=OKABE_ITO["orange"], lw=1)
    ax.plot(
        ns,
        [lim[0] for lim in limits],
        color=OKABE_ITO["vermillion"],
        lw=1,
        ls="--",
        label=_("99.8% limits"),
    )
    ax.plot(ns, [lim[3] for lim in limits], color=OKABE_ITO["vermillion"], lw=1, ls="--")
    ax.axhline(
        theta,
        color="#333333",
        lw=1,
        label=plain(_("network {rate}").format(rate=reader.pct(theta))),
    )
    styles = {
        "in_control": (NETWORK, "o", _("within limits")),
        "alert": (OKABE_ITO["orange"], "s", _("alert (95%)")),
        "alarm": (OKABE_ITO["vermillion"], "D", _("alarm (99.8%)")),
    }
    groups: dict[str, list[tuple[int, float]]] = {}
    candidates: list[tuple[int, float, str, int, float]] = []
    for name, n, rate, status in points:
        key = status.split("_")[0] if status != "in_control" else "in_control"
        groups.setdefault(key if key in styles else "in_control", []).append((n, rate or 0.0))
        if name_points and name is not None and (status != "in_control" or len(points) <= 30):
            rank = 0 if key == "alarm" else 1 if key == "alert" else 2
            candidates.append((rank, -abs((rate or 0.0) - theta), name, n, rate or 0.0))
    # Every lab up to 30; beyond, the most extreme flagged labs (alarms first) up to MAX_NAMED.
    named = [(name, n, rate) for _r, _d, name, n, rate in sorted(candidates)[:MAX_NAMED]]
    many = len(points) > RASTER_ABOVE  # a thousand dots as one image, not a thousand elements
    for key in ("in_control", "alert", "alarm"):
        if key in groups:
            colour, marker, text = styles[key]
            xy = np.array(groups[key], dtype=float)  # not lists: scatter masks a list by element
            ax.scatter(
                xy[:, 0],
                xy[:, 1],
                color=colour,
                marker=marker,
                s=22,
                zorder=3,
                label=plain(text),
                rasterized=many,
            )
    top = max([limits[0][3]] + [r or 0.0 for _l, _n, r, _s in points])
    ax.set_ylim(0, min(1.0, top * 1.15 + 0.002))
    ax.set_xlim(n_lo, n_hi)
    ax.set_xlabel(plain(_("valid results (positive + negative)")))
    ax.set_ylabel(plain(_("positivity")))
    # y given: the title stays where matplotlib would put it (nothing is drawn above the axes),
    # without measuring every tick label to find that out (a seventh of drawing a funnel).
    ax.set_title(plain(label(reader, "biomarker", biomarker)), loc="left", fontsize=11, y=1.0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: plain(reader.pct(v, 1))))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: plain(reader.num(v))))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    # The axes' place is fixed (add_axes): transData needs no draw.
    (x0, y0), (x1, y1) = ax.transData.transform([(0.0, 0.0), (1.0, 1.0)])
    height = fig.get_figheight() * DPI

    def saved() -> Funnel:
        buffer = io.StringIO()
        # No bbox "tight": the coordinates must stay as drawn. No date: the same data draws the
        # same page, so two runs' reports can be compared byte for byte.
        fig.savefig(buffer, format="svg", dpi=150 if many else DPI, metadata={"Date": None})
        text = buffer.getvalue()
        return Funnel(text[text.index("<svg") :], x0, x1 - x0, height - y0, -(y1 - y0))

    drawn = [saved()] if anonymous_too else []  # before any name is written on it
    _label_points(ax, named)
    drawn.append(saved())
    plt.close(fig)
    return drawn


def _label_points(ax: Axes, named: list[tuple[str, int, float]], gap: float = 8.0) -> None:
    """Name each point beside it, moving labels up just enough that none overlaps the one below
    (labs of similar size and rate would otherwise print over each other)."""
    placed: list[tuple[float, float]] = []  # (x, y) of labels placed, in points
    scale = 72.0 / ax.figure.dpi
    for name, n, rate in sorted(named, key=lambda p: (p[2], p[1])):
        x, y = (v * scale for v in ax.transData.transform((n, rate)))
        target = y + 3.0
        for px, py in placed:
            if abs(px - x) < 45 and abs(py - target) < gap:
                target = py + gap
        placed.append((x, target))
        ax.annotate(
            plain(name),
            (n, rate),
            fontsize=7,
            xytext=(3, target - y),
            textcoords="offset points",
            color="#333",
        )


def funnel_grid(points: list[tuple[str | None, int, float | None, str]]) -> list[int]:
    """The sizes at which a funnel's limits are drawn: from half the smallest lab to beyond the
    largest."""
    sizes = [n for _l, n, _r, _s in points if n] or [10]
    n_lo, n_hi = max(1, int(min(sizes) * 0.5)), int(max(sizes) * 1.15) + 1
    return [int(n) for n in np.unique(np.linspace(n_lo, n_hi, 120).astype(int))]


def points_of(
    sites: dict, biomarker: str, named: bool
) -> list[tuple[str | None, int, float | None, str]]:
    return [
        (site if named else None, p["valid"], p["rate"], p["status"])
        for site, entry in sites.items()
        if (p := entry["positivity"].get(biomarker))
    ]


__all__ = ["Funnel", "funnel", "funnel_grid", "funnel_pair", "plain", "points_of", "GREY"]
