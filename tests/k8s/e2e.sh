#!/usr/bin/env bash
# End to end on a real single-node cluster (tests/k8s/cluster.sh up --node): the chart's
# operator runs as pods and serves its webhook through its Service; two demo microservices
# (tests/e2e/demo) get the replica injected and share data through it.
#
#   bash tests/k8s/e2e.sh            the test (suite `e2e` of tests/run-all.sh)
#
# The setup steps are tests/k8s/demo.sh's (the README's demo), so the test checks what users run.
#
# Ends with "N passed, M failed" and the measured figures; exits non-zero if a check failed.
# Environment: E2E_NAME (instance name, default e2e), plus everything cluster.sh reads.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER="$HERE/cluster.sh"
NAME=${E2E_NAME:-e2e}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-e2e.XXXXXX")
STARTED_AT=$SECONDS
TAG=e2e
BG_PIDS=()

TEST_TAG=e2e
# shellcheck source=tests/k8s/testlib.sh
source "$HERE/testlib.sh"
# shellcheck source=tests/k8s/demo.sh
source "$HERE/demo.sh"
SYSTEM_NS=$DEMO_SYSTEM_NS
NS=$DEMO_NS

cleanup() {
  local rc=$?
  set +e
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  if (( FAILED > 0 || rc != 0 )); then
    echo "---- pods"; k get pods -A -o wide 2>/dev/null | head -n 30
    echo "---- recent events"; k get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 | cut -c1-250
    for pod in $(k -n "$SYSTEM_NS" get pods -o name 2>/dev/null); do
      echo "---- $pod"; k -n "$SYSTEM_NS" logs "$pod" --tail=15 2>/dev/null | cut -c1-300
    done
    for pod in $(k -n "$NS" get pods -o name 2>/dev/null | head -n 3); do
      echo "---- $pod (replica)"; k -n "$NS" logs "$pod" -c syncmesh-replica --tail=10 2>/dev/null | cut -c1-300
    done
  fi
  "$CLUSTER" --name "$NAME" down 2>&1 | sed 's/^/    /'
  rm -rf "$WORK"
  finish "$rc"
}
on_exit cleanup

# ------------------------------------------------------------------ build, cluster, images
say "building the replica, the operator and the demo service"
demo_build || { fail "cargo build"; exit 1; }
say "bringing up control plane and node '$NAME' (builds binaries on first use)"
t0=$SECONDS
ENV_OUT=$("$CLUSTER" --name "$NAME" up --node) || { fail "cluster.sh up --node"; exit 1; }
eval "$ENV_OUT"
pass "cluster.sh up --node ($((SECONDS - t0))s)"
KUBECTL=$SYNCMESH_K8S_BIN/kubectl
HELM=$SYNCMESH_K8S_BIN/helm
k() { "$KUBECTL" "$@"; }
check "OCI images of the replica, the operator and the demo service are built and imported" \
  demo_images "$NAME" "$TAG" || exit 1

# ------------------------------------------------------------------ 1. helm install
check "helm install: the operator runs as pods (2 replicas, ready)" demo_install "$KUBECTL" "$HELM" "$TAG" || exit 1
webhook_endpoints() {
  [[ $(k -n "$SYSTEM_NS" get endpointslices -l kubernetes.io/service-name=syncmesh-webhook \
    -o jsonpath='{range .items[*].endpoints[*]}{.conditions.ready}{"\n"}{end}' | grep -c true) -eq 2 ]]
}
check "the webhook Service has both operator pods as ready endpoints" eventually 60 webhook_endpoints

# ------------------------------------------------------------------ 2. a database and two services
t_apply=$SECONDS
check "the SyncedDatabase and two labelled Deployments apply" demo_deploy "$KUBECTL" "$TAG"
all_ready() { [[ $(demo_ready_pods "$KUBECTL") -eq $1 ]]; }
check "four pods of two services run and are ready" eventually 180 all_ready 4
PODS_READY_SECONDS=$((SECONDS - t_apply))
pod_ips() { demo_pod_ips "$KUBECTL" "$1"; }
mapfile -t A_IPS < <(pod_ips svc-a)
mapfile -t B_IPS < <(pod_ips svc-b)
ALL_IPS=("${A_IPS[@]}" "${B_IPS[@]}")
sidecars() {
  local out
  out=$(k -n "$NS" get pods -l syncmesh.io/database=orders -o jsonpath='{range .items[*]}{.spec.initContainers[*].name}/{.spec.initContainers[0].restartPolicy}/{.status.initContainerStatuses[0].ready}{"\n"}{end}')
  echo "$out"; [[ $(grep -cx 'syncmesh-replica/Always/true' <<<"$out") -eq 4 ]]
}
check "every pod runs the replica as a ready native sidecar" sidecars
api() { curl -sf --max-time "${TIMEOUT:-5}" "$@"; }
started_after_replica() {
  local ip out ok=0
  for ip in "${ALL_IPS[@]}"; do
    out=$(api "http://$ip:8080/startup"); echo "$ip: $out"
    [[ "$out" == replica_ready_at_start=true* ]] && ok=$((ok + 1))
  done
  [[ $ok -eq 4 ]]
}
check "each application container started only after its replica was ready" started_after_replica
mesh_formed() {
  [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.status.members.injected}/{.status.members.ready} {.status.conditions[?(@.type=="MeshFormed")].reason}')" == "4/4 AllConnected" ]]
}
check "the SyncedDatabase reports 4 members, 4 ready, mesh formed (all connected)" eventually 60 mesh_formed

