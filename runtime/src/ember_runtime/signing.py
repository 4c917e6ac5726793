"""Signed invocations: the gateway proves that it sent a call, the runtime
checks the proof before it admits the call.

Why: our CNI (like many) enforces no NetworkPolicy, so any pod in the
cluster can reach any function pod's port and skip the gateway's routing,
limits and logs. A function pod with a key refuses every call that does not
carry a fresh HMAC over what it asks for. Each Function has its own key,
derived from one per-install secret (``function_key``), so a function that
learns its own key (it is in its env) cannot forge calls to another.

The signature covers the method, the raw request target (path and query),
the request id, a timestamp and the pod it was sent to (the address the
gateway connected to, which the runtime reads off its own socket); the
runtime refuses it outside a window of ``REPLAY_WINDOW_SECONDS`` either
way, and a ``(timestamp, request id)`` it has already served within the
window (a replay). Binding the pod makes the replay memory enough though
each pod keeps its own: a call captured on its way to one pod is refused
by every other pod of the Function, and by its own as a replay. The replay memory is
bounded: under more load than it holds, the oldest second is forgotten and
calls stamped at or before it are refused, so memory never grows and no
forgotten signature can be replayed.

Stdlib only (``hmac``, ``hashlib``): the gateway and the runtime import it,
and the runtime has no room for another dependency on its boot path.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "x-ember-signature"  # value: "t=<unix seconds>,v2=<hex hmac-sha256>"
REPLAY_WINDOW_SECONDS = 60

_KEY_CONTEXT = b"ember/function-key/v1\0"
_HEADER_NAME = SIGNATURE_HEADER.encode("ascii")
_HEADER_SHAPE = "expected t=<unix seconds>,v2=<64 hex digits>"


def function_key(install_secret: bytes, namespace: str, name: str) -> bytes:
    """One Function's key: HMAC-SHA256 of the install secret over its
    namespace and name (NUL-separated: neither may contain one)."""
    message = _KEY_CONTEXT + namespace.encode("utf-8") + b"\0" + name.encode("utf-8")
    return hmac.new(install_secret, message, hashlib.sha256).digest()


def canonical_target(target: bytes) -> bytes:
    """The target as the runtime sees it: ``/a?`` (an empty query) is ``/a``
    (the HTTP core splits path and query and cannot tell them apart)."""
    if target[-1:] == b"?":
        path, _, query = target.partition(b"?")
        if not query:
            return path
    return target


def pod_address(host: str, port: int) -> bytes:
    """How a pod is named in a signature: ``ip:port`` (``[ip]:port`` for IPv6)."""
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode("ascii")


def _mac(
    key: bytes, timestamp: bytes, method: bytes, target: bytes, request_id: bytes, pod: bytes
) -> str:
    # Newline-separated: no field can hold one (HTTP forbids it in a method
    # or target; the runtime takes only printable request ids).
    message = b"v2\n%s\n%s\n%s\n%s\n%s" % (
        timestamp,
        method,
        canonical_target(target),
        request_id,
        pod,
    )
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(
    key: bytes, method: str, target: str, request_id: str, pod: bytes, now: float | None = None
) -> str:
    """The ``x-ember-signature`` value for one call to one pod.

    ``target`` is the raw request target the runtime will receive (path plus
    ``?query`` if any); it and ``request_id`` (the ``x-request-id`` sent
    with the call) are taken as latin-1, byte for byte, as the HTTP core
    decodes them. ``pod`` is ``pod_address`` of where the call goes.
    """
    t = b"%d" % int(time.time() if now is None else now)
    mac = _mac(
        key,
        t,
        method.upper().encode("ascii"),
        target.encode("latin-1"),
        request_id.encode("latin-1"),
        pod,
    )
    return f"t={t.decode()},v2={mac}"


def key_id(key: bytes) -> str:
    """A short, non-secret name for a key (pods roll when it changes)."""
    return hmac.new(key, b"ember/key-id", hashlib.sha256).hexdigest()[:16]


def find_signature(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The signature header's value among raw request headers (the first)."""
    for name, value in headers:
        if len(name) == 17 and name.lower() == _HEADER_NAME:
            return value
    return None


