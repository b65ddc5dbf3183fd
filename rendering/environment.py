"""The Jinja environment of every report page, bound to one reader (language and conventions)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from rendering import flag_text
from rendering.i18n import Reader
from rendering.labels import label, rag

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment(reader: Reader, *extra: Path) -> Environment:
    """One environment per reader and template folders: templates are compiled once, not for
    each of a thousand labs' pages."""
    env = Environment(
        loader=FileSystemLoader([*(str(p) for p in extra), str(TEMPLATES)]),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=reader._, ngettext=reader.ngettext, newstyle=True
    )
    env.filters["pct"] = reader.pct
    env.filters["num"] = reader.num
    env.filters["date"] = reader.date
    env.filters["datetime"] = reader.datetime
    env.filters["label"] = lambda key, table: label(reader, table, key)
    env.filters["rag"] = rag
    env.filters["flag_sentence"] = lambda flag, site=None: flag_text.sentence(reader, flag, site)
    env.filters["flag_subject"] = lambda flag: flag_text.subject(reader, flag)
    env.filters["kappa"] = lambda table: flag_text.kappa_text(reader, table)
    env.filters["mark_name"] = lambda mark: flag_text.indicator_name(reader, mark)
    env.globals["reader"] = reader
    return env
