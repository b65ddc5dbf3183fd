"""The ledger owns its tables: only coordinator/ledger.py writes `ledger` and `tree_heads`, so
the rules of an append-only log (leaf form, signed heads) live in one module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEDGER_TABLES = ("ledger", "tree_heads")
WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM|DROP\s+TABLE"
    r"(?:\s+IF\s+EXISTS)?|ALTER\s+TABLE)\s+[\"'`]?(" + "|".join(LEDGER_TABLES) + r")\b",
    re.IGNORECASE,
)
OWNERS = {ROOT / "coordinator" / "ledger.py", ROOT / "coordinator" / "store.py"}  # store: schema


def writers() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "coordinator").rglob("*.py")):
        if path in OWNERS:
            continue
        hits = [m.group(0) for m in WRITE.finditer(path.read_text(encoding="utf-8"))]
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    return found


def test_the_pattern_finds_a_write_to_a_ledger_table() -> None:
    before = '"INSERT INTO ledger (leaf_index, leaf_hash, envelope) VALUES (?, ?, ?)"'
    head = 'conn.execute("insert or ignore into tree_heads (tree_size) values (?)")'
    summaries = '"INSERT INTO summaries (leaf_index) VALUES (?)"'
    assert WRITE.search(before) and WRITE.search(head) and not WRITE.search(summaries)


def test_only_the_ledger_module_writes_the_ledger_tables() -> None:
    assert writers() == {}