class Verifier:
    """Checks signatures with one key and remembers what it let through.

    Remembered: per whole second of signature timestamp, the request ids
    served. Seconds that fall out of the window are dropped as time moves;
    past ``max_remembered`` ids the oldest second is dropped early and
    ``floor`` rises to it, so a call stamped at or before ``floor`` is
    refused even inside the window (it might be a replay of a forgotten one).
    """

    __slots__ = (
        "_pods",
        "_pruned",
        "floor",
        "key",
        "max_remembered",
        "remembered",
        "seen",
        "window",
    )

    def __init__(
        self, key: bytes, window: float = REPLAY_WINDOW_SECONDS, max_remembered: int = 100_000
    ) -> None:
        if max_remembered < 1:
            raise ValueError("max_remembered must be at least 1")
        self.key = key
        self.window = window
        self.max_remembered = max_remembered
        self.seen: dict[int, set[str]] = {}
        self.remembered = 0
        self.floor = -1
        self._pruned = -1
        self._pods: dict[tuple[str, int], bytes] = {}  # local address -> pod_address

    def check(
        self,
        header: bytes | None,
        method: bytes,
        target: bytes,
        request_id: str,
        pod: bytes,
        now: float,
    ) -> str | None:
        """None when the call may run (and it is remembered), else why not."""
        if header is None:
            return f"unsigned call: no {SIGNATURE_HEADER} header"
        t_field, comma, v_field = header.partition(b",")
        if not comma or t_field[:2] != b"t=" or v_field[:3] != b"v2=" or len(v_field) != 67:
            return f"malformed {SIGNATURE_HEADER} header: {_HEADER_SHAPE}"
        t_bytes = t_field[2:]
        if not t_bytes.isdigit() or len(t_bytes) > 12:
            return f"malformed {SIGNATURE_HEADER} header: {_HEADER_SHAPE}"
        t = int(t_bytes)
        age = now - t
        if age > self.window:
            return f"stale signature: signed {age:.0f}s ago, the window is {self.window:g}s"
        if -age > self.window:
            return (
                f"signature from the future: {-age:.0f}s ahead of this pod's clock,"
                f" the window is {self.window:g}s"
            )
        expected = _mac(self.key, t_bytes, method, target, request_id.encode("latin-1"), pod)
        if not hmac.compare_digest(expected.encode("ascii"), v_field[3:].lower()):
            return (
                "bad signature: it does not match this call's method, target,"
                " request id and pod under this function's key"
            )
        return self._remember(t, request_id, now)

    def check_call(
        self,
        headers: list[tuple[bytes, bytes]],
        method: bytes,
        target: bytes,
        request_id: str,
        local: tuple[str, int] | None,
        now: float,
    ) -> str | None:
        """``check`` with the signature taken from raw request headers, for
        a call that came to ``local`` (this pod's address on its socket)."""
        pod = b""
        if local is not None:
            pod = self._pods.get(local) or self._pod(local)
        return self.check(find_signature(headers), method, target, request_id, pod, now)

    def _pod(self, local: tuple[str, int]) -> bytes:
        if len(self._pods) >= 64:  # a pod has a few addresses; never grows
            self._pods.clear()
        pod = self._pods[local] = pod_address(*local)
        return pod

    def _remember(self, t: int, request_id: str, now: float) -> str | None:
        second = int(now)
        if second != self._pruned:
            self._pruned = second
            self._drop_older_than(now - self.window)
        if t <= self.floor:
            return (
                f"signature too old for the replay memory under this load"
                f" ({self.max_remembered} calls remembered); sign it again"
            )
        ids = self.seen.get(t)
        if ids is None:
            ids = self.seen[t] = set()
        elif request_id in ids:
            return (
                f"replayed call: request id {request_id!r} was already served with this signature"
            )
        ids.add(request_id)
        self.remembered += 1
        while self.remembered > self.max_remembered:
            oldest = min(self.seen)
            self.remembered -= len(self.seen.pop(oldest))
            self.floor = max(self.floor, oldest)
        return None

    def _drop_older_than(self, limit: float) -> None:
        for t in [t for t in self.seen if t < limit]:
            self.remembered -= len(self.seen.pop(t))
