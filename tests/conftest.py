"""Shared fixtures for every tier, and the guard that keeps cluster tests on
Ember's own clusters.

Tiers are pytest markers (``unit``, ``integration``, ``e2e``), applied by each
module's ``pytestmark``. The ``kubeconfig`` fixture gives the local cluster
(hack/cluster, started by ``make test``) or, with ``EMBER_CLUSTER=kind``
(``make test CLUSTER=kind``), a kind cluster made by pytest-kind. It refuses
any kubeconfig whose context this project did not create, so a stray
``KUBECONFIG`` can never point the tests at somebody's real cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ALLOWED_CONTEXTS = {"ember-local", "kind-ember"}
RUNTIME_IMAGE = os.environ.get("EMBER_RUNTIME_IMAGE", "ember/runtime:dev")
CONTROLPLANE_IMAGE = os.environ.get("EMBER_CONTROLPLANE_IMAGE", "ember/controller:dev")
REDIS_IMAGE = os.environ.get("EMBER_REDIS_IMAGE", "ember/redis:dev")
CAP_SYS_RESOURCE = 24
HELM = os.environ.get(
    "EMBER_HELM",
    str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "ember/tools/helm-v3.22.0/helm"
    ),
)


def run_helm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the helm that ``make helm`` builds; fail (never skip) when it is missing."""
    if not Path(HELM).exists():
        pytest.fail(f"helm not found at {HELM}: run `make helm` (make test does)")
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=timeout)


def on_kind() -> bool:
    return os.environ.get("EMBER_CLUSTER", "local") == "kind"


def _kind_blocker() -> str | None:
    """Why kind cannot run here, or None when it can."""
    if not shutil.which("kind"):
        return "kind path: no `kind` binary on PATH (go install sigs.k8s.io/kind)"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:") and not int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1:
            return (
                "kind path: kind starts nodes with `docker run --privileged`, which fails on this "
                "machine because the capability bounding set lacks CAP_SYS_RESOURCE"
            )
    return None


def _guard(path: Path) -> str:
    import yaml

    ctx = yaml.safe_load(path.read_text()).get("current-context")
    if ctx not in ALLOWED_CONTEXTS:
        pytest.fail(f"refusing kube context {ctx!r}: tests only run on {sorted(ALLOWED_CONTEXTS)}")
    os.environ["KUBECONFIG"] = str(path)
    return str(path)


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """Path to the kubeconfig of the cluster under test."""
    if not on_kind():
        path = Path(os.environ.get("EMBER_KUBECONFIG", "/var/lib/ember-cluster/kubeconfig"))
        if not path.exists():
            pytest.fail(
                f"no cluster kubeconfig at {path}: run `make cluster` first (make test does)"
            )
        yield _guard(path)
        return
    blocker = _kind_blocker()
    if blocker:
        pytest.skip(blocker)
    from pytest_kind import KindCluster  # type: ignore[import-untyped]

    cluster = KindCluster("ember")
    cluster.create()
    for image in (RUNTIME_IMAGE, CONTROLPLANE_IMAGE, REDIS_IMAGE):
        cluster.load_docker_image(image)
    yield _guard(Path(cluster.kubeconfig_path))
    if os.environ.get("KEEP_CLUSTER") != "1":
        cluster.delete()
