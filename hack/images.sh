#!/usr/bin/env bash
# Builds Ember's images from the one Dockerfile (wheels come from
# `make wheels`) and, when the local cluster runs, loads them into its
# containerd. BASE_IMAGE picks the base: the locally built Debian one by
# default here; any python3.11 Debian image works elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_PREFIX=images
source hack/cluster/lib.sh
TAG="${IMAGE_TAG:-dev}"
BASE_IMAGE="${BASE_IMAGE:-ember/python-base:bookworm}"
[[ -d build/wheels ]] || die "no build/wheels: run make wheels"
if [[ "$BASE_IMAGE" == ember/python-base:* ]]; then hack/cluster/images-base.sh; else hack/cluster/docker.sh; fi

# The wheels come from the host's Python; the image's may be older and need
# more (redis-py wants async-timeout below Python 3.11.3, and Debian's is
# 3.11.2). Ask the image's own pip what the wheels lack, offline, and add it.
complete_wheels() {
  local py="${PY:-.venv/bin/python}" missing _
  for _ in 1 2 3 4 5; do
    missing="$(docker_cli run --rm --network none -v "$PWD/build/wheels:/wheels:ro" "$BASE_IMAGE" \
      python3 -m pip install --dry-run --no-index --find-links /wheels --target /tmp/site \
      ember-operator ember-runtime 2>&1 | sed -n 's/.*No matching distribution found for //p' | head -1 || true)"
    [[ -n "$missing" ]] || return 0
    info "the image's Python also needs ${missing%%;*}: adding its wheel"
    "$py" -m pip wheel -q --no-deps --wheel-dir build/wheels "${missing%%;*}" >/dev/null \
      || die "could not build a wheel of ${missing%%;*}"
  done
  die "wheels still incomplete for $BASE_IMAGE"
}

build() { # build TARGET IMAGE [docker build options]
  local t0=$SECONDS log; log="$(mktemp)"
  if ! docker_cli build "${@:3}" --build-arg "BASE=$BASE_IMAGE" --target "$1" -t "$2" . >"$log" 2>&1; then
    tail -30 "$log" >&2; rm -f "$log"; die "docker build --target $1 failed"
  fi
  rm -f "$log"
  info "$2 ($1) built in $((SECONDS - t0))s, $(docker_cli image inspect -f '{{.Size}}' "$2" | awk '{printf "%.0f MB", $1/1e6}')"
}
content_tag() { # content_tag IMAGE: also tag IMAGE by its content id, print that tag
  local id; id="$(docker_cli image inspect -f '{{.Id}}' "$1" | cut -d: -f2 | cut -c1-12)"
  docker_cli tag "$1" "${1%:*}:id-$id"
  echo "id-$id"
}
complete_wheels
step "building images on $BASE_IMAGE"
build runtime "ember/runtime:$TAG"
build controlplane "ember/controller:$TAG"
# The chart's bundled Redis: Debian's redis-server through apt. The harness's
# dockerd runs without a bridge (no network for builds), so this one build
# shares the host's network to reach the base's Debian mirror; the layer
# cache makes reruns instant.
build redis "ember/redis:$TAG" --network host
# Content tags let a deployment roll when a rebuilt image keeps its
# human tag (`make up` installs by these).
runtime_id="$(content_tag "ember/runtime:$TAG")"
controller_id="$(content_tag "ember/controller:$TAG")"
redis_id="$(content_tag "ember/redis:$TAG")"
mkdir -p build
printf 'RUNTIME_TAG=%s\nCONTROLLER_TAG=%s\nREDIS_TAG=%s\n' "$runtime_id" "$controller_id" "$redis_id" >build/images.env
if hack/cluster/cluster.sh status >/dev/null 2>&1; then
  step "loading images into the local cluster"
  hack/cluster/cluster.sh load "ember/runtime:$TAG" "ember/controller:$TAG" "ember/redis:$TAG" \
    "ember/runtime:$runtime_id" "ember/controller:$controller_id" "ember/redis:$redis_id"
fi
