"""The node's errors; the CLI turns every NodeError into a clean message and exit status 1."""


class NodeError(Exception):
    """Something the lab can fix; the message says what to do next."""


class ConfigError(NodeError):
    pass


class IngestError(NodeError):
    """A whole file cannot be read (bad rows are quarantined instead, never raised)."""


class MappingError(NodeError):
    pass


class SubmitError(NodeError):
    """The coordinator refused or could not be reached."""


class LedgerAlarm(NodeError):
    """The coordinator's log forked, shrank or lost a receipt: tell the coordinating centre."""

    recorded = False  # kept in the node's database already (node/alarms.py, node/witness.py)


class Unreachable(SubmitError):
    """The coordinator could not be reached (temporary: try again later; exit status 3)."""


class PeriodNotReady(NodeError):
    """A period that is still open, has not started, or holds no results: nothing is signed."""