# ------------------------------------------------------------------ 3. sharing data
# read_everywhere KEY VALUE SECONDS: every pod's service reads VALUE for KEY within the bound.
read_everywhere() {
  local key=$1 want=$2 limit=$3 deadline ip pending
  deadline=$(($(date +%s%N) + limit * 1000000000))
  while :; do
    pending=0
    for ip in "${ALL_IPS[@]}"; do [[ "$(api "http://$ip:8080/kv/$key")" == "$want" ]] || pending=$((pending + 1)); done
    (( pending == 0 )) && return 0
    (( $(date +%s%N) < deadline )) || { echo "$pending pods do not read $key=$want"; return 1; }
    sleep 0.02
  done
}
t_write=$(date +%s%N)
api -X PUT --data "blue" "http://${A_IPS[0]}:8080/kv/color" >/dev/null
check "a write through one pod is read through every other pod within 5 s" read_everywhere color blue 5
REPLICATION_MS=$((($(date +%s%N) - t_write) / 1000000))

PER_POD=25
for ip in "${ALL_IPS[@]}"; do
  ( for _ in $(seq 1 $PER_POD); do api -X POST "http://$ip:8080/incr/visits" >/dev/null || echo lost; done ) >"$WORK/incr-$ip" &
done
wait
all_acked() { [[ $(cat "$WORK"/incr-* | grep -c lost) -eq 0 ]]; }
check "$((4 * PER_POD)) concurrent increments through four pods are all acknowledged" all_acked
check "the counter ends at their sum on every pod" read_everywhere visits $((4 * PER_POD)) 10

for ip in "${A_IPS[1]}" "${B_IPS[@]}"; do
  TIMEOUT=20 api "http://$ip:8080/subscribe/news?timeout=15" >"$WORK/sub-$ip" &
  BG_PIDS+=($!)
done
sleep 1
api -X POST --data "sale starts" "http://${A_IPS[0]}:8080/publish/news" >/dev/null
delivered() { local ip; for ip in "${A_IPS[1]}" "${B_IPS[@]}"; do [[ "$(cat "$WORK/sub-$ip")" == "sale starts" ]] || return 1; done; }
check "a PUBLISH in one pod reaches subscribers in the others" eventually 15 delivered

TIMEOUT=25 api "http://${A_IPS[0]}:8080/pop/jobs?timeout=20" >"$WORK/pop" &
POP_PID=$!
sleep 1
api -X POST --data "ship order 42" "http://${B_IPS[0]}:8080/push/jobs" >/dev/null
wait "$POP_PID"
popped() { [[ "$(cat "$WORK/pop")" == "ship order 42" ]]; }
check "a BRPOP in svc-a receives the element svc-b pushed" popped

# ------------------------------------------------------------------ 4. pods come and go
for i in $(seq 1 20); do api -X PUT --data "v$i" "http://${A_IPS[0]}:8080/kv/acked-$i" >/dev/null; done
acked_by_peers=$(api "http://${A_IPS[0]}:8080/wait?replicas=3&timeout=5000")
check "WAIT 3 confirms the other members applied the writes ($acked_by_peers)" test "${acked_by_peers:-0}" -ge 3
VICTIM=$(k -n "$NS" get pods -l app=svc-a -o jsonpath="{.items[?(@.status.podIP==\"${A_IPS[0]}\")].metadata.name}")
t_delete=$SECONDS
k -n "$NS" delete pod "$VICTIM" --wait=false >/dev/null
replaced() { all_ready 4 && [[ $(pod_ips svc-a | grep -vcx "${A_IPS[0]}") -eq 2 ]]; }
check "a deleted pod is replaced" eventually 120 replaced
REPLACE_SECONDS=$((SECONDS - t_delete))
NEW_A=$(pod_ips svc-a | grep -vx "${A_IPS[1]}" | head -n1)
bootstrapped() {
  local out; out=$(api "http://$NEW_A:8080/startup"); echo "$out"
  [[ "$out" =~ replica_ready_at_start=true\ keys_at_start=([0-9]+) ]] && (( BASH_REMATCH[1] >= 22 ))
}
check "its replacement bootstrapped from the mesh before its application started" bootstrapped
mapfile -t A_IPS < <(pod_ips svc-a)
ALL_IPS=("${A_IPS[@]}" "${B_IPS[@]}")
nothing_lost() {
  local i; for i in $(seq 1 20); do read_everywhere "acked-$i" "v$i" 5 || return 1; done
  read_everywhere visits $((4 * PER_POD)) 5
}
check "nothing acknowledged is lost" nothing_lost

# Durable replicas keep the data while every application pod is gone.
# A hostPath volume in the instance's state directory (removed by `cluster.sh down`).
PV_DIR="$(dirname "$KUBECONFIG")/pv-durable-0"
mkdir -p "$PV_DIR" && chmod 0777 "$PV_DIR"
k apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: syncmesh-e2e-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: syncmesh-e2e-durable-0}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: syncmesh-e2e-local
  hostPath: {path: $PV_DIR, type: Directory}
EOF
k -n "$NS" patch sdb orders --type merge \
  -p '{"spec":{"persistence":{"durableReplicas":1,"size":"100Mi","storageClassName":"syncmesh-e2e-local"}}}' >/dev/null
durable_ready() { [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.status.members.durableReady} {.status.conditions[?(@.type=="Ready")].status}')" == "1 True" ]]; }
check "persistence.durableReplicas: 1 runs a durable replica on a volume" eventually 120 durable_ready
api -X PUT --data "kept" "http://${B_IPS[0]}:8080/kv/survivor" >/dev/null
durable_has_it() { [[ "$(api "http://${B_IPS[0]}:8080/wait?replicas=4&timeout=2000")" -ge 4 ]]; }
check "the durable replica applied the latest write (WAIT 4)" eventually 20 durable_has_it
k -n "$NS" scale deployment svc-a svc-b --replicas=0 >/dev/null
no_pods() { [[ -z "$(k -n "$NS" get pods -l syncmesh.io/database=orders -o name)" ]]; }
check "scaling both services to zero removes every application pod" eventually 90 no_pods
# With no other member left, the durable replica restarts from its volume alone (--data-dir).
k -n "$NS" delete pod orders-durable-0 >/dev/null
durable_back() {
  [[ "$(k -n "$NS" get pod orders-durable-0 -o jsonpath='{.metadata.deletionTimestamp}{.status.containerStatuses[0].ready}' 2>/dev/null)" == true ]]
}
check "the durable replica, deleted while it is the only member, restarts from its volume" eventually 90 durable_back
k -n "$NS" scale deployment svc-a svc-b --replicas=2 >/dev/null
check "scaled back to two each, the pods start again" eventually 180 all_ready 4
mapfile -t A_IPS < <(pod_ips svc-a)
mapfile -t B_IPS < <(pod_ips svc-b)
ALL_IPS=("${A_IPS[@]}" "${B_IPS[@]}")
kept() { read_everywhere survivor kept 10 && read_everywhere visits $((4 * PER_POD)) 5 && read_everywhere acked-20 v20 5; }
check "the data outlived the scale to zero and the durable replica's restart" kept

say "time from kubectl apply to 4 ready pods: ${PODS_READY_SECONDS}s; write visible on all pods: ${REPLICATION_MS} ms; deleted pod replaced and ready: ${REPLACE_SECONDS}s"

# ------------------------------------------------------------------ 5. nothing left behind
k -n "$NS" delete deployment svc-a svc-b >/dev/null
k -n "$NS" delete sdb orders >/dev/null
uninstall() { "$HELM" uninstall syncmesh --namespace "$SYSTEM_NS" --wait --timeout 120s; }
check "helm uninstall" uninstall
leftovers() {
  local out
  out=$(k -n "$NS" get pods,statefulsets,pvc,services,secrets,poddisruptionbudgets -o name 2>/dev/null
    k -n "$SYSTEM_NS" get all,secrets,leases -o name 2>/dev/null
    k get mutatingwebhookconfigurations -o name | grep syncmesh)
  echo "$out"; [[ -z "$out" ]]
}
check "deleting the SyncedDatabase and helm uninstall leave nothing behind" eventually 90 leftovers
# The test's own volume (not the product's): released once the StatefulSet's claim went.
k delete pv/syncmesh-e2e-durable-0 storageclass/syncmesh-e2e-local >/dev/null 2>&1 || true
