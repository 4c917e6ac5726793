"""Signing what the gateway forwards, with one key per Function.

The scheme is ``ember_runtime.signing``'s (the runtime verifies with the
same module); this module only keeps the install secret and caches each
Function's derived key, so a call costs one HMAC and no key derivation.
"""

from __future__ import annotations

from pathlib import Path

from ember_operator.kube.objects import Key
from ember_runtime import signing

MIN_SECRET_BYTES = 16


class Signer:
    def __init__(self, install_secret: bytes) -> None:
        if not install_secret:
            raise ValueError("the signing secret is empty")
        self.secret = install_secret
        self.keys: dict[Key, bytes] = {}

    @classmethod
    def from_file(cls, path: str | None) -> Signer | None:
        """None when no file is configured: calls are forwarded unsigned."""
        if not path:
            return None
        # Byte for byte, as the operator reads it (the chart writes 32 random
        # bytes): any difference would derive other keys and every call
        # would be refused with 403.
        secret = Path(path).read_bytes()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"{path}: {len(secret)} bytes; the install secret needs 16 or more")
        return cls(secret)

    def sign(
        self, function: Key, method: bytes, target: bytes, request_id: str, pod: bytes
    ) -> bytes:
        """The signature of one call to one pod (``signing.pod_address``)."""
        key = self.keys.get(function)
        if key is None:
            key = self.keys[function] = signing.function_key(self.secret, *function)
        value = signing.sign(
            key, method.decode("latin-1"), target.decode("latin-1"), request_id, pod
        )
        return value.encode("ascii")
