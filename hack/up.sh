#!/usr/bin/env bash
# `make up`: Ember's main job on one machine. A local cluster, Ember's images,
# the Helm chart installed, and the example function applied and invoked.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/cluster/lib.sh
STEP_PREFIX=up
HELM="${HELM:?set by make}"
export KUBECONFIG="$STATE/kubeconfig"   # for helm
t0=$SECONDS

step "cluster"; make --no-print-directory cluster
step "images"; make --no-print-directory images IMAGE_TAG="${IMAGE_TAG:-dev}"
step "a volume for the bundled Redis (the local cluster has no provisioner)"
hack/redis/local-volume.sh ember-system ember-redis
info "PersistentVolume ember-local-ember-system-ember-redis ($STATE/volumes/ember-system/ember-redis)"
step "helm upgrade --install ember charts/ember (namespace ember-system)"
source build/images.env   # content tags from `make images`
if ! "$HELM" upgrade --install ember charts/ember --namespace ember-system --create-namespace \
  --set operator.image.tag="$CONTROLLER_TAG" --set runtime.image.tag="$RUNTIME_TAG" \
  --set redis.image.tag="$REDIS_TAG" --set redis.persistence.storageClass=- \
  --wait --timeout 3m >/dev/null; then
  kubectl_ -n ember-system get pods >&2
  kubectl_ -n ember-system logs deploy/ember-operator --tail 20 >&2 || true
  die "the Ember release did not become ready"
fi
kubectl_ -n ember-system get deploy -l app.kubernetes.io/instance=ember
step "applying examples/hello/function.yaml"
kubectl_ apply -f examples/hello/function.yaml
kubectl_ wait --for=condition=Ready function/hello --timeout=180s >/dev/null
kubectl_ get functions
step "invoking hello through the gateway (it starts at zero pods: this call wakes it)"
gw="$(kubectl_ -n ember-system get svc ember-gateway -o jsonpath='{.spec.clusterIP}:{.spec.ports[0].port}')"
url="http://$gw/fn/default/hello"
for i in $(seq 1 30); do
  if out="$(curl -fsS -m 70 -w '\n(%{http_code} in %{time_total}s)' \
      -H 'content-type: application/json' -d '{"name": "Ember"}' "$url")"; then
    echo "$out"; break
  fi
  ((i == 30)) && die "hello did not answer through the gateway at $url"
  sleep 2
done
kubectl_ get functions hello
step "an async call to hello (202 and an invocation id; the dispatcher makes the call)"
async_url="http://$gw/async/default/hello"
headers="$(mktemp)"; trap 'rm -f "$headers"' EXIT
code="$(curl -sS -m 30 -o /dev/null -D "$headers" -w '%{http_code}' \
  -H 'content-type: application/json' -d '{"name": "async Ember"}' "$async_url")" \
  || die "the gateway did not answer POST $async_url"
[[ "$code" == 202 ]] || die "POST $async_url answered $code, not 202"
id="$(awk -F': ' 'tolower($1) == "x-ember-invocation-id" {print $2}' "$headers" | tr -d '\r')"
[[ -n "$id" ]] || die "no X-Ember-Invocation-Id in the 202"
info "202, invocation $id"
status=""
for i in $(seq 1 60); do
  status="$(curl -fsS -m 10 "$async_url/$id")" || status=""
  if grep -qE '"status": *"(succeeded|failed|dead-lettered)"' <<<"$status"; then break; fi
  ((i == 60)) && die "invocation $id did not finish in 60s (last status: ${status:-none})"
  sleep 1
done
# One line: the status, the attempts and the function's answer.
python3 -c "import json, sys
r = json.loads(sys.argv[1])
said = r.get('result', {}).get('body') or r.get('error', '')
print(r['status'], 'after', r['attempts'], 'attempt(s):', said)" "$status"
info "Ember is up in $((SECONDS - t0))s. KUBECONFIG=$KUBECONFIG"
info "hello's URL: $url"
info "try: curl -s -H 'content-type: application/json' -d '{\"name\": \"you\"}' $url"
info "async: curl -si -H 'content-type: application/json' -d '{\"name\": \"you\"}' $async_url"
info "       then curl -s $async_url/<X-Ember-Invocation-Id>"
