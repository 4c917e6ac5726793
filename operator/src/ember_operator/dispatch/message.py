"""What travels in the streams, and how it is written there.

One ``Message`` is one invocation in transit: the request (body and
headers), where it stands (``attempt``, the last ``error``) and what to do
with its result (``callback``). Ember's streams hold it packed, one field
``m`` (``pack``: a line of JSON, then the body): the async stream (fewer arguments per submission),
the retry stream and the delayed set (a Lua script moves it whole). Dead
letters, read by people, are plain stream fields (``to_fields``), and
``from_fields`` reads either form.

A queue Trigger's stream is the user's, in the user's format:
``from_queue`` reads it (a ``body`` field is the body, with its
``content-type``; otherwise all fields become one JSON object), and a
Trigger's dead letters are written back in that format (``body``,
``content-type``) plus ``ember-*`` fields, so that replaying one by hand
is an ``XADD`` of the same fields.
"""

from __future__ import annotations

import base64
import json
import json.encoder
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

Fields = Mapping[bytes, bytes]

JSON_TYPE = "application/json"
# Request headers that never travel with a stored invocation: they are the
# gateway's or the connection's, or the dispatcher sets them itself.
DROPPED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authorization",
        "expect",
        "idempotency-key",
        "x-request-id",
        # The result is stored and read later by whoever GETs it: it must
        # not be encoded for the submitting client's taste.
        "accept-encoding",
    }
)
DEAD_LETTER_PREFIX = "ember-"
_quote = json.encoder.encode_basestring_ascii


def pairs_json(pairs: Iterable[tuple[str, str]]) -> str:
    """Header pairs as a JSON array of [name, value] arrays."""
    q = _quote
    return "[" + ",".join([f"[{q(k)},{q(v)}]" for k, v in pairs]) + "]"


def _num(x: float) -> str:
    """A float as JSON (finite only: a timestamp)."""
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return repr(float(x))


@dataclass(slots=True)  # not frozen: its __init__ was a third of unpack's cost
class Message:
    id: str  # the invocation id
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    attempt: int = 1  # the attempt this copy is for (1 = the first)
    seq: int = 1  # which copy: each requeue makes a newer one, older ones are stale
    first: float = 0.0  # when it was first queued (epoch seconds)
    deadline: float | None = None  # epoch seconds; not run after it
    callback: str | None = None
    idempotency_key: str | None = None
    source: str = "async"  # async | cron | queue | redrive
    error: str = ""  # why the previous attempt failed
    extra: tuple[tuple[str, str], ...] = field(default=())  # dead-letter facts

    def requeued(self, error: str, *, counts: bool = True) -> Message:
        """The copy that goes back to wait: the next attempt (``counts``),
        or the same one again (back-pressure)."""
        return replace(self, attempt=self.attempt + counts, seq=self.seq + 1, error=error)

    def content_type(self) -> str:
        for k, v in self.headers:
            if k == "content-type":
                return v
        return JSON_TYPE


def keep_header(name: str) -> bool:
    return name not in DROPPED_HEADERS and not name.startswith("x-ember-")


# --- Ember's stream fields ---------------------------------------------------


def to_fields(m: Message) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {
        "id": m.id,
        "body": m.body,
        "headers": json.dumps(m.headers, separators=(",", ":")),
        "attempt": str(m.attempt),
        "seq": str(m.seq),
        "first": repr(m.first),
        "source": m.source,
    }
    if m.deadline is not None:
        out["deadline"] = repr(m.deadline)
    if m.callback:
        out["callback"] = m.callback
    if m.idempotency_key:
        out["idem"] = m.idempotency_key
    if m.error:
        out["error"] = m.error
    for k, v in m.extra:
        out[k] = v
    return out


def from_fields(fields: Fields, entry_id: str = "") -> Message:
    """A message from Ember's stream fields; ``entry_id``, the entry it was
    read from, completes an id that was left for it (see ``pack``)."""
    packed = fields.get(b"m")
    if packed is not None:
        return unpack(packed, entry_id)

    def text(name: bytes) -> str | None:
        v = fields.get(name)
        return None if v is None else v.decode("utf-8", "replace")

    deadline = text(b"deadline")
    return Message(
        id=text(b"id") or "",
        body=fields.get(b"body", b""),
        headers=tuple((str(k), str(v)) for k, v in json.loads(fields.get(b"headers") or b"[]")),
        attempt=int(text(b"attempt") or 1),
        seq=int(text(b"seq") or 1),
        first=float(text(b"first") or 0.0),
        deadline=float(deadline) if deadline else None,
        callback=text(b"callback"),
        idempotency_key=text(b"idem"),
        source=text(b"source") or "async",
        error=text(b"error") or "",
    )


