"""One attempt: a POST through the gateway, as any caller makes it.

Through the gateway, not to a pod: a Function at zero wakes the same way
for a queued message as for a call, the gateway's per-pod limits and
signing apply, and the dispatcher needs no endpoint watch of its own.
The dispatcher names the attempt in headers the function can read:
``x-ember-invocation-id``, ``x-ember-attempt`` and, when known,
``idempotency-key``; ``x-request-id`` is the invocation id, so gateway,
dispatcher and runtime logs carry the same id.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import aiohttp

from ember_operator.dispatch.http1 import Http1Pool, parse_http_url
from ember_operator.dispatch.message import Message
from ember_operator.dispatch.policy import Outcome

# The gateway's own answers that say "not now" rather than "never": its
# held queue for the function is full; it does not know the Function yet
# (its watch is behind the dispatcher's).
OVERLOADED_CODE = "Gateway.Overloaded"
NOT_FOUND_CODE = "Gateway.NotFound"


class Answer(NamedTuple):  # a tuple: one per call, and cheaper to make than a dataclass
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Invoker:
    def __init__(
        self, gateway_url: str, timeout_seconds: float, max_body: int, connections: int = 256
    ) -> None:
        self.base = gateway_url.rstrip("/")
        self.seconds = timeout_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_body = max_body
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        plain = parse_http_url(self.base)
        # Plain http (the gateway's Service): the lean client; https: aiohttp.
        self.pool = Http1Pool(plain[0], plain[1], max_body, connections) if plain else None
        self.prefix = plain[2] if plain else ""

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, trust_env=False, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self._session is not None:
            await self._session.close()

    async def call(
        self, namespace: str, function: str, m: Message
    ) -> tuple[Outcome, Answer | None]:
        headers = dict(m.headers)
        headers.setdefault("content-type", m.content_type())
        headers["x-ember-invocation-id"] = m.id
        headers["x-ember-attempt"] = str(m.attempt)
        headers["x-request-id"] = m.id
        if m.idempotency_key:
            headers["idempotency-key"] = m.idempotency_key
        try:
            if self.pool is not None:
                path = f"{self.prefix}/fn/{namespace}/{function}"
                answer = Answer(*await self.pool.post(path, headers, m.body, self.seconds))
            else:
                url = f"{self.base}/fn/{namespace}/{function}"
                async with self.session().post(url, data=m.body, headers=headers) as r:
                    body = await r.content.read(self.max_body + 1)
                    answer = Answer(r.status, [(k.lower(), v) for k, v in r.headers.items()], body)
        except TimeoutError:
            return Outcome(None, "timed out waiting for the function"), None
        except (aiohttp.ClientError, OSError) as e:
            return Outcome(None, f"gateway unreachable: {e!r}"), None
        return classify(answer), answer


_OK = {status: Outcome(status) for status in range(200, 400)}


def classify(a: Answer) -> Outcome:
    if a.status < 400:
        return _OK.get(a.status) or Outcome(a.status)
    code = ""
    try:
        parsed = json.loads(a.body[:4096])
        if isinstance(parsed, dict):
            code = str(parsed.get("error") or "")
    except ValueError:
        pass
    error = code or a.body[:200].decode("utf-8", "replace")
    if a.status == 404 and code == NOT_FOUND_CODE:
        # The gateway does not route it (yet): worth retrying, not a bad request.
        return Outcome(503, f"{code} (the gateway does not route this Function)")
    return Outcome(a.status, error, overloaded=code == OVERLOADED_CODE)
