# Shared settings and helpers for the local cluster harness (sourced, not run).
# Everything the harness creates is named "ember"/"ember0" or lives under
# $STATE, so `down` can remove exactly that and nothing else.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE="${EMBER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
# One cluster per machine (it owns ports 6443/10250, the ember0 bridge and
# iptables rules), so its state lives at a fixed place, not in a checkout.
STATE="${EMBER_CLUSTER_DIR:-/var/lib/ember-cluster}"
RUNDIR="/run/ember-cluster"
NODE_NAME="ember-node"
BRIDGE="ember0"
POD_CIDR="10.244.0.0/24"
NODE_IP="10.244.0.1"          # the bridge's address: pods reach the apiserver and DNS here
SERVICE_CIDR="10.96.0.0/16"
KUBE_SVC_IP="10.96.0.1"
CONTAINERD_SOCK="$RUNDIR/containerd.sock"
DOCKER_SOCK="/run/ember-docker.sock"
PAUSE_IMAGE="ember/pause:1.0"
IPT_TAG="ember-cluster"

step_no=0
step() { step_no=$((step_no + 1)); printf '\033[1m[%s %2d] %s\033[0m\n' "${STEP_PREFIX:-cluster}" "$step_no" "$*" >&2; }
info() { printf '             %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $EUID -eq 0 ]] || die "the local cluster needs root (it runs kubelet, containerd and iptables)"; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start > timeout)); then die "timed out after ${timeout}s waiting for $what"; fi
    sleep 0.5
  done
  info "$what after $((SECONDS - start))s"
}

# docker CLI against the daemon the harness manages (or an already running one).
docker_cli() {
  if [[ -S "$DOCKER_SOCK" ]]; then DOCKER_BUILDKIT=0 /usr/bin/docker -H "unix://$DOCKER_SOCK" "$@"
  else DOCKER_BUILDKIT=0 /usr/bin/docker "$@"; fi
}

ctr_cli() { ctr -a "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# kubectl against this cluster only, whatever $KUBECONFIG says.
kubectl_() { "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

# An operator installed by `make up` reconciles every namespace, so it would
# compete with the operators that tests and benchmarks run themselves:
# pause it (scale to 0) for their duration and resume it afterwards.
OPERATOR_PAUSED=0
pause_installed_operator() {
  [[ -f "$STATE/kubeconfig" ]] || return 0
  kubectl_ -n ember-system get deploy ember-operator >/dev/null 2>&1 || return 0
  [[ "$(kubectl_ -n ember-system get deploy ember-operator -o jsonpath='{.spec.replicas}')" != 0 ]] || return 0
  info "pausing the installed ember-operator for this run"
  kubectl_ -n ember-system scale deploy ember-operator --replicas 0 >/dev/null
  kubectl_ -n ember-system wait --for=delete pod -l app.kubernetes.io/component=operator --timeout 60s >/dev/null 2>&1 || true
  OPERATOR_PAUSED=1
}
resume_installed_operator() {
  [[ $OPERATOR_PAUSED == 1 ]] || return 0
  kubectl_ -n ember-system scale deploy ember-operator --replicas 1 >/dev/null || true
  OPERATOR_PAUSED=0
}
