"""The auditor's errors; auditor/cli.py maps them to exit statuses (EXIT_STATUSES).

A check that fails is not an error: it is a FAIL line in the result (exit status 1). These are
for input that cannot be checked at all.
"""

from __future__ import annotations


class AuditError(Exception):
    """Something the auditor cannot do; the message says what."""


class Unreadable(AuditError):
    """A bundle, envelope or key file that cannot be read as one (exit status 2)."""
