"""One invocation, from request tuple to response tuple, on either side of
the worker hop.

A sync handler runs this in a worker process; an async handler runs the same
steps on the server's event loop. Keeping one code path means a handler sees
the same event, context and error mapping wherever it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ember_runtime import logs
from ember_runtime.codec import InvalidResult, decode_event, encode_result
from ember_runtime.contract import Context, Handler, parse_query, valid_traceparent
from ember_runtime.errors import HANDLER_ERROR, INTERNAL, INVALID_RESPONSE, BadEvent, CallFault
from ember_runtime.http.reply import Reply, fault_reply, reply
from ember_runtime.tracebacks import user_traceback

# On the wire: (request_id, method, path, query, [(name, value)], body, deadline)
Request = tuple[str, str, bytes, bytes, list[tuple[bytes, bytes]], bytes, float]


def prepare(function: str, req: Request) -> tuple[Any, Context]:
    """Decode the event and build the context; raises ``BadEvent``."""
    request_id, method, path, query, raw_headers, body, deadline = req
    # Straight to the dict make_context would build: this runs on every call.
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
    tp = headers.get("traceparent")
    ctx = Context(
        request_id,
        function,
        deadline,
        method,
        path.decode("utf-8", "replace"),
        headers,
        parse_query(query.decode("utf-8", "replace")) if query else {},
        valid_traceparent(tp) if tp is not None else None,
    )
    return decode_event(headers.get("content-type"), body), ctx


def _result_reply(result: Any, ctx: Context) -> Reply:
    try:
        status, headers, body = encode_result(result)
    except InvalidResult as exc:
        ctx.logger.error(str(exc), error=INVALID_RESPONSE.code)
        return fault_reply(INVALID_RESPONSE, str(exc), ctx.request_id)
    return reply(ctx.request_id, status, headers, body)


def _handler_failed(exc: BaseException, ctx: Context) -> Reply:
    message = f"{type(exc).__name__}: {exc}"
    ctx.logger.error(
        "handler raised",
        error=HANDLER_ERROR.code,
        exception=type(exc).__name__,
        traceback=user_traceback(exc),
    )
    return fault_reply(HANDLER_ERROR, message, ctx.request_id)


def internal_fault(exc: BaseException, req: Request) -> Reply:
    """The answer when the runtime itself failed a call (a bug, not the handler's)."""
    message = f"the runtime failed this call: {type(exc).__name__}: {exc}"
    log_call_fault(INTERNAL, req[0], "", message)
    return fault_reply(INTERNAL, message, req[0])


def invoke_sync(handler: Handler, function: str, req: Request) -> Reply:
    try:
        event, ctx = prepare(function, req)
    except BadEvent as exc:
        return fault_reply(exc.fault, exc.message, req[0])
    try:
        result = handler(event, ctx)
    except Exception as exc:
        return _handler_failed(exc, ctx)
    return _result_reply(result, ctx)


async def invoke_async(handler: Handler, function: str, req: Request) -> Reply:
    try:
        event, ctx = prepare(function, req)
    except BadEvent as exc:
        return fault_reply(exc.fault, exc.message, req[0])
    try:
        awaitable: Awaitable[Any] = handler(event, ctx)
        result = await awaitable
    except Exception as exc:
        return _handler_failed(exc, ctx)
    return _result_reply(result, ctx)


def log_call_fault(fault: CallFault, request_id: str, function: str, message: str) -> None:
    logs.emit("error", message, error=fault.code, request_id=request_id, function=function)
