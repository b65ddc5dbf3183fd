"""Site ids: one strict ASCII pattern on both sides of the wire.

A site id names directories, certificate subjects, report rows and ledger entries, so it admits no
look-alikes: lower-case ASCII letters, ASCII digits and '-', starting with a letter or digit, 2 to
63 characters. `.`/`..`, Arabic-Indic digits and a Cyrillic 'а' that looks like a Latin 'a' are
all refused.
"""

from __future__ import annotations

import re

PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}", re.ASCII)
RULE = "2-63 characters: lower-case ASCII letters a-z, digits 0-9 and '-', not starting with '-'"


def is_valid(site_id: str) -> bool:
    return PATTERN.fullmatch(site_id) is not None


def problem(site_id: str) -> str | None:
    """Why site_id is not a valid site id, or None."""
    if is_valid(site_id):
        return None
    return f"site id {site_id!r} is not valid: {RULE} (for example lab-xyz)"
