"""The ConfigMap that carries inline source."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ember_operator.render.common import FunctionObject
from ember_operator.render.configmap import render_configmap
from ember_operator.render.labels import SPEC_HASH_ANNOTATION

pytestmark = pytest.mark.unit

MakeFn = Callable[..., FunctionObject]


def test_configmap_holds_source_as_main_py_with_owner(make_function: MakeFn) -> None:
    fn = make_function()
    cm = render_configmap(fn)
    assert cm is not None
    assert cm["metadata"]["name"] == "hello-source"
    assert cm["metadata"]["namespace"] == "team-a"
    assert cm["data"] == {"main.py": fn.spec.source}
    owner = cm["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Function" and owner["uid"] == "uid-1" and owner["controller"] is True
    assert cm["metadata"]["labels"]["ember.dev/function"] == "hello"


def test_no_configmap_for_image_functions(make_function: MakeFn) -> None:
    assert render_configmap(make_function(image="example/hello:1")) is None


def test_configmap_hash_follows_source(make_function: MakeFn) -> None:
    a = render_configmap(make_function(source="a = 1"))
    b = render_configmap(make_function(source="a = 2"))
    assert a is not None and b is not None
    assert (
        a["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        != (b["metadata"]["annotations"][SPEC_HASH_ANNOTATION])
    )
