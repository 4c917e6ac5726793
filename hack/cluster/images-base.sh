#!/usr/bin/env bash
# Builds the local base images that no registry can give us here:
#   ember/pause:1.0           the pod sandbox (a tiny static C program)
#   ember/python-base:bookworm Debian bookworm + python3, made with debootstrap
# Both are cached as tarballs under $CACHE so reruns only `docker load` them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
"$(dirname "$0")/docker.sh"
IMG_CACHE="$CACHE/images"; mkdir -p "$IMG_CACHE"

if ! docker_cli image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
  if [[ ! -f "$IMG_CACHE/pause.tar" ]]; then
    step "building the pause image"
    tmp="$(mktemp -d)"
    cat >"$tmp/pause.c" <<'C'
/* Pod sandbox: hold the namespaces, reap orphans, exit on TERM/INT. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGTERM, quit); signal(SIGINT, quit); signal(SIGCHLD, reap);
  for (;;) pause();
}
C
    gcc -static -Os -o "$tmp/pause" "$tmp/pause.c"
    strip "$tmp/pause"
    tar -C "$tmp" -cf "$tmp/rootfs.tar" pause
    docker_cli import -c 'ENTRYPOINT ["/pause"]' -c 'USER 65535:65535' "$tmp/rootfs.tar" "$PAUSE_IMAGE" >/dev/null
    docker_cli save "$PAUSE_IMAGE" -o "$IMG_CACHE/pause.tar"
    rm -rf "$tmp"
  else
    docker_cli load -q -i "$IMG_CACHE/pause.tar" >/dev/null
  fi
fi

BASE_IMAGE="ember/python-base:bookworm"
if ! docker_cli image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [[ ! -f "$IMG_CACHE/python-base.tar" ]]; then
    step "building $BASE_IMAGE with debootstrap (about a minute)"
    command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
    # Use the same Debian mirror apt is configured with on this machine.
    mirror="$(grep -hoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
      | grep -v security | head -1 | awk '{print $2}' || true)"
    [[ -n "$mirror" ]] || die "no Debian mirror found in apt's sources"
    root="$(mktemp -d)"
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$root" "$mirror" \
      >"$IMG_CACHE/debootstrap.log" 2>&1 || { tail -20 "$IMG_CACHE/debootstrap.log"; die "debootstrap failed"; }
    # Slim it: no apt caches, docs or locales in a function image.
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
      "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    tar -C "$root" -c . | docker_cli import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    docker_cli save "$BASE_IMAGE" -o "$IMG_CACHE/python-base.tar"
    rm -rf "$root"
  else
    docker_cli load -q -i "$IMG_CACHE/python-base.tar" >/dev/null
  fi
fi
info "base images ready: $PAUSE_IMAGE $BASE_IMAGE"
