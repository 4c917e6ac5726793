"""Every benchmark case still runs and reports, at a size that takes seconds.

Benchmarks are not run by CI at full size, so without this a renamed
attribute or a changed command line would only show when somebody runs
``make bench``. This checks that each case exits 0 and writes a result with
its figures, never what the figures are: goals live in the benchmarks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, on_kind

pytestmark = pytest.mark.integration

SMALL = {
    "runtime_boot": (["--rounds", "2"], "ratio_p50"),
    "worker_spawn": (["--samples", "5", "--cold-samples", "2"], "refill_ms"),
    "runtime_overhead": (["--rounds", "1", "--seconds", "1"], "rps_ratio"),
    "metrics_overhead": (["--rounds", "2", "--pairs", "1", "--seconds", "1"], "loss"),
    "gateway_hop": (["--rounds", "1", "--seconds", "1"], "rps_ratio"),
    "activator_release": (["--requests", "50", "--rounds", "1"], "release_p99_ms"),
    "autoscale_step": (["--functions", "10", "--hold", "40"], "goal_met"),
    "async_throughput": (
        ["--rounds", "1", "--messages", "100", "--clients", "8"],
        "ember_of_floor",
    ),
}


def run_case(case: str, args: list[str], results: Path, **env: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{case}.py"), *args],
        cwd=REPO,
        env={**os.environ, "EMBER_BENCH_RESULTS": str(results), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{case} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert f"== {case}" in proc.stdout
    result: dict[str, object] = json.loads((results / f"{case}.json").read_text())
    assert result["case"] == case
    return result


@pytest.mark.parametrize("case", sorted(SMALL))
def test_runtime_case_runs_and_reports(case: str, tmp_path: Path) -> None:
    args, key = SMALL[case]
    result = run_case(case, args, tmp_path)
    assert key in result, sorted(result)


def test_operator_reconcile_runs_every_side_and_reports(kubeconfig: str, tmp_path: Path) -> None:
    result = run_case(
        "operator_reconcile",
        ["--count", "5", "--rounds", "1", "--timeout", "120"],
        tmp_path,
        KUBECONFIG=kubeconfig,
        EMBER_BENCH_QUIET_TIMEOUT="10",
    )
    runs = result["runs"]
    assert isinstance(runs, dict) and set(runs) == {"noop", "floor", "ember"}
    for side in ("floor", "ember"):
        assert runs[side][0]["deployments"] == 5.0, (side, runs[side])
    assert "throughput_ratio_vs_noop" in result and "floor_ratio_vs_noop" in result


def test_cold_start_runs_both_sides_and_reports(kubeconfig: str, tmp_path: Path) -> None:
    """Two cycles against the test cluster: a chart release in a namespace
    of its own (uninstalled at the end), a Function at zero called through
    the gateway, and the plain-Deployment peer."""
    if on_kind():
        pytest.skip("cold_start reaches the gateway's ClusterIP from the host; kind does not route")
    result = run_case(
        "cold_start",
        ["--cycles", "2"],
        tmp_path,
        KUBECONFIG=kubeconfig,
        EMBER_COLD_SETTLE_SECONDS="1",
    )
    for side in ("ember_ms", "peer_ms"):
        samples = result[side]
        assert isinstance(samples, list) and len(samples) == 2, result
    assert "p50_diff_ms" in result
