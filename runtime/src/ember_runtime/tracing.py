"""W3C Trace Context: the one rule for a well-formed ``traceparent``.

The gateway keeps a caller's ``traceparent`` only when it is well-formed
(else it starts a trace), and the runtime hands a handler only a
well-formed one; both ask this module, so a header the gateway forwards is
never one the runtime then drops, or the other way round.

The rule (Trace Context Level 1, version 00): ``vv-<32 hex>-<16 hex>-ff``
in lowercase hex, the version not ``ff``, neither id all zeros.
"""

from __future__ import annotations

_HEX = frozenset(b"0123456789abcdef")
_ZERO_TRACE = b"0" * 32
_ZERO_PARENT = b"0" * 16


def is_traceparent(value: bytes) -> bool:
    if len(value) != 55 or value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return False
    digits = value[:2] + value[3:35] + value[36:52] + value[53:]
    return (
        all(c in _HEX for c in digits)
        and value[:2] != b"ff"
        and value[3:35] != _ZERO_TRACE
        and value[36:52] != _ZERO_PARENT
    )
