"""The Helm chart renders what a platform team expects: lint-clean, values
checked by its schema, Kubernetes-conventional labels, a restricted operator
pod, and the same CRDs that ``make crds`` writes to crds/."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO, run_helm

pytestmark = pytest.mark.unit

CHART = REPO / "charts/ember"


def render(*sets: str) -> list[dict[str, object]]:
    args = ["template", "rel", str(CHART), "--namespace", "ember-system"]
    for s in sets:
        args += ["--set", s]
    proc = run_helm(*args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def test_chart_lints_clean() -> None:
    proc = run_helm("lint", str(CHART), "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_rejects_bad_values_naming_the_field() -> None:
    proc = run_helm("template", "rel", str(CHART), "--set", "operator.logLevel=LOUD")
    assert proc.returncode != 0
    assert "operator" in proc.stderr and "logLevel" in proc.stderr


def test_operator_pod_is_restricted_and_labelled() -> None:
    docs = render("operator.watchNamespaces={a,b}", "operator.image.tag=t1")
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= kinds
    dep = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "rel"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["helm.sh/chart"] == "ember-0.1.0"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "ember/controller:t1"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EMBER_NAMESPACES"] == "a,b"
    assert env["EMBER_MAX_BODY_BYTES"] == "6291456"


def test_chart_crds_match_the_generated_ones() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ is empty: run make crds"
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (REPO / "crds" / name).read_text(), name
