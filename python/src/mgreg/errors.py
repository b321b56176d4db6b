"""Exceptions named like tf.errors, one per gRPC status code.

Every error mgreg raises for a failed call derives from MgregError and carries `.code` (a
grpc.StatusCode) and `.message` (the server's text, which says what to change). Errors of
a call are raised `from` the grpc.RpcError. They take tf.errors' names but do not subclass
them (TensorFlow is not a dependency); a few also derive from the matching builtin so that
`except LookupError` or `except ConnectionError` work as expected.
"""

import grpc


class MgregError(Exception):
    """Base of every mgreg error: `.code` is a grpc.StatusCode, `.message` the text."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self):
        return f"{self.code.name}: {self.message}"


def _define(name, code, *bases, doc):
    cls = type(name, (MgregError,) + bases, {"code": code, "__doc__": doc})
    cls.__module__ = __name__
    return cls


C = grpc.StatusCode
CancelledError = _define("CancelledError", C.CANCELLED, doc="The call was cancelled.")
UnknownError = _define("UnknownError", C.UNKNOWN, doc="An error the server did not classify.")
InvalidArgumentError = _define(
    "InvalidArgumentError", C.INVALID_ARGUMENT, ValueError,
    doc="A malformed name, step, prefix, option or request sequence.")
DeadlineExceededError = _define("DeadlineExceededError", C.DEADLINE_EXCEEDED, TimeoutError,
                                doc="The call did not finish within its timeout.")
NotFoundError = _define("NotFoundError", C.NOT_FOUND, LookupError,
                        doc="An unknown model, step, alias, file, collection or upload.")
AlreadyExistsError = _define(
    "AlreadyExistsError", C.ALREADY_EXISTS,
    doc="The step exists with different content (push with overwrite=True to replace it).")
PermissionDeniedError = _define(
    "PermissionDeniedError", C.PERMISSION_DENIED,
    doc="The token is valid but its role or model prefixes do not allow this call.")
ResourceExhaustedError = _define("ResourceExhaustedError", C.RESOURCE_EXHAUSTED,
                                 doc="A server limit was hit, or its disk is full.")
FailedPreconditionError = _define(
    "FailedPreconditionError", C.FAILED_PRECONDITION,
    doc="The system is not in a state for this call (files missing at commit, an "
        "unwritable restore directory, ...).")
AbortedError = _define("AbortedError", C.ABORTED, doc="The call was aborted.")
OutOfRangeError = _define(
    "OutOfRangeError", C.OUT_OF_RANGE,
    doc="A watch resumed from a revision the server no longer retains.")
UnimplementedError = _define("UnimplementedError", C.UNIMPLEMENTED,
                             doc="The server does not implement this call.")
InternalError = _define("InternalError", C.INTERNAL, doc="An internal server error.")
UnavailableError = _define("UnavailableError", C.UNAVAILABLE, ConnectionError,
                           doc="The server cannot be reached (down, wrong address, TLS).")
DataLossError = _define(
    "DataLossError", C.DATA_LOSS,
    doc="Bytes that do not match their announced size or SHA-256 (on either side).")
UnauthenticatedError = _define("UnauthenticatedError", C.UNAUTHENTICATED,
                               doc="No token, or a token the server does not know.")
del C

_BY_CODE = {cls.code: cls for cls in (
    CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError, NotFoundError,
    AlreadyExistsError, PermissionDeniedError, ResourceExhaustedError,
    FailedPreconditionError, AbortedError, OutOfRangeError, UnimplementedError, InternalError,
    UnavailableError, DataLossError, UnauthenticatedError)}


def error_class(code):
    """The MgregError subclass for a grpc.StatusCode."""
    return _BY_CODE.get(code, UnknownError)


def from_rpc_error(error, context=""):
    """The MgregError for a grpc.RpcError (raise it `from` the original)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    if code == grpc.StatusCode.UNAVAILABLE and context:
        details = f"{context}: {details}"
    return error_class(code)(details)


__all__ = ["MgregError", "error_class", "from_rpc_error"] + sorted(
    cls.__name__ for cls in _BY_CODE.values())
