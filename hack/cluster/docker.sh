#!/usr/bin/env bash
# Starts a Docker daemon for building images, if none answers. It runs with
# iptables and the default bridge off: builds need no network (wheels are
# built on the host), and Docker's FORWARD=DROP policy would otherwise cut
# the cluster's pod traffic.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
if docker_cli info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || die "dockerd missing: apt-get install docker.io"
mkdir -p "$CACHE/docker" /run/ember-docker
step "starting dockerd (data in $CACHE/docker)"
nohup dockerd --host "unix://$DOCKER_SOCK" --data-root "$CACHE/docker" --exec-root /run/ember-docker \
  --pidfile /run/ember-docker/dockerd.pid --iptables=false --ip-masq=false --bridge=none \
  >"/run/ember-docker/dockerd.log" 2>&1 &
wait_for "dockerd" 60 docker_cli info
