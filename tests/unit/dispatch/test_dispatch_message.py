"""How invocations are written to streams and read back, without Redis."""

from __future__ import annotations

import base64
import json
import re

import pytest

from ember_operator.dispatch import keys
from ember_operator.dispatch.message import (
    Message,
    entry_time,
    from_fields,
    from_queue,
    from_queue_dead_letter,
    pack,
    queue_dead_letter,
    to_fields,
    unpack,
)
from ember_operator.dispatch.store import describe, stored_headers

pytestmark = pytest.mark.unit

FULL = Message(
    id="abc",
    body=b"\x00\xff{}",
    headers=(("content-type", "application/octet-stream"), ("x-a", "1")),
    attempt=3,
    seq=4,
    first=1700000000.25,
    deadline=1700000100.5,
    callback="https://hooks.example.com/x",
    idempotency_key="k-1",
    source="cron",
    error="HTTP 500: boom",
)


def as_stream(fields: dict[str, str | bytes]) -> dict[bytes, bytes]:
    """What XRANGE gives back for ``fields``."""
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


def test_stream_fields_round_trip() -> None:
    assert from_fields(as_stream(to_fields(FULL))) == FULL
    plain = Message(id="x", body=b"{}")
    fields = to_fields(plain)
    assert set(fields) == {"id", "body", "headers", "attempt", "seq", "first", "source"}
    assert from_fields(as_stream(fields)) == plain


def test_packed_round_trip_and_the_retry_stream_form() -> None:
    assert unpack(pack(FULL)) == FULL
    assert from_fields({b"m": pack(FULL)}) == FULL
    meta, body = pack(FULL).split(b"\n", 1)  # a line of JSON, then the body as it is
    assert json.loads(meta)["id"] == "abc" and body == FULL.body
    newline_body = Message(id="n", body=b"a\nb\n")
    assert unpack(pack(newline_body)) == newline_body
    odd = Message(id='q"\\\u00e9', body=b"", headers=(("x-a", 'say "hi"\t\u2603'),), error="\n")
    assert unpack(pack(odd)) == odd  # every string escaped as JSON
    with pytest.raises(ValueError):
        pack(Message(id="x", body=b"", first=float("nan")))


def test_the_all_json_form_of_an_earlier_version_still_reads() -> None:
    old = {"id": "abc", "b": base64.b64encode(FULL.body).decode(), "h": FULL.headers, "a": 3}
    old |= {"q": 4, "f": FULL.first, "s": "cron", "d": FULL.deadline, "c": FULL.callback}
    old |= {"i": "k-1", "e": FULL.error}
    assert unpack(json.dumps(old)) == FULL


def test_requeued_copies_are_newer() -> None:
    retry = FULL.requeued("HTTP 503")
    assert (retry.attempt, retry.seq, retry.error) == (4, 5, "HTTP 503")
    pressed = FULL.requeued("HTTP 429", counts=False)
    assert (pressed.attempt, pressed.seq) == (3, 5)


def test_a_queue_message_with_a_body_field_is_that_body() -> None:
    m = from_queue("1700000000123-0", {b"body": b"hi", b"content-type": b"text/plain"}, "orders")
    assert m.body == b"hi" and m.content_type() == "text/plain"
    assert m.id == "1700000000123-0" and m.first == 1700000000.123
    assert ("x-ember-queue-stream", "orders") in m.headers
    assert m.source == "queue" and m.idempotency_key is None
    assert from_queue("1-0", {b"body": b"{}"}, "s").content_type() == "application/json"


def test_other_queue_messages_are_their_fields_as_json() -> None:
    m = from_queue("5-1", {b"a": b"1", b"b": b"\xff", b"idempotency-key": b"K"}, "s")
    assert json.loads(m.body) == {"a": "1", "b": "\ufffd"}
    assert m.content_type() == "application/json" and m.idempotency_key == "K"


def test_a_trigger_dead_letter_is_in_the_queue_format_and_redrives() -> None:
    m = from_queue(
        "9-0", {b"body": b"x", b"content-type": b"text/plain", b"idempotency-key": b"K"}, "s"
    )
    fields = queue_dead_letter(m, {"error": "HTTP 500", "attempts": "3", "first": "9.5"})
    assert fields["body"] == b"x" and fields["content-type"] == "text/plain"
    assert fields["ember-error"] == "HTTP 500" and fields["ember-invocation-id"] == "9-0"
    back = from_queue_dead_letter(as_stream(fields), "s")
    assert back.body == b"x" and back.idempotency_key == "K" and back.id == "9-0"
    assert back.first == 9.5 and back.content_type() == "text/plain"


def test_entry_time() -> None:
    assert entry_time("1700000000123-7") == 1700000000.123
    assert entry_time("junk") == 0.0