def pack(m: Message, *, by_entry: bool = False) -> bytes:
    """One value: the message's facts as one line of JSON, then the body as
    it is (no base64: encoding and decoding it was a tenth of the
    dispatcher's work per message). Lua moves it whole (the delayed set).

    ``by_entry``: ``m.id`` is only the random part of the invocation id;
    the whole id is ``<stream entry id>-<m.id>``, known once ``XADD`` has
    answered (``invocation_id``), and completed by ``unpack`` when the
    message is read with its entry id."""
    # Written out, not json.dumps: the gateway packs every submission, and
    # the encoder's set-up per call cost more than the writing. Strings
    # are escaped by the json module's own C function.
    q = _quote
    h = pairs_json(m.headers)
    parts = [f'{{"id":{q(m.id)},"h":{h},"a":{m.attempt:d},"q":{m.seq:d},"f":{_num(m.first)}']
    parts.append(f',"s":{q(m.source)}')
    if m.deadline:
        parts.append(f',"d":{_num(m.deadline)}')
    for k, v in (("c", m.callback), ("i", m.idempotency_key), ("e", m.error)):
        if v:
            parts.append(f',"{k}":{q(v)}')
    if by_entry:
        parts.append(',"r":1')
    parts.append("}\n")
    return "".join(parts).encode() + m.body


def invocation_id(entry_id: str, token: str) -> str:
    """The id of an invocation queued as stream entry ``entry_id`` with the
    random ``token`` (``pack(by_entry=True)``): unique because the entry id
    is, unguessable because of the token, and it names where it waits."""
    return f"{entry_id}-{token}"


def unpack(raw: bytes | str, entry_id: str = "") -> Message:
    """``pack``'s value; also the all-JSON form an earlier Ember wrote (the
    body in base64 under ``b``, no newline: JSON escapes its own)."""
    if isinstance(raw, str):
        raw = raw.encode()
    meta, newline, body = raw.partition(b"\n")
    d = json.loads(meta.decode())
    if not newline:
        body = base64.b64decode(d["b"])
    ident = str(d["id"])
    if d.get("r"):
        if not entry_id:
            raise ValueError("a message whose id is its stream entry's, read without it")
        ident = invocation_id(entry_id, ident)
    return Message(
        id=ident,
        body=body,
        headers=tuple(map(tuple, d.get("h") or ())),
        attempt=int(d.get("a", 1)),
        seq=int(d.get("q", 1)),
        first=float(d.get("f", 0.0)),
        deadline=float(d["d"]) if d.get("d") else None,
        callback=d.get("c"),
        idempotency_key=d.get("i"),
        source=str(d.get("s", "async")),
        error=str(d.get("e", "")),
    )


# --- a queue Trigger's stream (the user's format) ----------------------------


def entry_time(entry_id: str) -> float:
    """The time a stream entry was added, from its id (``<ms>-<seq>``)."""
    try:
        return int(entry_id.split("-", 1)[0]) / 1000.0
    except ValueError:
        return 0.0


def from_queue(entry_id: str, fields: Fields, stream: str) -> Message:
    """A user's stream entry as an invocation (its id is the entry id)."""

    def text(v: bytes) -> str:
        return v.decode("utf-8", "replace")

    idem = fields.get(b"idempotency-key")
    if b"body" in fields:
        body = fields[b"body"]
        ctype = text(fields.get(b"content-type") or JSON_TYPE.encode())
    else:
        obj = {text(k): text(v) for k, v in fields.items() if k != b"idempotency-key"}
        body = json.dumps(obj, separators=(",", ":")).encode()
        ctype = JSON_TYPE
    return Message(
        id=entry_id,
        body=body,
        headers=(
            ("content-type", ctype),
            ("x-ember-queue-stream", stream),
            ("x-ember-queue-entry", entry_id),
        ),
        first=entry_time(entry_id),
        idempotency_key=text(idem) if idem else None,
        source="queue",
    )


def queue_dead_letter(m: Message, facts: Mapping[str, str]) -> dict[str, str | bytes]:
    """A Trigger's dead letter: the queue format (so it can be replayed as
    is) and what happened, in ``ember-*`` fields."""
    out: dict[str, str | bytes] = {"body": m.body, "content-type": m.content_type()}
    if m.idempotency_key:
        out["idempotency-key"] = m.idempotency_key
    out[DEAD_LETTER_PREFIX + "invocation-id"] = m.id
    for k, v in facts.items():
        out[DEAD_LETTER_PREFIX + k] = v
    return out


def from_queue_dead_letter(fields: Fields, stream: str) -> Message:
    """A Trigger's dead letter back into an invocation (for redrive)."""
    user = {k: v for k, v in fields.items() if not k.startswith(DEAD_LETTER_PREFIX.encode())}
    inv = (fields.get(b"ember-invocation-id") or b"").decode("utf-8", "replace")
    m = from_queue(inv, user, stream)
    return replace(m, first=float((fields.get(b"ember-first") or b"0").decode() or 0.0))
