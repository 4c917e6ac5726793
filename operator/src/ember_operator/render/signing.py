"""A Function's signing key: the Secret that holds it and the env that hands
it to the runtime.

Why a Secret per Function rather than the install secret in every pod: the
install secret signs for every Function, so a pod holding it could forge
calls to all of them. Each Function's key is derived from it
(``function_key``: namespace and name in, 32 bytes out) and written into the
Function's own namespace; the install secret stays in the release namespace,
read by the operator (and the gateway) only.

The pod template carries a key id (an HMAC of the key, not the key), so
pods roll when the key changes: env from a Secret is only read at start.
"""

from __future__ import annotations

import base64
from typing import Any

from ember_operator.config import Config
from ember_operator.render.common import FunctionObject, object_meta, stamp
from ember_operator.render.names import SIGNING_KEY_FIELD, signing_secret_name
from ember_runtime.pod import env_var
from ember_runtime.signing import function_key, key_id

KEY_ID_ANNOTATION = "ember.dev/signing-key-id"


def signing_key(fn: FunctionObject, config: Config) -> bytes | None:
    """None when the install has no secret: signing is off."""
    if config.signing_secret is None:
        return None
    return function_key(config.signing_secret, fn.namespace, fn.name)


def render_signing_secret(fn: FunctionObject, config: Config) -> dict[str, Any] | None:
    key = signing_key(fn, config)
    if key is None:
        return None
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(fn, signing_secret_name(fn.name)),
        "type": "Opaque",
        # The spec hash (an annotation anyone may read) is taken over the key
        # id, never over the key itself.
        "data": {SIGNING_KEY_FIELD: key_id(key)},
    }
    manifest["metadata"]["annotations"][KEY_ID_ANNOTATION] = key_id(key)
    stamp(manifest)
    manifest["data"] = {SIGNING_KEY_FIELD: base64.b64encode(key.hex().encode()).decode()}
    return manifest


def signing_env(fn: FunctionObject, config: Config) -> list[dict[str, Any]]:
    """``EMBER_SIGNING_KEY`` from the Function's Secret; nothing when off."""
    if config.signing_secret is None:
        return []
    ref = {"name": signing_secret_name(fn.name), "key": SIGNING_KEY_FIELD}
    return [{"name": env_var("signing_key"), "valueFrom": {"secretKeyRef": ref}}]


def signing_pod_annotations(fn: FunctionObject, config: Config) -> dict[str, str]:
    key = signing_key(fn, config)
    return {} if key is None else {KEY_ID_ANNOTATION: key_id(key)}
