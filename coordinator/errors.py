"""The coordinator's errors: what went wrong, in the coordinator's own terms.

Every refusal tells the lab or the operator what to do next. These classes know nothing of gRPC
or of exit statuses: coordinator/server.py maps them to gRPC status codes (STATUS_CODES) and
coordinator/cli.py to exit statuses (EXIT_STATUSES), one table each.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    """Something the coordinator refuses or cannot do; the message says what to do next."""


class NotAuthenticated(CoordinatorError):
    """Who sent it cannot be established: unsigned, an unknown or retired key, a signature that
    does not verify, an enrolment token that is not valid."""


class NotPermitted(CoordinatorError):
    """The sender is known but may not do this: a revoked site, a used or expired token, a
    payload naming another site."""


class InvalidRequest(CoordinatorError):
    """What was sent or asked is malformed or wrong in itself."""


class WrongState(CoordinatorError):
    """A valid request that cannot be met in the current state: an EQA round closed or not yet
    closed, a schema this coordinator does not know, a truth file other than the sealed one."""


class AlreadyRecorded(CoordinatorError):
    """It was done before: a replayed sequence number, a key or round that already exists."""


class RateLimited(CoordinatorError):
    """A site sends faster than its rate allows; it may send again shortly."""


class NotFound(CoordinatorError):
    """No such site, round, summary or standard version."""


class NothingToReport(NotFound):
    """A period with no accepted summary: there is nothing to benchmark (exit 1, no report)."""


class TemporarilyUnavailable(CoordinatorError):
    """Try again shortly (nodes retry this by themselves)."""
