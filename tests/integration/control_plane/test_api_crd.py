"""Invalid objects are refused by the API server, with messages that name the
field. Each CRD rule (schema or CEL) gets a bad object here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.control_plane.kit import Cluster, function, trigger

pytestmark = pytest.mark.integration


def with_spec(body: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body["spec"].update(spec)
    return body


BAD_FUNCTIONS = [
    (
        "both source and image",
        with_spec(function("both"), image="example/hello:1"),
        ["spec", "exactly one of spec.source or spec.image"],
    ),
    (
        "neither source nor image",
        function("neither", source=None),
        ["spec", "exactly one of spec.source or spec.image"],
    ),
    (
        "scale min above max",
        with_spec(function("scale"), scale={"min": 5, "max": 2}),
        ["spec.scale", "scale.min must be less than or equal to scale.max"],
    ),
    (
        "scale min above defaulted max",
        with_spec(function("scale2"), scale={"min": 11}),
        ["spec.scale", "scale.min must be less than or equal to scale.max"],
    ),
    (
        "handler without a colon",
        with_spec(function("handler"), handler="main.handle"),
        ["spec.handler", 'handler must have the form "module:function"'],
    ),
    (
        "handler with a path",
        with_spec(function("handler2"), handler="src/main:handle"),
        ["spec.handler", "module:function"],
    ),
    (
        "name that cannot name a Service",
        function("a" * 64),
        ["metadata.name", "DNS-1035 label"],
    ),
    (
        "async retries out of range",
        with_spec(function("asyncretries"), **{"async": {"maxRetries": 101}}),
        ["spec.async.maxRetries", "should be less than or equal to 100"],
    ),
    (
        "async max age 0",
        with_spec(function("asyncage"), **{"async": {"maxAgeSeconds": 0}}),
        ["spec.async.maxAgeSeconds", "should be greater than or equal to 1"],
    ),
    (
        "async backoff inverted",
        with_spec(
            function("asyncbackoff"),
            **{"async": {"backoff": {"initialSeconds": 9, "maxSeconds": 2}}},
        ),
        ["spec.async.backoff", "backoff.initialSeconds must be less than or equal"],
    ),
    (
        "timeout out of range",
        with_spec(function("timeout"), timeoutSeconds=0),
        ["spec.timeoutSeconds", "should be greater than or equal to 1"],
    ),
    (
        "negative scale.min",
        with_spec(function("negmin"), scale={"min": -1}),
        ["spec.scale.min", "should be greater than or equal to 0"],
    ),
    (
        "unknown runtime",
        with_spec(function("runtime"), runtime="python2.7"),
        ["spec.runtime", "Unsupported value"],
    ),
    (
        "env with value and valueFrom",
        with_spec(
            function("env"),
            env=[{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
        ),
        ["spec.env[0]", "value and valueFrom are mutually exclusive"],
    ),
    (
        "env valueFrom with no source",
        with_spec(function("env2"), env=[{"name": "A", "valueFrom": {}}]),
        ["spec.env[0].valueFrom", "exactly one of secretKeyRef"],
    ),
    (
        "duplicate env names",
        with_spec(function("env3"), env=[{"name": "A", "value": "1"}, {"name": "A"}]),
        ["spec.env[1]", "Duplicate value"],
    ),
    (
        "bad quantity",
        with_spec(function("res"), resources={"limits": {"memory": "lots"}}),
        ["spec.resources.limits.memory", "should match"],
    ),
]

BAD_TRIGGERS = [
    ("no kind", trigger("none"), ["spec", "exactly one of spec.http, spec.schedule or spec.queue"]),
    (
        "two kinds",
        trigger("two", http={"path": "/a"}, queue={"stream": "s"}),
        ["spec", "exactly one of spec.http, spec.schedule or spec.queue"],
    ),
    (
        "bad method",
        trigger("method", http={"path": "/a", "methods": ["FETCH"]}),
        ["spec.http.methods[0]", "Unsupported value"],
    ),
    (
        "path without slash",
        trigger("path", http={"path": "a"}),
        ["spec.http.path", "should match"],
    ),
    (
        "cron with three fields",
        trigger("cron", schedule={"cron": "* * *    "}),
        ["spec.schedule.cron", "should match"],
    ),
    (
        "cron with seven fields",
        trigger("cron7", schedule={"cron": "* * * * * * *"}),
        ["spec.schedule.cron", "should match"],
    ),
    (
        "cron with a character no field takes",
        trigger("cronq", schedule={"cron": "0 12 ? * MON"}),
        ["spec.schedule.cron", "should match"],
    ),
    (
        "timezone that is a path",
        trigger("tz", schedule={"cron": "* * * * *", "timezone": "../etc/passwd"}),
        ["spec.schedule.timezone", "should match"],
    ),
    (
        "unknown missed-run policy",
        trigger("missed", schedule={"cron": "* * * * *", "missedRuns": "All"}),
        ["spec.schedule.missedRuns", "Unsupported value"],
    ),
    (
        "queue concurrency 0",
        trigger("conc", queue={"stream": "s", "concurrency": 0}),
        ["spec.queue.concurrency", "greater than or equal to 1"],
    ),
    (
        "backoff inverted",
        trigger(
            "backoff", queue={"stream": "s", "backoff": {"initialSeconds": 9, "maxSeconds": 2}}
        ),
        ["spec.queue.backoff", "backoff.initialSeconds must be less than or equal"],
    ),
    (
        "queue on Ember's own async stream",
        trigger("own", queue={"stream": "ember:{fn:other/pay}:async"}),
        ["spec.queue", "spec.queue.stream must not start with 'ember:'"],
    ),
    (
        "dead letters into Ember's own keys",
        trigger("owndlq", queue={"stream": "s", "deadLetterStream": "ember:{fn:a/b}:dlq"}),
        ["spec.queue", "spec.queue.deadLetterStream must not start with 'ember:'"],
    ),
    (
        "missing function",
        {**trigger("nofn", http={"path": "/a"}), "spec": {"http": {"path": "/a"}}},
        ["spec.function", "Required value"],
    ),
]


def refused(cluster: Cluster, plural: str, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as info:
        cluster.create(plural, namespace, body)
    assert info.value.status == 422, info.value.body
    return str(json.loads(info.value.body)["message"])


@pytest.mark.parametrize(
    ("case", "body", "expect"), BAD_FUNCTIONS, ids=[c[0] for c in BAD_FUNCTIONS]
)
def test_bad_function_is_refused_naming_the_field(
    cluster: Cluster, namespace: str, case: str, body: dict[str, Any], expect: list[str]
) -> None:
    message = refused(cluster, "functions", namespace, body)
    for fragment in expect:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"


@pytest.mark.parametrize(("case", "body", "expect"), BAD_TRIGGERS, ids=[c[0] for c in BAD_TRIGGERS])
def test_bad_trigger_is_refused_naming_the_field(
    cluster: Cluster, namespace: str, case: str, body: dict[str, Any], expect: list[str]
) -> None:
    message = refused(cluster, "triggers", namespace, body)
    for fragment in expect:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"


def test_good_objects_are_accepted_with_scalar_defaults(cluster: Cluster, namespace: str) -> None:
    created = cluster.create("functions", namespace, function("ok", scale={"max": 3}))
    spec = created["spec"]
    assert spec["timeoutSeconds"] == 30 and spec["concurrency"] == 10
    assert spec["runtime"] == "python3.11"
    assert spec["scale"] == {"min": 0, "max": 3, "target": 5, "idleSeconds": 60}
    assert "env" not in spec and "resources" not in spec  # objects are not grown
    bare = cluster.create("functions", namespace, function("bare"))
    assert "scale" not in bare["spec"] and "async" not in bare["spec"]
    own = {"maxRetries": 0, "backoff": {"initialSeconds": 2}, "concurrency": 4}
    tuned = cluster.create("functions", namespace, function("tuned", **{"async": own}))
    assert tuned["spec"]["async"] == {**own, "backoff": {"initialSeconds": 2, "maxSeconds": 60}}
    trg = cluster.create("triggers", namespace, trigger("t", http={"path": "/hello"}))
    assert trg["spec"]["http"] == {"path": "/hello"}
    cron = cluster.create("triggers", namespace, trigger("c", schedule={"cron": "*/5 * * * * *"}))
    assert cron["spec"]["schedule"] == {
        "cron": "*/5 * * * * *",
        "timezone": "UTC",
        "missedRuns": "Skip",
    }
    queue = cluster.create("triggers", namespace, trigger("q", queue={"stream": "orders"}))
    assert queue["spec"]["queue"]["concurrency"] == 10
