"""The reader's language: gettext catalogues (rendering/locale/LANG/LC_MESSAGES/rarenet.po, kept in
the usual Babel form so a translator can work on them) and numbers and dates in the reader's
convention (Babel's CLDR data).

The .po files are compiled in memory when first used, so no compiled .mo file can drift from its
source. `pybabel extract -F rendering/babel.cfg -k N_ -o rendering/locale/rarenet.pot .` refreshes
the template; tests/test_i18n.py fails when a message used by the code has no Chinese translation.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "rarenet"
# Report language -> the CLDR locale whose conventions the reader expects.
LANGUAGES = {"en": "en_GB", "zh": "zh_Hans_CN"}
DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:
    """Marks a message for extraction; translated later, where the reader's language is known."""
    return message


def check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(
            f"report language {lang!r} is not known; use one of {', '.join(LANGUAGES)}"
        )
    return lang


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of `lang` (English is the source language: no catalogue)."""
    check_language(lang)
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=LANGUAGES[lang], domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@dataclass(frozen=True)
class _Symbols:
    """The locale's decimal and grouping marks and where its percent sign goes (CLDR), so a
    thousand labs' pages format numbers without Babel's per-call pattern parsing."""

    decimal: str
    group: str
    percent_pattern: str  # "#%" or "# %" or "%#"
    percent_before: str = field(init=False)  # the pattern's text before and after the number
    percent_after: str = field(init=False)
    marks: dict[int, str] | None = field(init=False)  # None: the marks are "," and "." already

    def __post_init__(self) -> None:
        before, _number, after = self.percent_pattern.partition("#")
        object.__setattr__(self, "percent_before", before)
        object.__setattr__(self, "percent_after", after)
        same = (self.group, self.decimal) == (",", ".")
        object.__setattr__(
            self, "marks", None if same else {ord(","): self.group, ord("."): self.decimal}
        )

    def number(self, text: str) -> str:
        """`text` (formatted with "," and ".") in the locale's marks."""
        return text if self.marks is None else text.translate(self.marks)


@cache
def _symbols(lang: str) -> _Symbols:
    locale = Locale.parse(LANGUAGES[lang])
    sample = format_percent(0.5, format="#,##0%", locale=locale)
    return _Symbols(
        decimal=format_decimal(1.5, format="0.0", locale=locale)[1],
        group=format_decimal(1000, format="#,##0", locale=locale)[1],
        percent_pattern=sample.replace("50", "#"),
    )


@dataclass(frozen=True)
class Reader:
    """Everything that depends on who reads: messages, numbers, percentages, dates."""

    lang: str = DEFAULT_LANGUAGE
    _tr: gettext.NullTranslations = field(init=False, repr=False, compare=False)
    _symbols: _Symbols = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tr", translations(check_language(self.lang)))
        object.__setattr__(self, "_symbols", _symbols(self.lang))

    @property
    def locale(self) -> Locale:
        return Locale.parse(LANGUAGES[self.lang])

    @property
    def html_lang(self) -> str:
        return "zh-Hans" if self.lang == "zh" else "en"

    def _(self, message: str) -> str:
        return self._tr.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._tr.ngettext(singular, plural, n)

    def num(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return self._("n/a")
        return self._symbols.number(f"{value:,.{digits}f}")

    def pct(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return self._("n/a")
        symbols = self._symbols
        number = symbols.number(f"{100 * value:,.{digits}f}")
        return f"{symbols.percent_before}{number}{symbols.percent_after}"

    def pct_pair(self, a: float | None, b: float | None) -> tuple[str, str]:
        """Two percentages printed with enough digits to tell them apart (0.78% vs 0.84%, not
        0.8% and 0.8%)."""
        for digits in (1, 2, 3):
            left, right = self.pct(a, digits), self.pct(b, digits)
            if left != right or a == b:
                return left, right
        return left, right

    def date(self, value: dt.date | str) -> str:
        return _date(self.lang, value)

    def datetime(self, value: dt.datetime | str) -> str:
        return _datetime(self.lang, value)


# Dates are formatted once per language and value: every lab's page of a report prints the same
# generation and cut-off times, and Babel parses its pattern on each call.
@lru_cache(maxsize=4096)
def _date(lang: str, value: dt.date | str) -> str:
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(
        day, format="long" if lang == "zh" else "d MMM y", locale=Locale.parse(LANGUAGES[lang])
    )


@lru_cache(maxsize=4096)
def _datetime(lang: str, value: dt.datetime | str) -> str:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    text = format_datetime(
        moment,
        format="y年M月d日 HH:mm" if lang == "zh" else "d MMM y, HH:mm",
        tzinfo=dt.UTC,
        locale=Locale.parse(LANGUAGES[lang]),
    )
    return f"{text} UTC"
