"""The CRDs are generated from the models and must be structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ember_operator.api import crd

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out.extend(walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(walk(value, f"{path}[{i}]"))
    return out


@pytest.mark.parametrize("out", ["crds", "charts/ember/crds"])
def test_generated_files_are_fresh(out: str) -> None:
    stale = crd.stale([REPO / out])
    assert stale == [], f"run `make crds`: stale {stale}"


@pytest.mark.parametrize("make", [crd.function_crd, crd.trigger_crd])
def test_schema_is_structural(make: Any) -> None:
    schema = make()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        for bad in ("$ref", "$defs", "title", "const", "allOf", "oneOf"):
            assert bad not in node, f"{bad} at {path}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), path
        if "default" in node:
            assert not isinstance(node["default"], dict | list), f"object default at {path}"
        assert node.get("type") != "null", path


def test_function_crd_has_rules_columns_and_short_name() -> None:
    doc = crd.function_crd()
    version = doc["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r["rule"] for r in spec["x-kubernetes-validations"]}
    assert "has(self.source) != has(self.image)" in rules
    assert spec["properties"]["scale"]["x-kubernetes-validations"][0]["rule"] == (
        "self.min <= self.max"
    )
    assert "matches" in spec["properties"]["handler"]["x-kubernetes-validations"][0]["rule"]
    assert spec["properties"]["env"]["x-kubernetes-list-map-keys"] == ["name"]
    assert spec["required"] == ["handler"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready",
        "Replicas",
        "URL",
        "Age",
    ]
    assert doc["spec"]["names"]["shortNames"] == ["fn"]
    # Scalars default, objects do not (no rewriting of users' objects).
    assert spec["properties"]["timeoutSeconds"]["default"] == 30
    assert "default" not in spec["properties"]["scale"]


def test_trigger_crd_exactly_one_kind() -> None:
    doc = crd.trigger_crd()
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "filter(x, x).size() == 1" in spec["x-kubernetes-validations"][0]["rule"]
    assert doc["spec"]["names"]["shortNames"] == ["trg"]
    methods = spec["properties"]["http"]["properties"]["methods"]
    assert methods["items"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def test_quantities_are_int_or_string() -> None:
    spec = crd.function_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    limits = spec["properties"]["resources"]["properties"]["limits"]["additionalProperties"]
    assert limits["x-kubernetes-int-or-string"] is True
    assert "pattern" in limits


def test_render_is_deterministic_and_cli_writes(tmp_path: Path) -> None:
    assert crd.render_files() == crd.render_files()
    assert crd.main(["--out", str(tmp_path)]) == 0
    assert crd.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "ember.dev_functions.yaml").write_text("stale")
    assert crd.main(["--out", str(tmp_path), "--check"]) == 1
    docs = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("*.yaml"))]
    assert len(docs) == 2
