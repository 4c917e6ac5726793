"""The function contract: what a handler receives, what it may return, and
how ``module:function`` is found.

Everything here is pure and runs on both sides of the worker hop, so it is
unit-tested without a server. Loading fails loudly: each fault has a stable
code (see ``errors``) and the message lists what was found, because a pod in
CrashLoopBackOff with "handler not found" and nothing else costs users an
afternoon.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from importlib.machinery import ModuleSpec, SourceFileLoader
from types import FunctionType, ModuleType
from typing import Any

# Kept light on purpose: everything imported here is on the boot path before
# the zygote forks (inspect, dataclasses, pathlib and urllib.parse together
# cost tens of milliseconds), so the rest is imported where it is used.
from ember_runtime.errors import BAD_REQUEST, MALFORMED_JSON, BadEvent, LoadError, LoadFault
from ember_runtime.logs import FunctionLogger

Handler = Callable[[Any, "Context"], Any]
Headers = list[tuple[str, str]]

_PKG_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class Response:
    """Full control over the answer: ``Response(body, status=201, headers={...})``."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: Any = b"", status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.body = body
        self.status = status
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"Response(status={self.status}, headers={self.headers!r})"


class Context:
    """What a handler knows about its call besides the event."""

    __slots__ = (
        "_logger",
        "deadline",
        "function",
        "headers",
        "method",
        "path",
        "query",
        "request_id",
        "traceparent",
    )

    def __init__(
        self,
        request_id: str,
        function: str,
        deadline: float,
        method: str = "POST",
        path: str = "/",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        traceparent: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.function = function
        #: Wall-clock time (``time.time()``) at which the runtime answers 504.
        self.deadline = deadline
        self.method = method
        self.path = path
        #: Request headers, names lower-cased.
        self.headers = headers if headers is not None else {}
        #: Query parameters; the last value wins when a name repeats.
        self.query = query if query is not None else {}
        #: The inbound W3C ``traceparent``, when it was well-formed.
        self.traceparent = traceparent
        self._logger: FunctionLogger | None = None

    @property
    def logger(self) -> FunctionLogger:
        """JSON-line logger tagged with this call's request id and trace id."""
        if self._logger is None:
            self._logger = FunctionLogger(
                request_id=self.request_id, function=self.function, trace_id=self.trace_id
            )
        return self._logger

    def remaining_ms(self) -> int:
        """Milliseconds left before the deadline (never negative)."""
        return max(0, int((self.deadline - time.time()) * 1000))

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.traceparent)

    def __repr__(self) -> str:
        return (
            f"Context(request_id={self.request_id!r}, function={self.function!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent)
    return m.group(1) if m else None


def valid_traceparent(value: str | None) -> str | None:
    """Return ``value`` when it is a well-formed W3C traceparent, else None."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if _TRACEPARENT.match(value) and not value.startswith("ff") else None


def make_context(
    *,
    request_id: str,
    function: str,
    deadline: float,
    method: str,
    path: str,
    query_string: str,
    headers: Headers,
) -> Context:
    hdrs = {k.lower(): v for k, v in headers}
    tp = hdrs.get("traceparent")
    traceparent = valid_traceparent(tp) if tp is not None else None
    return Context(
        request_id=request_id,
        function=function,
        deadline=deadline,
        method=method,
        path=path,
        headers=hdrs,
        query=parse_query(query_string) if query_string else {},
        traceparent=traceparent,
    )


def parse_query(query_string: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query_string, keep_blank_values=True))


# --- events ---------------------------------------------------------------


def decode_event(content_type: str | None, body: bytes) -> Any:
    """Turn a request body into the handler's ``event``.

    JSON content types give the parsed object, ``text/*`` gives str, anything
    else gives bytes. An empty body is ``None`` whatever the type, so a plain
    ``GET`` reads naturally.
    """
    if not body:
        return None
    if not content_type:
        return body
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(body)
        except ValueError as exc:
            raise BadEvent(MALFORMED_JSON, f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadEvent(MALFORMED_JSON, "request body is JSON nested too deeply") from None
    if mime.startswith("text/") or mime in ("application/x-www-form-urlencoded",):
        charset = "utf-8"
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError) as exc:
            raise BadEvent(
                BAD_REQUEST, f"request body does not decode as {charset}: {exc}"
            ) from None
    return body


# --- results --------------------------------------------------------------

JSON_TYPE = "application/json"


def _json_encoder() -> Callable[[Any], str]:
    """One compact JSON encoder for every call: ``json.dumps`` builds a new
    C encoder each time. No circular-reference markers: a cycle ends in
    RecursionError, which the caller treats like any unencodable value."""
    try:
        from _json import make_encoder
    except ImportError:  # pragma: no cover - CPython always has _json
        return json.JSONEncoder(separators=(",", ":")).encode
    encode = make_encoder(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        False,  # allow_nan: NaN and Infinity are not JSON; no client could parse them
    )
    return lambda obj: "".join(encode(obj, 0))


_JSON_ENCODE = _json_encoder()
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"


class InvalidResult(Exception):
    """The handler returned something the contract cannot turn into HTTP."""


_BYTES_LIKE = (bytes, bytearray, memoryview)
_JSON_LIKE = (dict, list, tuple, int, float, bool)
_JSON_HEADERS = ("content-type", JSON_TYPE)


def _json_body(body: Any) -> bytes:
    try:
        return _JSON_ENCODE(body).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidResult(f"return value is not JSON-serialisable: {exc}") from None


def _encode_body(body: Any) -> tuple[bytes, str | None]:
    # Tuples, not ``bytes | bytearray``: a union is built anew on every call.
    if body is None:
        return b"", None
    if isinstance(body, _BYTES_LIKE):
        return bytes(body), BYTES_TYPE
    if isinstance(body, str):
        return body.encode("utf-8"), TEXT_TYPE
    if isinstance(body, _JSON_LIKE):
        return _json_body(body), JSON_TYPE
    raise InvalidResult(
        f"handler returned {type(body).__name__}; return dict, list, str, bytes or Response"
    )


# Framing and hop-by-hop headers are the server's to write: a handler's
# content-length or transfer-encoding would contradict the real framing
# (two content-lengths, or a body where none may be).
_SERVER_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _response_headers(given: Mapping[str, Any]) -> Headers:
    headers: Headers = []
    for k, v in given.items():
        name, value = str(k), str(v)
        if not _TOKEN.match(name):
            raise InvalidResult(f"Response header name {name!r} is not a valid HTTP token")
        if any(c in value for c in "\r\n\0"):
            raise InvalidResult("Response headers may not contain CR, LF or NUL")
        if name.lower() not in _SERVER_HEADERS:
            headers.append((name, value))
    return headers


def encode_result(result: Any) -> tuple[int, Headers, bytes]:
    """Map a handler's return value to ``(status, headers, body)``.

    dict/list (and other JSON scalars) → JSON, str → text/plain, bytes →
    octet-stream, None → 204, ``Response`` → as given.
    """
    if type(result) is dict:  # the common case, first
        return 200, [_JSON_HEADERS], _json_body(result)
    if isinstance(result, Response):
        status = result.status
        if type(status) is not int or not 200 <= status <= 599:
            raise InvalidResult(f"Response status {status!r} is not an HTTP status (200-599)")
        body, ctype = _encode_body(result.body)
        headers = _response_headers(result.headers)
        if ctype and not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("content-type", ctype))
        return status, headers, body
    if result is None:
        return 204, [], b""
    body, ctype = _encode_body(result)
    return 200, [("content-type", ctype or BYTES_TYPE)], body


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the runtime's own frames."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.realpath(f.filename).startswith(_PKG_DIR)
    ]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


# --- loading --------------------------------------------------------------


class Target:
    __slots__ = ("function", "module")

    def __init__(self, module: str, function: str) -> None:
        self.module = module
        self.function = function


def parse_target(spec: str) -> Target:
    module, sep, function = spec.strip().partition(":")
    if not sep or not module or not function or not function.isidentifier():
        raise LoadError(
            LoadFault.INVALID_TARGET,
            f"target {spec!r} is not of the form 'module:function' (for example 'main:handle')",
        )
    if not all(part.isidentifier() for part in module.split(".")):
        raise LoadError(LoadFault.INVALID_TARGET, f"target module {module!r} is not a module name")
    return Target(module, function)


def _py_files(directory: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(".py"))
    except OSError:
        return []


def _import_source(source: str, target: Target) -> ModuleType:
    directory = os.path.dirname(os.path.abspath(source))
    filename = os.path.basename(source)
    if not os.path.isfile(source):
        found = _py_files(directory)
        raise LoadError(
            LoadFault.SOURCE_NOT_FOUND,
            f"source file {source!r} does not exist. Found in {directory!r}: "
            f"{', '.join(found) or 'no Python files'}",
        )
    name = filename[:-3] if filename.endswith(".py") else filename.partition(".")[0]
    if target.module != name:
        raise LoadError(
            LoadFault.INVALID_TARGET,
            f"target module {target.module!r} does not match source file {filename!r}; "
            f"use '{name}:{target.function}'",
        )
    # Sibling files in the source directory import as they would locally.
    sys.path.insert(0, directory)
    path = os.path.abspath(source)
    loader = SourceFileLoader(name, path)
    spec = ModuleSpec(name, loader, origin=path)
    spec.has_location = True
    module = ModuleType(name)
    module.__spec__ = spec
    module.__loader__ = loader
    module.__file__ = path
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(target: Target) -> ModuleType:
    try:
        return importlib.import_module(target.module)
    except ModuleNotFoundError as exc:
        if exc.name and target.module.startswith(exc.name):
            cwd = os.getcwd()
            here = [n[:-3] for n in _py_files(cwd)]
            raise LoadError(
                LoadFault.MODULE_NOT_FOUND,
                f"no module named {target.module!r} on the Python path. "
                f"Modules in {cwd!r}: {', '.join(here) or 'none'}",
            ) from None
        raise


def load_target(spec: str, source: str | None = None) -> Handler:
    """Import the user's module and return its handler, or raise ``LoadError``."""
    target = parse_target(spec)
    origin = source or target.module
    # Function sources live on read-only mounts (a ConfigMap): never try to
    # write .pyc files next to them. Only the user's import is affected; the
    # runtime's own modules keep their compiled bytecode.
    writes_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        module = _import_source(source, target) if source else _import_module(target)
    except LoadError:
        raise
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else origin
        raise LoadError(LoadFault.SYNTAX_ERROR, f"syntax error in {where}: {exc.msg}") from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise LoadError(
            LoadFault.IMPORT_ERROR,
            f"importing {origin!r} raised {type(exc).__name__}: {exc}\n{user_traceback(exc)}",
        ) from None
    finally:
        sys.dont_write_bytecode = writes_bytecode
    fn = getattr(module, target.function, None)
    if fn is None or not callable(fn):
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, FunctionType)
            and not name.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
        )
        what = "a function" if fn is None else f"a callable, not {type(fn).__name__},"
        raise LoadError(
            LoadFault.HANDLER_NOT_FOUND,
            f"{str(source) if source else 'module ' + repr(target.module)} is expected to contain "
            f"{what} named {target.function!r}. Found: {', '.join(found) or 'no functions'}",
        )
    return fn  # type: ignore[no-any-return]


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect


def is_async_handler(fn: Handler) -> bool:
    """True for ``async def`` functions and objects with an ``async def __call__``."""
    for candidate in (fn, getattr(type(fn), "__call__", None)):  # noqa: B004
        code = getattr(getattr(candidate, "__func__", candidate), "__code__", None)
        if code is not None and code.co_flags & _CO_COROUTINE:
            return True
    return False
