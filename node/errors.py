"""The node's errors, in the lab's terms; node/cli.py maps them to exit statuses (EXIT_STATUSES)
and prints the message, which says what to do next."""


class NodeError(Exception):
    """Something the lab can fix; the message says what to do next."""


class ConfigError(NodeError):
    pass


class IngestError(NodeError):
    """A whole file cannot be read (bad rows are quarantined instead, never raised)."""


class MappingError(NodeError):
    pass


class SubmitError(NodeError):
    """The coordinator refused what was sent or asked."""


class Unreachable(NodeError):
    """The coordinator could not be reached, or asked to try later; nothing was lost."""


class LedgerAlarm(NodeError):
    """The coordinator's log forked, shrank or lost a receipt: tell the coordinating centre."""

    recorded = False  # kept in the node's database already (node/alarms.py, node/witness.py)


class PeriodNotReady(NodeError):
    """A period that is still open, has not started, or holds no results: nothing is signed."""


class BadInput(NodeError):
    """A command's argument is not what it must be (a date, a flag's rule): nothing was signed."""
