#!/usr/bin/env bash
# Smoke test of the node mode (tests/k8s/cluster.sh up --node): a control plane with a real
# node on this machine. Packs the replica into an image (tests/k8s/images.sh), runs it as a
# native sidecar in a Deployment, and checks pods, cluster DNS (headless Service), the mesh
# between two pods, ClusterIP Services from the host and from pods, logs/exec, and that `down`
# leaves the host clean. Ends with "N passed, M failed"; exits non-zero if any check failed.
#
#   bash tests/k8s/node-smoke.sh
#
# Needs root. Environment: NODE_SMOKE_NAME (instance name, default node-smoke-<pid>),
# SYNCMESH_REPLICA_BIN (default $CARGO_TARGET_DIR/debug/syncmesh-replica, built with cargo
# when missing), plus everything cluster.sh reads.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER="$HERE/cluster.sh"
IMAGES="$HERE/images.sh"
NAME=${NODE_SMOKE_NAME:-node-smoke-$$}
STARTED_AT=$SECONDS
STATE_DIR=""
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}
REPLICA_BIN=${SYNCMESH_REPLICA_BIN:-$CARGO_TARGET_DIR/debug/syncmesh-replica}
REPLICA_IMAGE=syncmesh-replica:node-smoke
TOOLBOX_IMAGE=syncmesh-toolbox:node-smoke   # busybox (Debian's busybox-static): sh, nslookup, nc

TEST_TAG=node-smoke
# shellcheck source=tests/k8s/testlib.sh
source "$HERE/testlib.sh"

