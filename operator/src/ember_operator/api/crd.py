"""Turn the pydantic models into CustomResourceDefinitions.

The API server accepts only *structural* schemas: no ``$ref``, no ``const``,
no ``null`` branches, and ``additionalProperties`` never alongside
``properties``. Pydantic's JSON Schema has all of those, so this module
rewrites it: ``$ref``s are inlined, ``Optional[X]`` becomes plain ``X``
(absence, not ``null``, is how Kubernetes says "unset"), titles go, and
defaults survive only on scalars, so the API server never grows a whole
``scale:`` block into an object the user wrote without one.

Run ``python -m ember_operator.api.crd --out crds/ --out charts/ember/crds/``
to regenerate the files; a unit test fails when they are stale.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ember_operator.api import v1alpha1 as api

HEADER = "# Generated from ember_operator/api/v1alpha1.py by `make crds`. Do not edit.\n"

_DROP_KEYS = {"title", "$defs"}


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rewrite one pydantic JSON Schema node (recursively) into a structural one."""
    defs = schema.get("$defs", {}) if defs is None else defs
    node = dict(schema)

    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = copy.deepcopy(target)
        # Sibling keys (description, default, rules) win over the referenced model's.
        merged.update(node)
        node = merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        node = {**inner, **node}
        return structural(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if not _is_null(b)]
        if len(branches) == 1:
            del node["anyOf"]
            node = {**branches[0], **node}
            return structural(node, defs)
        node["anyOf"] = [structural(b, defs) for b in branches]
    if "$ref" in node:  # a $ref that itself pointed at a $ref
        return structural(node, defs)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "default":
            if value is not None and not isinstance(value, dict | list):
                out["default"] = value
        elif key == "properties":
            out["properties"] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = structural(value, defs)
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one model, as the CRD embeds it."""
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


_READY = '.status.conditions[?(@.type=="Ready")].status'
_READY_REASON = '.status.conditions[?(@.type=="Ready")].reason'


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    description: str,
    name_rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"type": "object"}
    if name_rules:
        # The only metadata a CRD schema may constrain is name and generateName.
        metadata["properties"] = {
            "name": {"type": "string", "maxLength": 253, "x-kubernetes-validations": name_rules}
        }
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": metadata,
            "spec": model_schema(spec),
            "status": model_schema(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "ember"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["ember"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def function_crd() -> dict[str, Any]:
    return _crd(
        kind="Function",
        plural="functions",
        short_names=["fn"],
        spec=api.FunctionSpec,
        status=api.FunctionStatus,
        description="A Python function Ember runs, scales and routes to.",
        # The name becomes the Service's name and label values: a DNS-1035 label.
        name_rules=[
            {
                "rule": "self.size() <= 63 && self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": "must be a DNS-1035 label (lowercase letters, digits and '-',"
                " starting with a letter) of at most 63 characters",
            }
        ],
        columns=[
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
        ],
    )


def trigger_crd() -> dict[str, Any]:
    return _crd(
        kind="Trigger",
        plural="triggers",
        short_names=["trg"],
        spec=api.TriggerSpec,
        status=api.TriggerStatus,
        description="What invokes a Function: an HTTP route, a schedule or a queue.",
        columns=[
            {"name": "Function", "type": "string", "jsonPath": ".spec.function"},
            {"name": "Ready", "type": "string", "jsonPath": _READY},
            {"name": "Reason", "type": "string", "jsonPath": _READY_REASON},
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
        ],
    )


def render_files() -> dict[str, str]:
    """File name -> YAML text for every CRD, deterministic byte for byte."""
    files = {}
    for crd in (function_crd(), trigger_crd()):
        name = f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"
        files[name] = HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)
    return files


def write(out_dirs: Sequence[Path]) -> list[Path]:
    written = []
    files = render_files()
    for out in out_dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = out / name
            path.write_text(text)
            written.append(path)
    return written


def stale(out_dirs: Sequence[Path]) -> list[Path]:
    """Files that differ from (or are missing against) what the models render."""
    files = render_files()
    return [
        out / name
        for out in out_dirs
        for name, text in files.items()
        if not (out / name).exists() or (out / name).read_text() != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", action="append", type=Path, required=True, help="directory")
    parser.add_argument("--check", action="store_true", help="fail if files are stale")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale(args.out)
        for path in bad:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if bad else 0
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