def test_stored_headers_drop_hop_by_hop_and_ember_headers() -> None:
    kept = stored_headers(
        [
            ("Content-Type", "a/b"),
            ("Host", "x"),
            ("Connection", "close"),
            ("X-Ember-Attempt", "9"),
            ("Idempotency-Key", "k"),
            ("X-Custom", "v"),
            ("Content-Length", "3"),
            ("Accept-Encoding", "gzip"),  # the stored result is for whoever reads it
            ("Accept", "application/json"),
        ]
    )
    assert kept == (("content-type", "a/b"), ("x-custom", "v"), ("accept", "application/json"))
    assert stored_headers({"A": "1"}) == (("a", "1"),)


def test_every_key_of_a_slot_shares_one_hash_tag() -> None:
    tag = re.compile(r"\{([^}]*)\}")
    for slot in (keys.function_keys("ns", "fn"), keys.trigger_keys("ns", "tr")):
        names = [
            slot.stream,
            slot.dead_letters,
            slot.retries,
            slot.delayed,
            slot.meta,
            slot.record("i"),
            slot.idempotency("k}{x"),
            slot.done("k"),
        ]
        assert {tag.search(n).group(1) for n in names} == {slot.tag[1:-1]}  # type: ignore[union-attr]
    assert keys.function_keys("a", "b").tag != keys.trigger_keys("a", "b").tag


def test_a_record_reads_back_as_the_api_shows_it() -> None:
    raw = {
        b"status": b"succeeded",
        b"attempts": b"2",
        b"function": b"t/jobs",
        b"source": b"async",
        b"created": b"1700000000.5",
        b"started": b"1700000001",
        b"finished": b"1700000002",
        b"result_status": b"200",
        b"result_headers": b'[["content-type","text/plain"]]',
        b"result_body": b"hello",
        b"result_truncated": b"0",
    }
    out = describe("id1", raw)
    assert out["createdAt"] == "2023-11-14T22:13:20.500000Z"
    assert out["result"] == {
        "status": 200,
        "headers": {"content-type": "text/plain"},
        "body": "hello",
        "bodyEncoding": "text",
        "truncated": False,
    }
    raw[b"result_body"] = b"\xff\x00"
    assert describe("id1", raw)["result"]["body"] == "/wA="
    assert describe("id1", raw)["result"]["bodyEncoding"] == "base64"


def test_only_a_first_read_of_a_submitted_async_message_skips_begin() -> None:
    from dataclasses import replace

    from ember_operator.dispatch.deliver import fresh
    from ember_operator.dispatch.policy import RetryPolicy
    from ember_operator.dispatch.sources import function_source, trigger_source

    fn = function_source("t", "jobs", RetryPolicy(3, 1, 60), 8)
    main, retries = fn.lanes
    m = Message(id="i", body=b"{}")
    assert fresh(fn, main, m, 1)
    assert not fresh(fn, main, m, 2)  # delivered before: it may have run
    assert not fresh(fn, retries, m, 1)  # a retry or a redriven copy
    assert not fresh(fn, main, replace(m, seq=2), 1)  # redriven: an older copy may exist
    assert not fresh(fn, main, replace(m, attempt=2), 1)
    assert not fresh(fn, main, replace(m, idempotency_key="k"), 1)  # cron: BEGIN dedups
    trigger = trigger_source("t", "q", {"function": "jobs", "queue": {"stream": "s"}}, 8)
    assert trigger is not None
    assert not fresh(trigger, trigger.main, m, 1)  # a user's stream may hold duplicates


def test_a_queue_trigger_on_embers_own_keys_is_no_source() -> None:
    from ember_operator.dispatch.sources import trigger_source

    own = {"function": "f", "queue": {"stream": "ember:{fn:other/pay}:async"}}
    assert trigger_source("t", "q", own, 8) is None
    dlq = {"function": "f", "queue": {"stream": "s", "deadLetterStream": "ember:{fn:a/b}:dlq"}}
    assert trigger_source("t", "q", dlq, 8) is None
    assert trigger_source("t", "q", {"function": "f", "queue": {"stream": "embers"}}, 8)


def test_a_functions_spec_async_overrides_the_install_defaults() -> None:
    from ember_operator.dispatch.policy import RetryPolicy
    from ember_operator.dispatch.sources import async_policy

    install = RetryPolicy(3, 1.0, 60.0)
    assert async_policy({}, install, 10) == (install, 10, None)
    assert async_policy({"async": {}}, install, 10) == (install, 10, None)
    own = {"async": {"maxRetries": 0, "backoff": {"initialSeconds": 2}, "concurrency": 4}}
    assert async_policy(own, install, 10) == (RetryPolicy(0, 2.0, 60.0), 4, None)
    only_backoff = {"async": {"backoff": {"initialSeconds": 5, "maxSeconds": 7}}}
    assert async_policy(only_backoff, install, 10) == (RetryPolicy(3, 5.0, 7.0), 10, None)
    assert async_policy({"async": {"maxAgeSeconds": 90}}, install, 10)[2] == 90.0
