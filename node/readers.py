"""Reading LIMS exports row by row: CSV/TSV in UTF-8, UTF-8 with BOM, UTF-16 or GB18030, and XLSX."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from node.errors import IngestError

csv.field_size_limit(1 << 20)


@dataclass
class Table:
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (line number in the file, cell texts)
    encoding: str
    position: Callable[[], int]  # bytes read so far (for progress)
    size: int
    sha256: Callable[[], str]  # of the file's bytes; complete once every row has been read


class _HashedFile(io.RawIOBase):
    """A file whose bytes are hashed as they are read, so that it is read once."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb", buffering=0)
        self.hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n:
            self.hash.update(memoryview(buffer)[:n])
            self.count += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def detect_encoding(path: Path) -> str:
    """utf-8-sig, utf-16, utf-8, or gb18030 (a superset of GBK, used by Chinese Excel exports)."""
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8"


def open_table(path: Path, encoding: str | None = None) -> Table:
    if not path.is_file():
        raise IngestError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _open_xlsx(path)
    if suffix == ".xls":
        raise IngestError(
            f"{path}: old .xls workbooks are not read; save it as .xlsx or CSV from Excel"
        )
    return _open_delimited(path, encoding)


def _open_delimited(path: Path, encoding: str | None) -> Table:
    encoding = encoding or detect_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise IngestError(f"unknown encoding {encoding!r}; try utf-8 or gb18030") from exc
    hashed = _HashedFile(path)
    raw = io.BufferedReader(hashed, 1 << 20)
    text = io.TextIOWrapper(raw, encoding=encoding, newline="", errors="strict")
    try:
        first = text.readline()
    except UnicodeDecodeError as exc:
        raw.close()
        raise IngestError(
            f"{path} is not {encoding}; pass --encoding (utf-8, gb18030, utf-16)"
        ) from exc
    if not first.strip():
        raw.close()
        raise IngestError(f"{path} is empty or has no header line")
    if path.suffix.lower() in (".tsv", ".tab"):
        delimiter = "\t"
    else:
        delimiter = max((",", ";", "\t"), key=first.count)
    header = next(csv.reader([first], delimiter=delimiter))
    reader = csv.reader(text, delimiter=delimiter)

    def rows() -> Iterator[tuple[int, list[str]]]:
        # reader.line_num counts the physical lines read after the header: a row's number in the file
        # is one more (a quoted cell may hold line breaks, so rows and lines can differ).
        try:
            for cells in reader:
                yield reader.line_num + 1, cells
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"{path}: bytes after line {reader.line_num + 1} are not {encoding}; pass --encoding"
            ) from exc
        except csv.Error as exc:
            raise IngestError(f"{path}: line {reader.line_num + 1}: {exc}") from exc
        finally:
            raw.close()

    return Table(
        header,
        rows(),
        encoding,
        lambda: hashed.count,
        path.stat().st_size,
        lambda: hashed.hash.hexdigest(),
    )


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _open_xlsx(path: Path) -> Table:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise IngestError(f"{path} is not a readable XLSX workbook: {exc}") from exc
    sheet = workbook.worksheets[0]
    it = sheet.iter_rows(values_only=True)
    try:
        header = [_cell_text(v) for v in next(it)]
    except StopIteration:
        workbook.close()
        raise IngestError(f"{path}: the first sheet is empty") from None
    done = [0]

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, values in enumerate(it, start=2):
                done[0] = number
                yield number, [_cell_text(v) for v in values]
        finally:
            workbook.close()

    total = sheet.max_row or 1
    return Table(
        header,
        rows(),
        "xlsx",
        lambda: done[0] * path.stat().st_size // total,
        path.stat().st_size,
        lambda: file_sha256(path),
    )
