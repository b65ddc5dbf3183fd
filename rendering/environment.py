"""The Jinja environment of every report page, bound to one reader (language and conventions)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, cast

from jinja2 import Environment, FileSystemLoader, nodes, select_autoescape
from jinja2.compiler import CodeGenerator, Frame
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

from rendering import flag_text
from rendering.escaping import html_text
from rendering.i18n import Reader
from rendering.labels import label, rag

TEMPLATES = Path(__file__).parent / "templates"
CONSTANT_MESSAGE = ("variable_begin", "name", "lparen", "string", "rparen", "variable_end")
MESSAGE_CALL = ("name", "lparen", "string", ("comma", "rparen"))


def translated_message(text: str, /, **variables: Any) -> Markup:
    """A translated message's text with its arguments: what the i18n extension's call gives
    (its translation marked safe, then formatted with the arguments escaped)."""
    return Markup(text) % variables


class ConstantMessages(Extension):
    """`{{ _("literal") }}` (a message without arguments) reads the same on every page of one
    environment, as each environment serves one reader: translated once, when the template is
    compiled, instead of on each of a thousand labs' pages. The text is what the i18n extension's
    call gives at run time (the translation, marked safe, formatted with no arguments).
    Any other `_("literal", name=value, ...)` is translated when compiled too, and becomes
    `"translation"|translated_message(name=value, ...)` (`_("literal")`:
    `"translation"|translated_message`): a filter, called directly, where the extension's call
    passes through the context three times on every page."""

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        reader = cast(Reader, self.environment.globals["reader"])
        tokens = list(stream)
        i = 0
        while i < len(tokens):
            window = tokens[i : i + len(CONSTANT_MESSAGE)]
            if tuple(t.type for t in window) == CONSTANT_MESSAGE and window[1].value == "_":
                text = str(Markup(reader._(window[3].value)) % {})
                yield Token(window[0].lineno, "data", text)
                i += len(CONSTANT_MESSAGE)
                continue
            call = tokens[i : i + len(MESSAGE_CALL)]
            if (
                len(call) == len(MESSAGE_CALL)
                and tuple(t.type for t in call[:3]) == MESSAGE_CALL[:3]
                and call[0].value == "_"
                and call[3].type in MESSAGE_CALL[3]
                and (i == 0 or tokens[i - 1].type != "dot")
            ):
                line = call[0].lineno
                yield Token(line, "string", reader._(call[2].value))
                yield Token(line, "pipe", "|")
                yield Token(line, "name", "translated_message")
                if call[3].type == "comma":
                    yield Token(line, "lparen", "(")
                i += len(MESSAGE_CALL)
                continue
            yield tokens[i]
            i += 1


DICT_ATTRIBUTES = frozenset(dir(dict))


class ReportCodeGenerator(CodeGenerator):
    """Compiles `{{ value }}` to `environment.html_text(value)` where Jinja writes
    `escape(value)` (autoescaped output, no finalize): the same text in the page. Only output is
    compiled so; `~`, filters and messages still escape to Markup as they did."""

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile and finalize.src is None:
            self.write("environment.html_text(")
        else:
            super()._output_child_pre(node, frame, finalize)


class ReportEnvironment(Environment):
    """`x.name` on a plain dict (what every page reads: benchmark entries, views, rows) looks up
    the key straight away. Jinja first asks for an attribute of that name, and a dict has none
    unless it is one of dict's own (`items`, `get`, ...): those still go to Jinja's lookup, so
    every expression means what it did, but the failed attribute lookup is no longer paid a few
    thousand times per page."""

    code_generator_class = ReportCodeGenerator
    html_text = staticmethod(html_text)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


@cache
def environment(reader: Reader, *extra: Path) -> Environment:
    """One environment per reader and template folders: templates are compiled once, not for
    each of a thousand labs' pages."""
    env = ReportEnvironment(
        loader=FileSystemLoader([*(str(p) for p in extra), str(TEMPLATES)]),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n", ConstantMessages],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # a report's templates do not change while it runs: no stat per page
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
    env.filters["translated_message"] = translated_message
    env.filters["flag_sentence"] = lambda flag, site=None: flag_text.sentence(reader, flag, site)
    env.filters["flag_subject"] = lambda flag: flag_text.subject(reader, flag)
    env.filters["kappa"] = lambda table: flag_text.kappa_text(reader, table)
    env.filters["mark_name"] = lambda mark: flag_text.indicator_name(reader, mark)
    env.globals["reader"] = reader
    return env
