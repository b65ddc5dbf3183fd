"""Small charts drawn as SVG by hand, for what every lab report draws afresh (a thousand labs'
reports in one run cannot afford a matplotlib figure each): bars against the network,
distributions, small multiples. Every text is escaped; colours are Okabe-Ito."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup, escape

from rendering.escaping import html_text

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
OWN = OKABE_ITO["vermillion"]
NETWORK = OKABE_ITO["blue"]
GREY = "#999999"


@lru_cache(maxsize=4096)  # the same labels on every lab's charts
def text_width(text: str, size: float) -> float:
    """About how wide `text` is drawn at font size `size` (CJK characters are full width)."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.6 for ch in text)


@lru_cache(maxsize=16384)  # most texts sit at the same place on every lab's charts
def _t(
    x: float, y: float, text: str, size: int = 10, anchor: str = "start", fill: str = "#222"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{fill}">{html_text(text)}</text>'
    )


def _frame(width: float, height: float, body: list[str], title: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img"><title>{escape(title)}</title>'
        f"{''.join(body)}</svg>"
    )


@dataclass
class Bar:
    label: str
    own: float | None
    network: float | None
    own_text: str = ""
    network_text: str = ""


def paired_bars(
    bars: Sequence[Bar], own_name: str, network_name: str, title: str, fmt=lambda v: f"{v:.0%}"
) -> Markup:
    """Horizontal bars, the lab beside the network, one pair per row (values 0-1)."""
    row, width = 34, 260
    left = max([text_width(b.label, 11) for b in bars] + [60.0]) + 12
    top = max([b.own or 0.0 for b in bars] + [b.network or 0.0 for b in bars] + [0.001])
    height = 24 + row * len(bars) + 10
    body = [
        f'<rect x="{left}" y="4" width="10" height="10" fill="{OWN}"/>',
        _t(left + 14, 13, own_name, 10),
        f'<rect x="{left + 140}" y="4" width="10" height="10" fill="{NETWORK}"/>',
        _t(left + 154, 13, network_name, 10),
    ]
    for i, bar in enumerate(bars):
        y = 24 + i * row
        body.append(_t(left - 6, y + 16, bar.label, 11, "end"))
        for j, (value, colour, text) in enumerate(
            ((bar.own, OWN, bar.own_text), (bar.network, NETWORK, bar.network_text))
        ):
            yy = y + 2 + j * 14
            if value is None:
                body.append(_t(left + 2, yy + 10, text or "n/a", 9, fill=GREY))
                continue
            w = max(1.0, width * value / top)
            body.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="12" fill="{colour}"/>')
            body.append(_t(left + w + 4, yy + 10, text or fmt(value), 9))
    return _frame(left + width + 90, height, body, title)


def distribution(
    own: Sequence[int],
    network: Sequence[int],
    target: int,
    own_name: str,
    network_name: str,
    axis: str,
    title: str,
) -> Markup:
    """Two histograms as shares per bin (working days), the target day marked."""
    bins = max(len(own), len(network), target + 2)
    o_total, n_total = sum(own) or 1, sum(network) or 1
    o = [(own[i] if i < len(own) else 0) / o_total for i in range(bins)]
    n = [(network[i] if i < len(network) else 0) / n_total for i in range(bins)]
    top = max(o + n + [0.01])
    left, bottom, width, height = 40, 150, 420, 120
    step = width / bins
    body = [
        f'<line x1="{left}" y1="{bottom}" x2="{left + width}" y2="{bottom}" stroke="#444"/>',
        f'<rect x="{left + 5}" y="6" width="10" height="10" fill="{OWN}"/>',
        _t(left + 19, 15, own_name, 10),
        f'<rect x="{left + 160}" y="6" width="10" height="10" fill="{NETWORK}" fill-opacity="0.5"/>',
        _t(left + 174, 15, network_name, 10),
    ]
    for i in range(bins):
        x = left + i * step
        hn = height * n[i] / top
        ho = height * o[i] / top
        body.append(
            f'<rect x="{x:.1f}" y="{bottom - hn:.1f}" width="{step:.1f}" height="{hn:.1f}" '
            f'fill="{NETWORK}" fill-opacity="0.45"/>'
        )
        body.append(
            f'<rect x="{x + step * 0.25:.1f}" y="{bottom - ho:.1f}" width="{step * 0.5:.1f}" '
            f'height="{ho:.1f}" fill="{OWN}"/>'
        )
        if i % 5 == 0:
            body.append(_t(x + step / 2, bottom + 12, str(i), 9, "middle"))
    tx = left + (target + 1) * step
    body.append(
        f'<line x1="{tx:.1f}" y1="{bottom - height - 4}" x2="{tx:.1f}" y2="{bottom}" '
        f'stroke="#000" stroke-dasharray="4 3"/>'
    )
    body.append(_t(left + width / 2, bottom + 26, axis, 10, "middle"))
    return _frame(left + width + 20, bottom + 32, body, title)


