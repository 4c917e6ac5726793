"""Bytes to events and results to bytes: the codec both sides of the worker
hop share, so a handler sees the same ``event`` and its return value becomes
the same answer wherever it runs.

Strict where a client could be hurt: JSON nested too deeply is a 400, not a
dead worker; NaN is not JSON; a ``Response`` cannot set the framing headers
(content-length, transfer-encoding) that only the server may write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ember_runtime.contract import Headers, Response
from ember_runtime.errors import BAD_REQUEST, MALFORMED_JSON, BadEvent


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
