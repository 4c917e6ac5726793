"""The chart's signing pieces: on by default (the gateway signs), one
generated install secret in the release namespace, mounted into the
operator; RBAC for the per-Function Secrets; off renders none of it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import run_helm
from tests.unit.test_chart import CHART, render

pytestmark = pytest.mark.unit


def operator_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = operator_deployment(docs)["spec"]["template"]["spec"]["containers"]
    return dict(c)


def signing_secrets(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The signing Secret(s) (the bundled Redis has its own password Secret)."""
    return [
        d
        for d in docs
        if d["kind"] == "Secret"
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == "signing"
    ]


def test_signing_is_on_by_default_and_off_renders_nothing() -> None:
    assert signing_secrets(render())
    docs = render("signing.enabled=false")
    assert not signing_secrets(docs)
    env = {e["name"] for e in operator_container(docs)["env"]}
    assert "EMBER_SIGNING_SECRET_FILE" not in env


def test_signing_on_generates_a_secret_the_operator_mounts() -> None:
    docs = render("signing.enabled=true")
    (secret,) = signing_secrets(docs)
    assert secret["metadata"]["name"] == "rel-ember-signing"
    assert secret["metadata"]["namespace"] == "ember-system"
    assert len(base64.b64decode(secret["data"]["install-secret"])) == 32
    # A new random value per render (an install); upgrades keep the live one.
    (again,) = signing_secrets(render("signing.enabled=true"))
    assert again["data"] != secret["data"]

    c = operator_container(docs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "signing")
    assert mount["readOnly"] is True
    assert env["EMBER_SIGNING_SECRET_FILE"] == mount["mountPath"] + "/install-secret"
    dep = operator_deployment(docs)
    vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing")
    assert vol["secret"]["secretName"] == "rel-ember-signing"


def test_an_existing_secret_is_used_as_is() -> None:
    docs = render("signing.enabled=true", "signing.existingSecret=mine")
    assert not signing_secrets(docs)
    dep = operator_deployment(docs)
    vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing")
    assert vol["secret"]["secretName"] == "mine"


def test_the_operator_may_write_secrets() -> None:
    role = next(
        d
        for d in render()
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-operator")
    )
    verbs = {v for rule in role["rules"] if "secrets" in rule["resources"] for v in rule["verbs"]}
    assert {"get", "create", "update", "patch", "delete"} <= verbs


def test_the_schema_checks_signing_values() -> None:
    proc = run_helm("template", "rel", str(CHART), "--set", "signing.enabled=maybe")
    assert proc.returncode != 0 and "signing" in proc.stderr