cleanup() {
  local rc=$?
  set +e
  if (( FAILED > 0 || rc != 0 )) && [[ -n "$STATE_DIR" && -d "$STATE_DIR" ]]; then
    for f in "$STATE_DIR"/logs/*.log; do
      [[ -f "$f" ]] || continue
      echo "---- $f: last errors"; grep -E '^[EF][0-9]{4} |level=(error|fatal)|\[ERROR\]' "$f" | tail -n 6 | cut -c1-300
    done
    [[ -n "${NS:-}" ]] && "$KUBECTL" -n "$NS" get pods -o wide 2>&1 | sed 's/^/    /'
  fi
  "$CLUSTER" --name "$NAME" down 2>&1 | sed 's/^/    /'
  finish "$rc"
}
on_exit cleanup

[[ $(id -u) == 0 ]] || { echo "node-smoke.sh needs root"; exit 1; }
command -v redis-cli >/dev/null || { echo "node-smoke.sh needs redis-cli (apt-get install redis-tools)"; exit 1; }
[[ -x /bin/busybox ]] || { echo "node-smoke.sh needs /bin/busybox (apt-get install busybox-static)"; exit 1; }
if [[ ! -x "$REPLICA_BIN" ]]; then
  say "building syncmesh-replica"
  (cd "$ROOT" && cargo build -q -p syncmesh-replica)
fi

# ------------------------------------------------------------------ up --node
say "bringing up control plane + node '$NAME' (builds binaries on first use)"
t0=$SECONDS
if ! ENV_OUT=$("$CLUSTER" --name "$NAME" up --node); then fail "cluster.sh up --node"; exit 1; fi
eval "$ENV_OUT"
STATE_DIR=$(dirname "$KUBECONFIG")
pass "cluster.sh up --node ($((SECONDS - t0))s)"
KUBECTL=$SYNCMESH_K8S_BIN/kubectl
k() { "$KUBECTL" "$@"; }
NODE=syncmesh-$NAME

node_ready() {
  local out
  out=$(k get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.status.addresses[0].address}')
  echo "$out"
  [[ "$out" == "True v1.37.2 containerd://2."*" 10.244.0.1" ]]
}
check "Node $NODE is Ready (kubelet v1.37.2, containerd 2.x, InternalIP 10.244.0.1)" node_ready || true

# ------------------------------------------------------------------ images
t0=$SECONDS
images_ok() {
  "$IMAGES" --name "$NAME" binary "$REPLICA_IMAGE" "$REPLICA_BIN" --strip &&
    "$IMAGES" --name "$NAME" binary "$TOOLBOX_IMAGE" /bin/busybox -- sleep 100000 &&
    grep -qx "docker.io/library/$REPLICA_IMAGE" <<<"$("$IMAGES" --name "$NAME" list)"
}
check "images.sh packs and imports the replica and a busybox toolbox image" images_ok || true
say "images packed and imported in $((SECONDS - t0))s"

if ! NS=$("$CLUSTER" --name "$NAME" ns node) || [[ -z "$NS" ]]; then fail "cluster.sh ns"; exit 1; fi

# ------------------------------------------------------------------ the replica as a native sidecar
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: mesh
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: shop}
  ports:
  - {name: mesh, port: 7379}
---
apiVersion: v1
kind: Service
metadata:
  name: redis
spec:
  selector: {app: shop}
  ports:
  - {name: redis, port: 6379}
  - {name: admin, port: 9379}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      terminationGracePeriodSeconds: 2
      initContainers:
      - name: syncmesh
        image: $REPLICA_IMAGE
        imagePullPolicy: Never
        restartPolicy: Always
        args: [--bind, 0.0.0.0, --protected-mode, "no", --mesh-insecure, --mesh-bind, 0.0.0.0, --mesh-secret, node-smoke, --database, shop, --peers-dns, mesh.$NS.svc.cluster.local]
        ports:
        - {name: redis, containerPort: 6379}
        - {name: mesh, containerPort: 7379}
        - {name: admin, containerPort: 9379}
        startupProbe:
          httpGet: {path: /readyz, port: admin}
          periodSeconds: 1
          failureThreshold: 60
        readinessProbe:
          httpGet: {path: /readyz, port: admin}
          periodSeconds: 2
        securityContext:
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
          seccompProfile: {type: RuntimeDefault}
      containers:
      - name: app
        image: $TOOLBOX_IMAGE
        imagePullPolicy: Never
        env:
        - {name: REDIS_URL, value: "redis://127.0.0.1:6379"}
EOF

pods_ready() {
  local out
  out=$(k -n "$NS" get pods -l app=shop -o jsonpath='{range .items[*]}{.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  echo "$out"
  [[ $(grep -c '^Running True$' <<<"$out") -eq 2 ]]
}
check "the Deployment's 2 pods are Running and Ready" eventually 120 pods_ready || true

sidecar_native() {
  local out
  # A classic init container would have terminated before the app started; a native
  # sidecar (restartPolicy: Always) keeps running next to it, and started before it.
  out=$(k -n "$NS" get pods -l app=shop -o jsonpath='{range .items[*]}{.status.initContainerStatuses[0].name}:{.status.initContainerStatuses[0].started}:{.status.initContainerStatuses[0].ready}:{.status.initContainerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].name}:{.status.containerStatuses[0].state.running.startedAt}{"\n"}{end}')
  echo "$out"
  local side app
  [[ $(wc -l <<<"$out") -eq 2 ]] || return 1
  while read -r side app; do
    [[ "$side" == syncmesh:true:true:* && "$app" == app:?* ]] || return 1
    [[ "${side##*:true:}" < "${app#app:}" || "${side##*:true:}" == "${app#app:}" ]] || return 1
  done <<<"$out"
}
check "the replica runs as a native sidecar (init container running beside the app, started first)" sidecar_native || true

mapfile -t POD_NAMES < <(k -n "$NS" get pods -l app=shop -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
mapfile -t POD_IPS < <(k -n "$NS" get pods -l app=shop -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}')
say "pods: ${POD_NAMES[*]} at ${POD_IPS[*]}"
pod_ips_ok() { [[ ${#POD_IPS[@]} -eq 2 && "${POD_IPS[0]}" == 10.244.0.* && "${POD_IPS[1]}" == 10.244.0.* ]]; }
check "pods have addresses from the pod subnet 10.244.0.0/24 (${POD_IPS[*]})" pod_ips_ok || true

# ------------------------------------------------------------------ DNS from inside a pod
in_app() { k -n "$NS" exec "${POD_NAMES[0]}" -c app -- busybox "$@"; }
headless_dns() {
  local out ip
  out=$(in_app nslookup "mesh.$NS.svc.cluster.local" 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  for ip in "${POD_IPS[@]}"; do grep -q "Address: $ip\$" <<<"$out" || return 1; done
}
check "the headless Service mesh.$NS.svc.cluster.local resolves to both pod IPs from a pod" eventually 30 headless_dns || true
svc_dns() {
  local out want
  want=$(k -n "$NS" get svc redis -o jsonpath='{.spec.clusterIP}')
  # busybox nslookup tries every search domain and exits 1 when any of them is NXDOMAIN.
  out=$(in_app nslookup redis 2>&1) || true
  echo "$out"; grep -q "Address: $want\$" <<<"$out"
}
check "a ClusterIP Service resolves by its short name (search path) from a pod" eventually 30 svc_dns || true

# ------------------------------------------------------------------ the mesh across the two pods
rcli() { redis-cli -h "$1" -p 6379 "${@:2}"; }
mesh_replicates() {
  rcli "${POD_IPS[0]}" SET node-smoke "hello from ${POD_NAMES[0]}" >/dev/null || return 1
  [[ "$(rcli "${POD_IPS[1]}" GET node-smoke)" == "hello from ${POD_NAMES[0]}" ]]
}
check "a SET on one pod's replica is read from the other's (mesh over --peers-dns)" eventually 60 mesh_replicates || true
mesh_back() {
  rcli "${POD_IPS[1]}" SET node-smoke-back yes >/dev/null || return 1
  [[ "$(rcli "${POD_IPS[0]}" GET node-smoke-back)" == yes ]]
}
check "and the other way round" eventually 30 mesh_back || true

# ------------------------------------------------------------------ Services
CLUSTER_IP=$(k -n "$NS" get svc redis -o jsonpath='{.spec.clusterIP}')
host_clusterip() { [[ "$(redis-cli -h "$CLUSTER_IP" -p 6379 PING)" == PONG ]]; }
check "the ClusterIP Service redis ($CLUSTER_IP:6379) reaches a pod from the host (kube-proxy)" eventually 30 host_clusterip || true
pod_clusterip() {
  local out
  out=$(in_app sh -c "printf 'PING\\r\\n' | busybox nc -w 2 redis.$NS.svc.cluster.local 6379") || { echo "$out"; return 1; }
  echo "$out"; grep -q PONG <<<"$out"
}
check "the ClusterIP Service reaches a pod from a pod (by DNS name)" eventually 30 pod_clusterip || true
apiserver_to_pod() {
  local out
  out=$(k get --raw "/api/v1/namespaces/$NS/services/http:redis:admin/proxy/readyz" 2>&1) || { echo "$out"; return 1; }
  echo "$out"
}
check "the apiserver reaches pod IPs through a Service (as it calls a webhook Service)" eventually 30 apiserver_to_pod || true
pod_apiserver() { in_app sh -c 'echo | busybox nc -w 2 10.96.0.1 443'; }
check "the kubernetes Service (10.96.0.1:443) reaches the apiserver from a pod" eventually 30 pod_apiserver || true

# ------------------------------------------------------------------ logs and exec (apiserver -> kubelet)
replica_logs() {
  local out
  out=$(k -n "$NS" logs "${POD_NAMES[0]}" -c syncmesh --tail=50) || return 1
  grep "ready to accept connections" <<<"$out"
}
check "kubectl logs shows the sidecar's log (apiserver -> kubelet)" replica_logs || true
exec_user() { [[ "$(in_app id -u)" == 65532 ]]; }
check "kubectl exec runs in the pod, as the image's user 65532" exec_user || true

# ------------------------------------------------------------------ rollout: a pod replaced
replace_pod() {
  k -n "$NS" delete pod "${POD_NAMES[0]}" --wait=true --timeout=60s >/dev/null &&
    eventually 90 pods_ready >/dev/null &&
    [[ $(k -n "$NS" get pods -l app=shop -o name | wc -l) -eq 2 ]]
}
check "a deleted pod is stopped and replaced by a Ready one" replace_pod || true

# ------------------------------------------------------------------ down leaves the host clean
down_clean() {
  local left
  "$CLUSTER" --name "$NAME" down >/dev/null 2>&1 || return 1
  ! ip link show syncmesh0 >/dev/null 2>&1 || { echo "bridge syncmesh0 left"; return 1; }
  left=$(iptables-save | grep -cE '(KUBE|CNI)-' || true)
  [[ "$left" == 0 ]] || { echo "$left iptables lines left"; return 1; }
  ! grep -qF "$STATE_DIR/" /proc/self/mounts || { echo "mounts left"; return 1; }
  ! pgrep -f "$STATE_DIR/" >/dev/null || { echo "processes left: $(pgrep -af "$STATE_DIR/")"; return 1; }
  ! ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1 || { echo "cgroups left"; return 1; }
  ! ls /var/lib/cni/results/"syncmesh-$NAME"-* >/dev/null 2>&1 || { echo "CNI results left (no CNI DEL)"; return 1; }
  ! find /var/log/containers -lname "$STATE_DIR/*" 2>/dev/null | grep -q . || { echo "log links left"; return 1; }
  [[ ! -d "$STATE_DIR" ]]
}
check "cluster.sh down stops every pod through the kubelet and leaves no bridge, iptables chain, mount, process, cgroup or host file" down_clean || true
