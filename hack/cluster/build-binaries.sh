#!/usr/bin/env bash
# Builds the Kubernetes server binaries (and CoreDNS) from Go modules, into a
# cache outside the repository so that later runs - including CI in a fresh
# clone - skip the build. There is no registry here, so nothing is downloaded
# except Go modules through the module proxy.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
CACHE="${EMBER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ember}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

log() { printf '[build-binaries] %s\n' "$*" >&2; }

missing=()
for c in "${COMPONENTS[@]}"; do [[ -x "$BIN/$c" ]] || missing+=("$c"); done

if ((${#missing[@]})); then
  log "building Kubernetes $K8S_VERSION: ${missing[*]} (cold: ~10 min on 2 cores)"
  work="$CACHE/k8s-$K8S_VERSION/src"
  mkdir -p "$work" "$BIN"
  modfile="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "module ember.dev/k8sbuild"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$modfile" | awk '/=>/ {print "\t" $1 " => " $1 " '"$staging_version"'"}'
    echo ")"
  } > "$work/go.mod"
  cat > "$work/tools.go" <<GO
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  cd "$work"
  log "resolving modules"
  GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
  GOFLAGS=-mod=mod go mod download
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  pkgs=(); for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "compiling ${pkgs[*]}"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -tags providerless -trimpath -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}"
fi

if [[ ! -x "$BIN/coredns" ]]; then
  log "building CoreDNS $COREDNS_VERSION"
  GOBIN="$BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" \
    || log "CoreDNS build failed; Service names will not resolve in pods"
fi

log "binaries ready in $BIN"
echo "$BIN"
