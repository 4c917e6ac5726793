#!/usr/bin/env bash
# The README's test command: unit tests, then integration tests against the
# cluster's real apiserver, then e2e tests with real pods. It starts the local
# cluster if none runs and stops it afterwards unless KEEP_CLUSTER=1 (a
# cluster that was already running is left running).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/cluster/lib.sh
PY="${PY:-.venv/bin/python}"
CLUSTER="${CLUSTER:-${EMBER_CLUSTER:-local}}"
export EMBER_CLUSTER="$CLUSTER"
t0=$SECONDS
banner() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

banner "unit tests"
"$PY" -m pytest -m unit -q

started=0
if [[ "$CLUSTER" == local ]]; then
  if ! hack/cluster/cluster.sh status >/dev/null 2>&1; then
    banner "starting the local cluster"
    make --no-print-directory cluster
    started=1
  fi
  cleanup() {
    resume_installed_operator
    if [[ $started == 1 && "${KEEP_CLUSTER:-0}" != 1 ]]; then
      banner "stopping the local cluster (KEEP_CLUSTER=1 keeps it)"
      hack/cluster/cluster.sh down
    fi
  }
  trap cleanup EXIT
fi

[[ "$CLUSTER" == local ]] && pause_installed_operator

banner "images"
make --no-print-directory images

banner "integration tests (real kube-apiserver, real processes on loopback)"
"$PY" -m pytest -m integration -q

banner "e2e tests (real pods on the $CLUSTER cluster)"
"$PY" -m pytest -m e2e -q

banner "all tiers passed in $((SECONDS - t0))s"
