"""HTML escaping as plain text: what `markupsafe.escape` gives, without the Markup it builds of
every value (a Python constructor and a copy), for pages that are joined into one string anyway."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

try:  # markupsafe's own C escaping, which `escape` wraps in a new Markup for every value
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - a markupsafe without its C speedups (or a later one)

    def _escape_inner(s: str, /) -> str:
        return str(escape(s))


def html_text(value: Any) -> str:
    """`str(markupsafe.escape(value))`: `value` as text in a page (markup kept as it is)."""
    kind = type(value)
    if kind is str:
        return _escape_inner(value)
    if kind is Markup:
        return value
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return _escape_inner(str(value))
