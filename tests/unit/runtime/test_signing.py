"""Signing and verification: what passes, what is refused and why, and the
replay memory's bound. A fixed clock throughout (``now=``)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ember_runtime.signing import (
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    Verifier,
    canonical_target,
    find_signature,
    function_key,
    key_id,
    pod_address,
    sign,
)

pytestmark = pytest.mark.unit

SECRET = bytes(range(32))
KEY = function_key(SECRET, "default", "hello")
NOW = 1_700_000_000.0
POD = b"10.1.2.3:8080"


def header(
    method: str = "POST",
    target: str = "/x?a=1",
    rid: str = "rid-1",
    key: bytes = KEY,
    now: float = NOW,
) -> bytes:
    return sign(key, method, target, rid, POD, now=now).encode()


def test_function_key_is_the_documented_hmac_and_differs_per_function() -> None:
    want = hmac.new(SECRET, b"ember/function-key/v1\0default\0hello", hashlib.sha256).digest()
    assert want == KEY and len(KEY) == 32
    others = {
        function_key(SECRET, "default", "hello2"),
        function_key(SECRET, "default2", "hello"),
        function_key(SECRET, "defaul", "thello"),  # no ambiguity at the separator
        function_key(b"another install", "default", "hello"),
    }
    assert KEY not in others and len(others) == 4


def test_header_shape() -> None:
    value = sign(KEY, "GET", "/", "r", POD, now=NOW + 0.9)
    t, v2 = value.split(",")
    assert t == f"t={int(NOW)}"
    assert v2.startswith("v2=") and len(v2) == 3 + 64 and int(v2[3:], 16) >= 0
    assert SIGNATURE_HEADER == "x-ember-signature"


def test_a_good_signature_passes() -> None:
    v = Verifier(KEY)
    assert v.check(header(), b"POST", b"/x?a=1", "rid-1", POD, NOW) is None
    # within the window either way
    v = Verifier(KEY)
    assert v.check(header(now=NOW - 59), b"POST", b"/x?a=1", "rid-1", POD, NOW) is None
    assert v.check(header(now=NOW + 59), b"POST", b"/x?a=1", "rid-1", POD, NOW) is None


def test_lower_case_method_signs_like_the_wire() -> None:
    v = Verifier(KEY)
    assert v.check(header(method="post"), b"POST", b"/x?a=1", "rid-1", POD, NOW) is None


def test_unsigned_and_malformed_are_refused_and_say_so() -> None:
    v = Verifier(KEY)
    assert "unsigned" in (v.check(None, b"GET", b"/", "r", POD, NOW) or "")
    for bad in (
        b"",
        b"garbage",
        b"t=abc,v2=" + b"0" * 64,
        b"t=1700000000,v2=00",
        b"v2=" + b"0" * 64 + b",t=1700000000",
        b"t=-5,v2=" + b"0" * 64,
    ):
        why = v.check(bad, b"GET", b"/", "r", POD, NOW)
        assert why is not None and "malformed" in why, bad


@pytest.mark.parametrize(
    ("method", "target", "rid", "key"),
    [
        (b"POST", b"/x?a=1", "rid-1", function_key(SECRET, "default", "other")),  # bad key
        (b"GET", b"/x?a=1", "rid-1", KEY),  # tampered method
        (b"POST", b"/x?a=2", "rid-1", KEY),  # tampered query
        (b"POST", b"/y?a=1", "rid-1", KEY),  # tampered path
        (b"POST", b"/x", "rid-1", KEY),  # query dropped
        (b"POST", b"/x?a=1", "rid-2", KEY),  # another request id
    ],
)
def test_tampering_or_a_wrong_key_is_a_bad_signature(
    method: bytes, target: bytes, rid: str, key: bytes
) -> None:
    v = Verifier(key)
    why = v.check(header(), method, target, rid, POD, NOW)
    assert why is not None and why.startswith("bad signature")
    # The answer names the problem, never the signature the pod expected.
    expected = sign(key, method.decode(), target.decode(), rid, POD, now=NOW).split("v2=")[1]
    assert expected not in why


def test_a_timestamp_cannot_be_moved() -> None:
    value = header().replace(b"t=1700000000", b"t=1700000030")
    why = Verifier(KEY).check(value, b"POST", b"/x?a=1", "rid-1", POD, NOW)
    assert why is not None and why.startswith("bad signature")


def test_stale_and_future_signatures_are_refused() -> None:
    v = Verifier(KEY)
    why = v.check(header(now=NOW - 61), b"POST", b"/x?a=1", "rid-1", POD, NOW)
    assert why is not None and why.startswith("stale") and "61s ago" in why
    why = v.check(header(now=NOW + 61), b"POST", b"/x?a=1", "rid-1", POD, NOW)
    assert why is not None and "future" in why
    short = Verifier(KEY, window=5)
    assert short.check(header(now=NOW - 6), b"POST", b"/x?a=1", "rid-1", POD, NOW) is not None


def test_a_replay_within_the_window_is_refused() -> None:
    v = Verifier(KEY)
    h = header()
    assert v.check(h, b"POST", b"/x?a=1", "rid-1", POD, NOW) is None
    why = v.check(h, b"POST", b"/x?a=1", "rid-1", POD, NOW + 30)
    assert why is not None and why.startswith("replayed") and "rid-1" in why
    # ... and after the window it is stale, not forgotten-and-accepted.
    why = v.check(h, b"POST", b"/x?a=1", "rid-1", POD, NOW + REPLAY_WINDOW_SECONDS + 1)
    assert why is not None and why.startswith("stale")


def test_the_same_request_id_signed_again_later_passes() -> None:
    """A gateway retrying before the request reached a function signs anew."""
    v = Verifier(KEY)
    assert v.check(header(), b"POST", b"/x?a=1", "rid-1", POD, NOW) is None
    assert v.check(header(now=NOW + 1), b"POST", b"/x?a=1", "rid-1", POD, NOW + 1) is None


def test_bad_signatures_are_not_remembered() -> None:
    v = Verifier(KEY)
    assert v.check(header(key=b"k" * 32), b"POST", b"/x?a=1", "rid-1", POD, NOW) is not None
    assert v.remembered == 0
    assert v.check(header(), b"POST", b"/x?a=1", "rid-1", POD, NOW) is None


def test_memory_is_forgotten_as_time_moves() -> None:
    v = Verifier(KEY)
    for i in range(50):
        assert v.check(header(rid=f"r{i}"), b"POST", b"/x?a=1", f"r{i}", POD, NOW) is None
    assert v.remembered == 50
    later = NOW + REPLAY_WINDOW_SECONDS + 2
    assert v.check(header(rid="z", now=later), b"POST", b"/x?a=1", "z", POD, later) is None
    assert v.remembered == 1 and list(v.seen) == [int(later)]


def test_memory_is_bounded_and_never_reopens_a_replay() -> None:
    v = Verifier(KEY, max_remembered=10)
    served: list[tuple[bytes, str, float]] = []
    for i in range(40):
        now = NOW + i // 4  # four calls per second, 10 seconds
        rid = f"r{i}"
        h = header(rid=rid, now=now)
        assert v.check(h, b"POST", b"/x?a=1", rid, POD, now) is None
        served.append((h, rid, now))
        assert v.remembered <= 10
    end = NOW + 10
    for h, rid, _ in served:  # every one of them, remembered or forgotten, is refused
        assert v.check(h, b"POST", b"/x?a=1", rid, POD, end) is not None, rid
    # The oldest seconds were forgotten early: calls stamped then are refused
    # as too old for the memory, and the message says so.
    why = v.check(header(rid="new", now=NOW), b"POST", b"/x?a=1", "new", POD, end)
    assert why is not None and "replay memory" in why
    # A fresh call still passes.
    assert v.check(header(rid="fresh", now=end), b"POST", b"/x?a=1", "fresh", POD, end) is None


def test_an_empty_query_signs_like_no_query() -> None:
    """The HTTP core splits ``/x?`` into ``/x`` and an empty query."""
    assert canonical_target(b"/x?") == b"/x"
    assert canonical_target(b"/x??") == b"/x??"
    assert canonical_target(b"/x?a") == b"/x?a"
    v = Verifier(KEY)
    assert v.check(header(target="/x?"), b"POST", b"/x", "rid-1", POD, NOW) is None


def test_non_ascii_targets_round_trip_as_latin1() -> None:
    raw = "/caf\xc3\xa9"  # UTF-8 bytes of "café" decoded as latin-1
    v = Verifier(KEY)
    assert v.check(header(target=raw), b"POST", raw.encode("latin-1"), "rid-1", POD, NOW) is None


def test_find_signature_among_raw_headers() -> None:
    headers = [(b"Host", b"x"), (b"X-Ember-Signature", b"t=1,v1=a"), (b"x-ember-signature", b"b")]
    assert find_signature(headers) == b"t=1,v1=a"
    assert find_signature([(b"host", b"x")]) is None


def test_key_id_names_a_key_without_revealing_it() -> None:
    assert key_id(KEY) == key_id(KEY) and key_id(KEY) != key_id(b"x" * 32)
    assert len(key_id(KEY)) == 16 and key_id(KEY) not in KEY.hex()


def test_max_remembered_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Verifier(KEY, max_remembered=0)


def test_settings_read_the_key_as_hex_and_never_show_it() -> None:
    from ember_runtime.config import parse_settings
    from ember_runtime.errors import LoadError

    s = parse_settings([], {"EMBER_TARGET": "main:handle", "EMBER_SIGNING_KEY": KEY.hex()})
    assert s.signing_key == KEY
    assert KEY.hex() not in repr(s) and "signing_key=<hidden>" in repr(s)
    assert (
        parse_settings([], {"EMBER_TARGET": "main:handle", "EMBER_SIGNING_KEY": ""}).signing_key
        == b""
    )
    for bad in ("zz" * 32, "ab" * 8 + "c", "abcd"):  # not hex, odd length, too short
        with pytest.raises(LoadError) as e:
            parse_settings([], {"EMBER_TARGET": "main:handle", "EMBER_SIGNING_KEY": bad})
        assert bad not in e.value.message and "EMBER_SIGNING_KEY" in e.value.message


def test_a_signature_binds_the_pod_it_was_sent_to() -> None:
    """A call captured on its way to one pod is refused by every other pod
    of the Function (each keeps its own replay memory; this makes that enough)."""
    h = header()
    other = Verifier(KEY)
    why = other.check(h, b"POST", b"/x?a=1", "rid-1", b"10.1.2.4:8080", NOW)
    assert why is not None and "pod" in why
    assert other.check(h, b"POST", b"/x?a=1", "rid-1", b"10.1.2.3:8081", NOW) is not None
    assert Verifier(KEY).check(h, b"POST", b"/x?a=1", "rid-1", POD, NOW) is None


def test_pod_addresses_name_ipv6_unambiguously() -> None:
    assert pod_address("10.0.0.1", 8080) == b"10.0.0.1:8080"
    assert pod_address("fd00::1", 8080) == b"[fd00::1]:8080"