def small_multiples(
    panels: Sequence[tuple[str, Sequence[float | None], Sequence[float | None]]],
    periods: Sequence[str],
    own_name: str,
    network_name: str,
    title: str,
    fmt=lambda v: f"{v:.0%}",
) -> Markup:
    """One small panel per series (e.g. biomarker), each on its own linear scale from zero: the
    lab's line beside the network's, the periods along the bottom of every panel."""
    cols = 4
    pw, ph, gap = 150, 90, 14
    rows = (len(panels) + cols - 1) // cols
    width, height = cols * (pw + gap), 22 + rows * (ph + 38)
    body = (
        [
            f'<line x1="4" y1="11" x2="20" y2="11" stroke="{OWN}" stroke-width="2"/>',
            _t(24, 15, own_name, 10),
        ]
        if own_name
        else []
    )
    x_net = 150 if own_name else 4
    body += [
        f'<line x1="{x_net}" y1="11" x2="{x_net + 16}" y2="11" stroke="{NETWORK}" '
        f'stroke-width="2" stroke-dasharray="4 2"/>',
        _t(x_net + 20, 15, network_name, 10),
    ]
    k = max(1, len(periods) - 1)
    for i, (name, own, network) in enumerate(panels):
        x0 = (i % cols) * (pw + gap) + 8
        y0 = 30 + (i // cols) * (ph + 38)
        values = [v for v in list(own) + list(network) if v is not None]
        top = max(values + [0.001]) * 1.15
        body.append(_t(x0, y0 + 2, name, 10))
        body.append(
            f'<rect x="{x0}" y="{y0 + 8}" width="{pw - 10}" height="{ph - 20}" fill="none" '
            f'stroke="#ccc"/>'
        )
        body.append(_t(x0 + pw - 8, y0 + 18, fmt(top / 1.15), 8, "end", GREY))

        def xy(j: int, v: float, x0: float = x0, y0: float = y0, top: float = top) -> str:
            return f"{x0 + 4 + (pw - 18) * j / k:.1f},{y0 + ph - 12 - (ph - 24) * v / top:.1f}"

        for series, colour, dash in ((network, NETWORK, ' stroke-dasharray="4 2"'), (own, OWN, "")):
            at = [
                (
                    f"{x0 + 4 + (pw - 18) * j / k:.1f}",
                    f"{y0 + ph - 12 - (ph - 24) * v / top:.1f}",
                )
                for j, v in enumerate(series)
                if v is not None
            ]
            if len(at) > 1:
                body.append(
                    f'<polyline points="{" ".join(f"{cx},{cy}" for cx, cy in at)}" fill="none" '
                    f'stroke="{colour}" stroke-width="1.6"{dash}/>'
                )
            for cx, cy in at:
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.2" fill="{colour}"/>')
        for j, period in enumerate(periods):
            if j in (0, len(periods) - 1):
                body.append(
                    _t(
                        x0 + 4 + (pw - 18) * j / k,
                        y0 + ph + 2,
                        period,
                        8,
                        "start" if j == 0 else "end",
                        GREY,
                    )
                )
    return _frame(width, height, body, title)
