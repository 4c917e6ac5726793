"""The gateway's own answers, with stable codes in the runtime's error shape
(``{error, message, request_id}``), so a caller can tell "the gateway could
not route or reach the function" from anything the function said."""

from __future__ import annotations

from ember_runtime.errors import CallFault

NOT_FOUND = CallFault("Gateway.NotFound", 404)
METHOD_NOT_ALLOWED = CallFault("Gateway.MethodNotAllowed", 405)
# The held queue of a function is full: retry after Retry-After.
OVERLOADED = CallFault("Gateway.Overloaded", 503)
# No pod of the function could serve within the activation timeout.
ACTIVATION_TIMEOUT = CallFault("Gateway.ActivationTimeout", 504)
# The function did not answer within its timeoutSeconds plus the margin.
TIMEOUT = CallFault("Gateway.Timeout", 504)
# The request reached a pod, and the connection failed before an answer.
UPSTREAM_FAILED = CallFault("Gateway.UpstreamFailed", 502)
# The gateway is shutting down and will not take this call.
UNAVAILABLE = CallFault("Gateway.Unavailable", 503)
