"""Exit statuses, one scheme for rarenet-node, rarenet-coordinator and rarenet-audit.

    0  success
    1  a check failed, a ledger alarm, or a submission or request was refused
    2  usage error, or input that cannot be read or is not valid (bad config, file, bundle)
    3  the other side could not be reached, or asked to try later: temporary, run it again

Each command line keeps one table from its error classes to these statuses (and the coordinator's
server one to gRPC status codes); `most_specific` picks the entry of the error's most specific
class, so a subclass can differ from its base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

OK = 0
FAILED = 1
BAD_INPUT = 2
UNREACHABLE = 3


def most_specific(error: BaseException, table: Mapping[type[BaseException], T]) -> T | None:
    """The table's entry for the error's most specific class, or None if no class of it is there."""
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return None
