"""A site's mapping file (TOML): its own column names, words and date formats.

[columns]               # the export's header = canonical field
"检测编号" = "test_id"
[values.result]         # the export's word = canonical value
"突变阳性" = "positive"
[dates]
formats = ["%d/%m/%Y"]  # tried before the built-in ISO and Chinese formats
[file]
encoding = "gb18030"    # optional; otherwise detected
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import MappingError
from node.vocabulary import FIELDS, HEADER_SYNONYMS, VOCABULARY, fold, normalise

BUILTIN_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")


@dataclass
class Mapping:
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    date_formats: tuple[str, ...] = BUILTIN_DATE_FORMATS
    encoding: str | None = None
    source: str = "built-in vocabulary"

    def resolve_header(self, header: list[str]) -> tuple[dict[int, str], list[str]]:
        """Column positions of canonical fields, and the headers that map to nothing."""
        positions: dict[int, str] = {}
        unmapped: list[str] = []
        for i, name in enumerate(header):
            folded = fold(name).lstrip("\ufeff")
            target = self.columns.get(folded) or (
                folded if folded in FIELDS else HEADER_SYNONYMS.get(folded)
            )
            if target is None:
                unmapped.append(name)
            elif target in positions.values():
                raise MappingError(
                    f"two columns map to {target!r} (the second is {name!r}); "
                    "name one of them in the mapping's [columns] as something else"
                )
            else:
                positions[i] = target
        return positions, unmapped

    def value(self, field_name: str, text: str) -> str | None:
        return normalise(field_name, text, self.values.get(field_name))

    def parse_date(self, text: str) -> dt.date | None:
        text = text.strip()
        if len(text) >= 10 and text[4] == "-" and text[7] == "-":
            try:
                return dt.date.fromisoformat(text[:10])
            except ValueError:
                return None
        head = text.split(" ")[0].split("T")[0]
        for fmt in self.date_formats:
            try:
                return dt.datetime.strptime(head, fmt).date()
            except ValueError:
                continue
        return None


def load(path: Path | None) -> Mapping:
    if path is None:
        return Mapping()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MappingError(f"mapping file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"mapping file {path} is not valid UTF-8 TOML: {exc}") from exc
    unknown = set(data) - {"columns", "values", "dates", "file"}
    if unknown:
        raise MappingError(
            f"{path}: unknown section(s) {sorted(unknown)}; use columns, values, dates, file"
        )
    columns = {}
    for source, target in data.get("columns", {}).items():
        if target not in FIELDS:
            raise MappingError(
                f"{path}: [columns] {source!r} = {target!r}: {target!r} is not a canonical field {FIELDS}"
            )
        columns[fold(source)] = target
    values: dict[str, dict[str, str]] = {}
    for field_name, synonyms in data.get("values", {}).items():
        if field_name not in VOCABULARY:
            raise MappingError(
                f"{path}: [values.{field_name}]: only {sorted(VOCABULARY)} take synonyms"
            )
        for word, target in synonyms.items():
            if target not in VOCABULARY[field_name]:
                raise MappingError(
                    f"{path}: [values.{field_name}] {word!r} = {target!r}: allowed values are {VOCABULARY[field_name]}"
                )
        values[field_name] = {fold(w): t for w, t in synonyms.items()}
    formats = tuple(data.get("dates", {}).get("formats", ())) + BUILTIN_DATE_FORMATS
    return Mapping(columns, values, formats, data.get("file", {}).get("encoding"), str(path))
