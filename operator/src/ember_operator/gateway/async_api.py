"""The async API on the gateway's client port: ``POST /async/<ns>/<name>``
queues an invocation (202 and its id), ``GET /async/<ns>/<name>/<id>``
reads its status and result.

It is an Endpoint of the HTTP core like the proxy, which hands it every
path under ``/async/``. What can be checked without Redis is checked
first, synchronously (the Function exists, the body size, the callback
URL against the allow-list); then one bounded Redis call answers. Redis
down or slow is a 503 with ``Retry-After`` within ``REDIS_TIMEOUT``,
never a request that hangs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from redis.exceptions import RedisError

from ember_operator.dispatch.allowlist import CallbackRefused, check_callback, parse_hosts
from ember_operator.dispatch.message import keep_header
from ember_operator.dispatch.store import Invocations, submitted
from ember_operator.gateway import faults
from ember_operator.gateway.async_body import Gather
from ember_runtime import logs
from ember_runtime.errors import CallFault
from ember_runtime.http.endpoint import Headers
from ember_runtime.http.reply import fault_reply, reply

PREFIX = b"/async/"
REDIS_TIMEOUT = 3.0
MAX_ID = 128
MAX_IDEMPOTENCY_KEY = 256

# The Redis behind the async API is unreachable or too slow: retry later.
QUEUE_UNAVAILABLE = CallFault("Gateway.QueueUnavailable", 503)
BAD_CALLBACK = CallFault("Gateway.BadCallbackUrl", 400)
CALLBACK_NOT_ALLOWED = CallFault("Gateway.CallbackNotAllowed", 400)
BAD_REQUEST = CallFault("Gateway.BadRequest", 400)
TOO_LARGE = CallFault("Gateway.PayloadTooLarge", 413)

_JSON = [("content-type", "application/json")]


class AsyncApi:
    def __init__(
        self,
        invocations: Invocations,
        knows: Callable[[tuple[str, str]], bool],
        *,
        max_body: int,
        callback_hosts: str = "",
        draining: Callable[[], bool] = lambda: False,
        access_log: bool = False,
    ) -> None:
        self.invocations = invocations
        self.knows = knows  # whether the gateway routes this Function
        self.max_body = max_body
        self.callback_hosts = parse_hosts(callback_hosts)
        self.draining = draining
        # A line per submission, like the proxy's access log (off: ~10 us each).
        self.access_log = access_log
        self.tasks: set[asyncio.Task[None]] = set()
        self.submitted = 0

    # --- the Endpoint of the HTTP core ------------------------------------

    def handle(
        self,
        conn: Any,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: bytes,
        request_id: str,
    ) -> None:
        parts = path[len(PREFIX) :].decode("latin-1").rstrip("/").split("/")
        if len(parts) not in (2, 3) or not all(parts):
            return self._fail(conn, faults.NOT_FOUND, "use /async/<namespace>/<name>", request_id)
        key = (parts[0], parts[1])
        if len(parts) == 2 and method != b"POST":
            return self._not_allowed(conn, method, "POST", request_id)
        if len(parts) == 3 and method not in (b"GET", b"HEAD"):
            return self._not_allowed(conn, method, "GET, HEAD", request_id)
        if not self.knows(key):
            return self._fail(
                conn, faults.NOT_FOUND, f"Function {key[0]}/{key[1]} does not exist", request_id
            )
        if len(parts) == 3:
            if len(parts[2]) > MAX_ID:
                return self._fail(conn, faults.NOT_FOUND, "no such invocation", request_id)
            return self._spawn(conn, request_id, self._status(conn, key, parts[2], request_id))
        if self.draining():
            return self._fail(
                conn, faults.UNAVAILABLE, "the gateway is shutting down", request_id, retry=True
            )
        # One pass: the headers the invocation keeps, and the two that are
        # the API's own.
        callback = idem = None
        pairs: list[tuple[str, str]] = []
        for k, v in headers:
            name = k.decode("latin-1").lower()
            if keep_header(name):
                pairs.append((name, v.decode("latin-1")))
            elif name == "x-ember-callback-url":
                callback = v
            elif name == "idempotency-key":
                idem = v
        callback_url: str | None = None
        if callback is not None:
            try:
                callback_url = check_callback(
                    callback.decode("utf-8", "replace").strip(), self.callback_hosts
                )
            except CallbackRefused as e:
                fault = BAD_CALLBACK if e.malformed else CALLBACK_NOT_ALLOWED
                return self._fail(conn, fault, str(e), request_id)
        idempotency_key = idem.decode("utf-8", "replace").strip() if idem is not None else None
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            return self._fail(
                conn,
                BAD_REQUEST,
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                request_id,
            )

        if type(body) is bytes:  # the common case: whole, and within the core's limits
            if len(body) > self.max_body:
                return self._too_large(conn, request_id)
            return self._submit(conn, key, body, pairs, idempotency_key, callback_url, request_id)

        def accept(data: bytes) -> None:
            if len(data) > self.max_body:
                return self._too_large(conn, request_id)
            return self._submit(conn, key, data, pairs, idempotency_key, callback_url, request_id)

        if isinstance(body, bytes | bytearray | memoryview):
            return accept(bytes(body))
        # A body the core streams (chunked, or above its threshold): gathered
        # here up to the async limit, since it is stored whole.
        if getattr(body, "length", -1) > self.max_body:
            body.detach()
            return self._too_large(conn, request_id)
        body.attach(
            Gather(
                body,
                self.max_body,
                accept,
                lambda: self._too_large(conn, request_id),
                lambda fault, msg: self._fail(conn, fault or BAD_REQUEST, msg, request_id),
            )
        )
        return None

    def _too_large(self, conn: Any, request_id: str) -> None:
        self._fail(
            conn,
            TOO_LARGE,
            f"the async request body is larger than {self.max_body} bytes"
            " (EMBER_ASYNC_MAX_BODY_BYTES)",
            request_id,
        )

    def rejected(self, status: int, code: str) -> None:
        return None

    # --- answers -------------------------------------------------------------

    def _fail(
        self,
        conn: Any,
        fault: CallFault,
        message: str,
        request_id: str,
        extra: list[tuple[str, str]] | None = None,
        *,
        retry: bool = False,
    ) -> None:
        extra = list(extra or [])
        if retry:
            extra.append(("retry-after", "1"))
        conn.send(fault_reply(fault, message, request_id, extra))

    def _not_allowed(self, conn: Any, method: bytes, allow: str, request_id: str) -> None:
        self._fail(
            conn,
            faults.METHOD_NOT_ALLOWED,
            f"{method.decode('latin-1')} is not allowed here; use {allow}",
            request_id,
            [("allow", allow)],
        )

    def _spawn(self, conn: Any, request_id: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(conn, request_id, coro))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guard(self, conn: Any, request_id: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):  # no extra task, unlike wait_for
                await coro
        except (RedisError, OSError, TimeoutError) as e:
            self._unavailable(conn, request_id, e)

    def _unavailable(self, conn: Any, request_id: str, e: BaseException) -> None:
        logs.emit("warning", "async API: redis unavailable", request_id=request_id, error=repr(e))
        self._fail(
            conn,
            QUEUE_UNAVAILABLE,
            "the async invocation store is unavailable; retry later",
            request_id,
            retry=True,
        )

    def _submit(
        self,
        conn: Any,
        key: tuple[str, str],
        body: bytes,
        headers: list[tuple[str, str]],
        idempotency_key: str | None,
        callback_url: str | None,
        request_id: str,
    ) -> None:
        """The hot path: no task and no coroutine, the answer is written
        from the store's future (bounded by a timer)."""
        fut = self.invocations.enqueue(
            key[0],
            key[1],
            body,
            headers,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            kept=True,
        )
        timer = asyncio.get_running_loop().call_later(REDIS_TIMEOUT, fut.cancel)

        def done(f: asyncio.Future[Any]) -> None:
            timer.cancel()
            error = TimeoutError("no answer from Redis") if f.cancelled() else f.exception()
            if error is not None:
                return self._unavailable(conn, request_id, error)
            invocation_id, created = submitted(f.result())
            if created:
                self.submitted += 1
                return self._accepted(conn, key, invocation_id, "queued", request_id, True)
            return self._spawn(
                conn, request_id, self._repeated(conn, key, invocation_id, request_id)
            )

        fut.add_done_callback(done)

    async def _repeated(self, conn: Any, key: tuple[str, str], inv: str, request_id: str) -> None:
        """The same Idempotency-Key again: the first invocation, as it stands."""
        record = await self.invocations.get(key[0], key[1], inv)
        status = str(record["status"]) if record else "queued"
        self._accepted(conn, key, inv, status, request_id, False)

    def _accepted(
        self, conn: Any, key: tuple[str, str], inv: str, status: str, request_id: str, new: bool
    ) -> None:
        if self.access_log or not new:
            logs.emit(
                "info",
                "async invocation queued" if new else "async invocation repeated",
                request_id=request_id,
                invocation_id=inv,
                function=f"{key[0]}/{key[1]}",
            )
        payload = b'{"invocationId":"%s","status":"%s"}' % (inv.encode(), status.encode())
        location = f"/async/{key[0]}/{key[1]}/{inv}"
        extra = [("x-ember-invocation-id", inv), ("location", location)]
        conn.send(reply(request_id, 202 if new else 200, _JSON + extra, payload))

    async def _status(self, conn: Any, key: tuple[str, str], inv: str, request_id: str) -> None:
        record = await self.invocations.get(key[0], key[1], inv)
        if record is None:
            return self._fail(
                conn,
                faults.NOT_FOUND,
                f"no invocation {inv} of {key[0]}/{key[1]} (unknown, or past the retention window)",
                request_id,
            )
        payload = json.dumps(record, separators=(",", ":")).encode()
        conn.send(reply(request_id, 200, _JSON, payload))

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await self.invocations.redis.aclose()
