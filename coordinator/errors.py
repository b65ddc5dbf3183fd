"""The coordinator's errors and the one place they map to gRPC status codes.

Every refusal tells the lab what to do next. Anything unexpected becomes INTERNAL with a
generic message; the detail goes to the log only.
"""

from __future__ import annotations

import grpc


class CoordinatorError(Exception):
    code = grpc.StatusCode.INTERNAL


class Unauthenticated(CoordinatorError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(CoordinatorError):
    code = grpc.StatusCode.PERMISSION_DENIED


class InvalidArgument(CoordinatorError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(CoordinatorError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(CoordinatorError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(CoordinatorError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NotFound(CoordinatorError):
    code = grpc.StatusCode.NOT_FOUND


class Unavailable(CoordinatorError):
    """Try again shortly (nodes retry this by themselves)."""

    code = grpc.StatusCode.UNAVAILABLE
