"""Signing keys against the real API server: with an install secret, a
Function gets its own key in a Secret it owns and its pods read it from
there; a new install secret re-keys it and rolls its pods; without one,
nothing is written."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ember_runtime.signing import function_key, key_id
from tests.integration.control_plane.kit import Cluster, function, run_operator
from tests.kube_helpers import eventually

pytestmark = pytest.mark.integration

KEY_ID = "ember.dev/signing-key-id"


def read_secret(cluster: Cluster, ns: str, name: str) -> Any:
    try:
        return cluster.core.read_namespaced_secret(name, ns)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def stored_key(secret: Any) -> bytes:
    return bytes.fromhex(base64.b64decode(secret.data["key"]).decode())


def key_env(dep: Any) -> Any:
    (container,) = dep.spec.template.spec.containers
    return next((e for e in container.env if e.name == "EMBER_SIGNING_KEY"), None)


@pytest.fixture
def install_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operator_env: None) -> Path:
    path = tmp_path / "install-secret"
    path.write_bytes(b"A" * 32)
    monkeypatch.setenv("EMBER_SIGNING_SECRET_FILE", str(path))
    return path


def test_a_function_gets_its_own_key_secret_and_env(
    cluster: Cluster, namespace: str, install_secret: Path
) -> None:
    ns = namespace
    with run_operator(ns) as runner:
        created = cluster.create("functions", ns, function("hello", scale={"min": 0, "max": 1}))
        secret = eventually(
            lambda: read_secret(cluster, ns, "hello-signing"), timeout=30, what="signing Secret"
        )
        key = function_key(b"A" * 32, ns, "hello")
        assert stored_key(secret) == key
        assert secret.type == "Opaque"
        (owner,) = secret.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == (
            "Function",
            created["metadata"]["uid"],
            True,
        )
        assert secret.metadata.labels["ember.dev/function"] == "hello"
        assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "ember-operator"
        assert (b"A" * 32).hex() not in str(secret.metadata)

        dep = eventually(lambda: cluster.deployment(ns, "hello"), timeout=30, what="Deployment")
        ref = key_env(dep).value_from.secret_key_ref
        assert (ref.name, ref.key) == ("hello-signing", "key")
        assert dep.spec.template.metadata.annotations[KEY_ID] == key_id(key)

        # An unrelated edit leaves the Secret alone (same object, no rewrite).
        version = secret.metadata.resource_version
        cluster.patch("functions", ns, "hello", {"spec": {"timeoutSeconds": 9}})
        eventually(
            lambda: any(
                e.name == "EMBER_TIMEOUT_SECONDS" and e.value == "9"
                for e in (cluster.deployment(ns, "hello").spec.template.spec.containers[0].env)
            ),
            timeout=30,
            what="the edit rolled out",
        )
        assert read_secret(cluster, ns, "hello-signing").metadata.resource_version == version
    assert runner.exception is None, runner.output

    # A new install secret (a rotation): the next operator re-keys the
    # Function and its pod template changes, so pods restart with the key.
    install_secret.write_bytes(b"B" * 32)
    with run_operator(ns) as runner:
        new_key = function_key(b"B" * 32, ns, "hello")
        eventually(
            lambda: stored_key(read_secret(cluster, ns, "hello-signing")) == new_key,
            timeout=30,
            what="re-keyed Secret",
        )
        eventually(
            lambda: (
                cluster.deployment(ns, "hello").spec.template.metadata.annotations[KEY_ID]
                == key_id(new_key)
            ),
            timeout=30,
            what="pod template carries the new key id",
        )
        # Deleting the Function takes its Secret with it (owner reference).
        cluster.delete("functions", ns, "hello")
        eventually(
            lambda: read_secret(cluster, ns, "hello-signing") is None,
            timeout=60,
            what="Secret garbage-collected",
        )
    assert runner.exception is None, runner.output


def test_without_an_install_secret_nothing_is_signed(
    cluster: Cluster, namespace: str, operator_env: None
) -> None:
    ns = namespace
    with run_operator(ns) as runner:
        cluster.create("functions", ns, function("plain", scale={"min": 0, "max": 1}))
        dep = eventually(lambda: cluster.deployment(ns, "plain"), timeout=30, what="Deployment")
        assert key_env(dep) is None
        assert KEY_ID not in (dep.spec.template.metadata.annotations or {})
        assert read_secret(cluster, ns, "plain-signing") is None
    assert runner.exception is None, runner.output
