"""The signing Secret and env: one key per Function, derived from the
install secret, handed to the runtime through a Secret reference; nothing at
all when the install has no secret."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ember_operator.config import Config
from ember_operator.render.common import FunctionObject, spec_hash, unchanged
from ember_operator.render.deployment import render_deployment
from ember_operator.render.labels import SPEC_HASH_ANNOTATION, function_labels
from ember_operator.render.names import SIGNING_KEY_FIELD, signing_secret_name
from ember_operator.render.signing import (
    KEY_ID_ANNOTATION,
    render_signing_secret,
    signing_env,
)
from ember_runtime.signing import Verifier, function_key, key_id, sign

pytestmark = pytest.mark.unit

MakeFn = Callable[..., FunctionObject]
SECRET = bytes(range(100, 132))


@pytest.fixture
def signed() -> Config:
    return Config(signing_secret=SECRET)


def pod_env(dep: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dep["spec"]["template"]["spec"]["containers"][0]["env"])


def secret_key(secret: dict[str, Any]) -> bytes:
    return bytes.fromhex(base64.b64decode(secret["data"][SIGNING_KEY_FIELD]).decode())


def test_no_install_secret_renders_no_secret_and_no_env(make_function: MakeFn) -> None:
    fn, config = make_function(), Config()
    assert render_signing_secret(fn, config) is None
    assert signing_env(fn, config) == []
    dep = render_deployment(fn, config)
    assert all(e["name"] != "EMBER_SIGNING_KEY" for e in pod_env(dep))
    assert KEY_ID_ANNOTATION not in dep["spec"]["template"]["metadata"]["annotations"]


def test_the_secret_holds_this_functions_derived_key(make_function: MakeFn, signed: Config) -> None:
    fn = make_function(name="hello", namespace="team-a")
    secret = render_signing_secret(fn, signed)
    assert secret is not None
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    meta = secret["metadata"]
    assert meta["name"] == signing_secret_name("hello") == "hello-signing"
    assert meta["namespace"] == "team-a"
    assert meta["labels"] == function_labels("hello")
    (owner,) = meta["ownerReferences"]
    assert owner["kind"] == "Function" and owner["uid"] == "uid-1" and owner["controller"]
    assert secret_key(secret) == function_key(SECRET, "team-a", "hello")
    assert list(secret["data"]) == [SIGNING_KEY_FIELD]


def test_the_install_secret_never_leaves(make_function: MakeFn, signed: Config) -> None:
    secret = render_signing_secret(make_function(), signed)
    dep = render_deployment(make_function(), signed)
    text = repr((secret, dep))
    for form in (SECRET.hex(), base64.b64encode(SECRET).decode(), repr(SECRET)):
        assert form not in text
    assert SECRET.hex() not in repr(signed)


def test_the_spec_hash_names_the_key_without_hashing_it(
    make_function: MakeFn, signed: Config
) -> None:
    fn = make_function()
    secret = render_signing_secret(fn, signed)
    assert secret is not None
    key = function_key(SECRET, fn.namespace, fn.name)
    annotations = secret["metadata"]["annotations"]
    assert annotations[KEY_ID_ANNOTATION] == key_id(key)
    # The hash is over the key id in place of the key.
    assert annotations[SPEC_HASH_ANNOTATION] != spec_hash(secret)
    assert unchanged(secret, render_signing_secret(fn, signed) or {})
    rotated = render_signing_secret(fn, replace(signed, signing_secret=b"r" * 32))
    assert rotated is not None and not unchanged(secret, rotated)


def test_functions_get_different_keys(make_function: MakeFn, signed: Config) -> None:
    keys = {
        secret_key(render_signing_secret(make_function(name=n, namespace=ns), signed) or {})
        for n, ns in (("a", "x"), ("b", "x"), ("a", "y"))
    }
    assert len(keys) == 3


def test_the_deployment_reads_the_key_from_the_secret(
    make_function: MakeFn, signed: Config
) -> None:
    fn = make_function(env=[{"name": "EMBER_SIGNING_KEY", "value": "user-tries-to-override"}])
    dep = render_deployment(fn, signed)
    env = pod_env(dep)
    ours = [e for e in env if e["name"] == "EMBER_SIGNING_KEY"]
    # The runtime's entry comes after the user's, and the last one wins.
    assert ours[-1] == {
        "name": "EMBER_SIGNING_KEY",
        "valueFrom": {"secretKeyRef": {"name": "hello-signing", "key": SIGNING_KEY_FIELD}},
    }
    assert env.index(ours[-1]) == len(env) - 1
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations[KEY_ID_ANNOTATION] == key_id(function_key(SECRET, "team-a", "hello"))
    rotated = render_deployment(fn, replace(signed, signing_secret=b"r" * 32))
    assert (
        rotated["spec"]["template"]["metadata"]["annotations"][KEY_ID_ANNOTATION]
        != (annotations[KEY_ID_ANNOTATION])
    )


def test_the_runtime_accepts_what_a_gateway_signs_with_the_rendered_key(
    make_function: MakeFn, signed: Config
) -> None:
    """End to end on paper: the Secret's value, parsed by the runtime's own
    settings, verifies what ``sign`` makes from the install secret."""
    from ember_runtime.config import parse_settings

    fn = make_function()
    secret = render_signing_secret(fn, signed)
    assert secret is not None
    value = base64.b64decode(secret["data"][SIGNING_KEY_FIELD]).decode()
    settings = parse_settings([], {"EMBER_TARGET": "main:handle", "EMBER_SIGNING_KEY": value})
    gateway_key = function_key(SECRET, fn.namespace, fn.name)
    pod = b"10.0.0.7:8080"
    header = sign(gateway_key, "GET", "/", "rid", pod, now=1000.0).encode()
    assert Verifier(settings.signing_key).check(header, b"GET", b"/", "rid", pod, 1000.0) is None


def test_config_reads_the_install_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    cfg = Config.from_env({"EMBER_SIGNING_SECRET_FILE": str(path)})
    assert cfg.signing_secret == SECRET
    assert Config.from_env({}).signing_secret is None
    assert Config.from_env({"EMBER_SIGNING_SECRET_FILE": ""}).signing_secret is None
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="at least 16"):
        Config.from_env({"EMBER_SIGNING_SECRET_FILE": str(path)})
    with pytest.raises(FileNotFoundError):
        Config.from_env({"EMBER_SIGNING_SECRET_FILE": str(tmp_path / "missing")})
