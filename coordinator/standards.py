"""The testing standard as a file: where the default lives and how a file is read. The parsing and
the rules themselves are the method's (method.standard)."""

from __future__ import annotations

from pathlib import Path

from coordinator.errors import CoordinatorError
from method import standard as _standard
from method.standard import Standard

DEFAULT_STANDARD = Path(__file__).parent / "standards" / "rarenet-nsclc-2026.1.toml"

__all__ = ["DEFAULT_STANDARD", "Standard", "StandardError", "load", "parse"]


class StandardError(CoordinatorError):
    pass


def parse(text: str, origin: str = "standard") -> Standard:
    try:
        return _standard.parse(text, origin)
    except _standard.StandardError as exc:
        raise StandardError(f"{exc}; start from {DEFAULT_STANDARD.name}") from exc


def load(path: Path) -> Standard:
    try:
        return parse(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError as exc:
        raise StandardError(f"no standard at {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StandardError(f"the standard {path} cannot be read: {exc}") from exc
