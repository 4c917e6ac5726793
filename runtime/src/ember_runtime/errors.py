"""Stable fault codes, so callers, logs and dashboards can match on a name.

Two families, kept apart the way the Lambda runtime client keeps them:
load faults stop the process before it serves anything (each with its own
exit status, so ``kubectl get pod`` already tells them apart), and call
faults become one HTTP answer while the pod keeps serving.
"""

from __future__ import annotations

from enum import Enum


class LoadFault(Enum):
    """Why a function could not be loaded; the value is the process exit status."""

    INVALID_CONFIG = 2
    INVALID_TARGET = 10
    SOURCE_NOT_FOUND = 11
    MODULE_NOT_FOUND = 12
    SYNTAX_ERROR = 13
    IMPORT_ERROR = 14
    HANDLER_NOT_FOUND = 15

    @property
    def code(self) -> str:
        return _LOAD_CODES[self]

    @property
    def exit_status(self) -> int:
        return self.value


_LOAD_CODES = {
    LoadFault.INVALID_CONFIG: "Runtime.InvalidConfig",
    LoadFault.INVALID_TARGET: "Runtime.InvalidTarget",
    LoadFault.SOURCE_NOT_FOUND: "Runtime.SourceNotFound",
    LoadFault.MODULE_NOT_FOUND: "Runtime.ImportModuleError",
    LoadFault.SYNTAX_ERROR: "Runtime.UserCodeSyntaxError",
    LoadFault.IMPORT_ERROR: "Runtime.UserCodeImportError",
    LoadFault.HANDLER_NOT_FOUND: "Runtime.HandlerNotFound",
}


class LoadError(Exception):
    """The function cannot start; the message says what was found instead."""

    def __init__(self, fault: LoadFault, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message


class CallFault:
    """One way an invocation can fail, with the HTTP status it maps to."""

    __slots__ = ("code", "status")

    def __init__(self, code: str, status: int) -> None:
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return f"CallFault({self.code!r}, {self.status})"


HANDLER_ERROR = CallFault("Runtime.HandlerError", 500)
INVALID_RESPONSE = CallFault("Runtime.InvalidResponse", 500)
WORKER_CRASHED = CallFault("Runtime.WorkerCrashed", 500)
TIMEOUT = CallFault("Runtime.Timeout", 504)
MALFORMED_JSON = CallFault("Runtime.MalformedJSON", 400)
BAD_REQUEST = CallFault("Runtime.BadRequest", 400)
PAYLOAD_TOO_LARGE = CallFault("Runtime.PayloadTooLarge", 413)
HEADERS_TOO_LARGE = CallFault("Runtime.HeadersTooLarge", 431)
OVERLOADED = CallFault("Runtime.Overloaded", 429)
UNAVAILABLE = CallFault("Runtime.Unavailable", 503)
REQUEST_TIMEOUT = CallFault("Runtime.RequestTimeout", 408)
METHOD_NOT_ALLOWED = CallFault("Runtime.MethodNotAllowed", 405)
# A call without a valid, fresh gateway signature (``signing``).
FORBIDDEN = CallFault("Runtime.Forbidden", 403)
# A bug in the runtime, not in the handler: the call fails, the pod serves on.
INTERNAL = CallFault("Runtime.InternalError", 500)


class BadEvent(Exception):
    """The request body does not decode as its content type claims."""

    def __init__(self, fault: CallFault, message: str) -> None:
        super().__init__(message)
        self.fault = fault
        self.message = message
