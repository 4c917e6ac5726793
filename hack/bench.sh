#!/usr/bin/env bash
# Runs every benchmark case (bench/<case>.py). Each one runs its peer in the
# same run and writes bench/results/<case>.json. BENCH=case1,case2 picks some.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
source hack/cluster/lib.sh
# One benchmark at a time per machine: two at once would measure each other.
exec 9>/tmp/ember-bench.lock
flock 9
pause_installed_operator
trap resume_installed_operator EXIT
mkdir -p bench/results
# Images ship compiled bytecode (the Dockerfile runs compileall); measure the
# sources the same way, even where PYTHONDONTWRITEBYTECODE is set.
"$PY" -m compileall -q runtime/src operator/src
cases=()
if [[ -n "${BENCH:-}" ]]; then IFS=, read -r -a cases <<<"$BENCH"
else for f in bench/[a-z]*.py; do cases+=("$(basename "$f" .py)"); done; fi
for c in "${cases[@]}"; do
  printf '\n\033[1m==> bench %s\033[0m\n' "$c"
  "$PY" "bench/$c.py" 9>&-  # the lock is ours, not the servers' it starts
done
