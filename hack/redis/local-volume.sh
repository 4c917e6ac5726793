#!/usr/bin/env bash
# The local cluster (hack/cluster) has no storage provisioner, so a claim
# for the chart's bundled Redis would stay Pending. This makes the volume a
# provisioner would: a directory on the node (the cluster's state folder,
# removed with the cluster by `make cluster-down`), owned by the Redis pod's
# user, and a PersistentVolume without a class, pre-bound to one claim.
# Install the chart with `--set redis.persistence.storageClass=-` to match.
# Idempotent: a volume left Released by an uninstall is freed for the next
# claim of that name, with its data.
#   local-volume.sh NAMESPACE CLAIM [SIZE]     create (or reuse) the volume
#   local-volume.sh --delete NAMESPACE CLAIM   delete the volume and its data
set -euo pipefail
source "$(dirname "$0")/../cluster/lib.sh"
need_root
delete=0
if [[ "${1:-}" == --delete ]]; then delete=1; shift; fi
ns="${1:?namespace}" claim="${2:?claim name}" size="${3:-1Gi}"
pv="ember-local-$ns-$claim"
dir="$STATE/volumes/$ns/$claim"
if ((delete)); then
  kubectl_ delete pv "$pv" --ignore-not-found --wait=false >/dev/null
  rm -rf "$dir"
  exit 0
fi
install -d -o 10001 -g 10001 -m 0700 "$dir"
phase="$(kubectl_ get pv "$pv" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
if [[ "$phase" == Released ]]; then
  kubectl_ patch pv "$pv" --type json -p '[{"op": "remove", "path": "/spec/claimRef/uid"},
    {"op": "remove", "path": "/spec/claimRef/resourceVersion"}]' >/dev/null
elif [[ -z "$phase" ]]; then
  kubectl_ apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $pv
  labels: {app.kubernetes.io/part-of: ember, ember.dev/local-volume: "true"}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: $ns, name: $claim}
  hostPath: {path: $dir, type: Directory}
YAML
fi
