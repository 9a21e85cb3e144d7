#!/usr/bin/env bash
# The operator against a real control plane (tests/k8s/cluster.sh): CRD validation, the Helm
# chart, reconciliation, the injection webhook called over TLS by kube-apiserver, leader
# election, restarts and cleanup. The operator runs as a local process (there is no kubelet);
# the chart is installed with webhook.url pointing the API server at it on loopback.
#
#   bash tests/k8s/operator.sh
#
# Ends with "N passed, M failed" and the measured figures; exits non-zero if a check failed.
# Environment: OPERATOR_TEST_NAME (instance name), SYNCMESH_OPERATOR_BIN (the binary; built
# with cargo when unset), plus everything cluster.sh reads.
# No `set -e`: a failed check is counted and the test goes on; setup failures exit explicitly.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER="$HERE/cluster.sh"
NAME=${OPERATOR_TEST_NAME:-operator-$$}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-operator.XXXXXX")
STARTED_AT=$SECONDS
RELEASE=syncmesh
SYSTEM_NS=syncmesh-system
OPERATOR_PIDS=()

TEST_TAG=operator
# shellcheck source=tests/k8s/testlib.sh
source "$HERE/testlib.sh"

cleanup() {
  local rc=$?
  set +e
  for pid in "${OPERATOR_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  if (( FAILED > 0 || rc != 0 )); then
    for f in "$WORK"/operator-*.log; do
      [[ -f "$f" ]] || continue
      echo "---- $f: last warnings and errors"; grep -E 'WARN|ERROR' "$f" | tail -n 10 | cut -c1-400
      echo "---- $f: last lines"; tail -n 10 "$f" | cut -c1-400
    done
  fi
  "$CLUSTER" --name "$NAME" down 2>&1 | sed 's/^/    /'
  rm -rf "$WORK"
  finish "$rc"
}
on_exit cleanup

free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22000))
    (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# ------------------------------------------------------------------ build and bring up
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
OPERATOR_BIN=${SYNCMESH_OPERATOR_BIN:-}
if [[ -z "$OPERATOR_BIN" ]]; then
  say "building syncmesh-operator"
  (cd "$ROOT" && cargo build --quiet -p syncmesh-operator --bin syncmesh-operator)
  OPERATOR_BIN="$CARGO_TARGET_DIR/debug/syncmesh-operator"
fi
say "bringing up control plane '$NAME'"
ENV_OUT=$("$CLUSTER" --name "$NAME" up) || { fail "cluster.sh up"; exit 1; }
eval "$ENV_OUT"
KUBECTL=$SYNCMESH_K8S_BIN/kubectl
HELM=$SYNCMESH_K8S_BIN/helm
k() { "$KUBECTL" "$@"; }

# ------------------------------------------------------------------ CRD
crd_applies() {
  k apply --server-side -f "$ROOT/crds/" &&
    k wait --for=condition=Established --timeout=30s crd/synceddatabases.syncmesh.io
}
check "kubectl apply --server-side -f crds/ establishes the SyncedDatabase CRD" crd_applies

NS=$("$CLUSTER" --name "$NAME" ns shop) || { fail "cluster.sh ns"; exit 1; }
# refused NAME EXPECTED-MESSAGE SPEC-YAML: the API server must refuse the object with that message.
refused() {
  local name=$1 expected=$2 spec=$3 out
  if out=$(printf 'apiVersion: syncmesh.io/v1alpha1\nkind: SyncedDatabase\nmetadata: {name: %s}\nspec:\n%s\n' \
    "$name" "$spec" | k -n "$NS" apply --server-side -f - 2>&1); then
    echo "accepted: $out"; return 1
  fi
  echo "$out"
  grep -qF -- "$expected" <<<"$out"
}
check "refused: durable replicas without a volume size" \
  refused bad-size "persistence.size is required when persistence.durableReplicas is greater than 0" \
  "  persistence: {durableReplicas: 2}"
check "refused: a mesh port out of range" \
  refused bad-port "spec.mesh.port: Invalid value: 70000: spec.mesh.port in body should be less than or equal to 65535" \
  "  mesh: {port: 70000}"
check "refused: maxMemory that is not a quantity" \
  refused bad-mem "maxMemory must be a positive quantity such as 256Mi or 1Gi" "  replica: {maxMemory: lots}"
check "refused: an unknown TLS mode" \
  refused bad-tls 'spec.mesh.tls.mode: Unsupported value: "Manual": supported values: "Auto", "CertManager"' \
  "  mesh: {tls: {mode: Manual}}"
check "refused: CertManager without a Secret" \
  refused bad-cm "mesh.tls.secretName is required when mesh.tls.mode is CertManager" "  mesh: {tls: {mode: CertManager}}"
check "refused: auth without the Secret's name" \
  refused bad-auth "spec.auth.secretRef.name: Required value" "  auth: {secretRef: {key: pw}}"
check "refused: an unknown appendfsync policy" \
  refused bad-fsync 'Unsupported value: "sometimes"' "  persistence: {appendfsync: sometimes}"
explain() { k explain sdb.spec.persistence.durableReplicas | grep -q "keep the data when every application pod is gone"; }
check "kubectl explain shows the field documentation" eventually 20 explain || true

# A pod that opts in before the webhook exists: it runs without a replica, and the status says so.
k -n "$NS" run legacy --image=shop/legacy:1 --labels=syncmesh.io/database=orders,app=legacy >/dev/null

# ------------------------------------------------------------------ Helm chart
WEBHOOK_PORT=$(free_port)
ADMIN_PORT=$(free_port)
CHART_ARGS=(--namespace "$SYSTEM_NS" --set "webhook.url=https://127.0.0.1:$WEBHOOK_PORT/mutate-pods"
  --set "webhook.extraNames={127.0.0.1}")
check "helm lint is clean" "$HELM" lint --strict "$ROOT/charts/syncmesh"
bad_values() {
  local out
  if out=$("$HELM" template t "$ROOT/charts/syncmesh" --set webhook.failurePolicy=Sometimes 2>&1); then echo "rendered"; return 1; fi
  echo "$out"; grep -q "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'" <<<"$out"
}
check "the chart's values schema refuses a bad value with a clear message" bad_values
dry_run() {
  k create namespace "$SYSTEM_NS" --dry-run=client -o yaml | k apply -f - >/dev/null
  "$HELM" template "$RELEASE" "$ROOT/charts/syncmesh" "${CHART_ARGS[@]}" | k apply --dry-run=server -f -
}
check "helm template | kubectl apply --dry-run=server is accepted" dry_run
check "helm install" "$HELM" install "$RELEASE" "$ROOT/charts/syncmesh" "${CHART_ARGS[@]}" --wait=false
installed() {
  k -n "$SYSTEM_NS" get deployment/syncmesh serviceaccount/syncmesh service/syncmesh-webhook pdb/syncmesh &&
    k -n "$SYSTEM_NS" get secret/syncmesh-webhook-tls lease/syncmesh &&
    k get mutatingwebhookconfiguration/syncmesh-injector clusterrole/syncmesh clusterrolebinding/syncmesh
}
check "the chart created the operator's Deployment, RBAC, Service, webhook configuration, Secret and Lease" installed

# ------------------------------------------------------------------ the operator
# start_operator ID: runs an instance as the chart configures it, on its own ports.
start_operator() {
  local id=$1 admin=$2 webhook=$3
  SYNCMESH_OPERATOR_NAMESPACE=$SYSTEM_NS SYNCMESH_OPERATOR_IDENTITY=$id \
    SYNCMESH_OPERATOR_ADMIN_ADDR=127.0.0.1:$admin SYNCMESH_OPERATOR_WEBHOOK_ADDR=127.0.0.1:$webhook \
    SYNCMESH_OPERATOR_WEBHOOK_SERVICE=syncmesh-webhook SYNCMESH_OPERATOR_WEBHOOK_SECRET=syncmesh-webhook-tls \
    SYNCMESH_OPERATOR_WEBHOOK_CONFIGURATION=syncmesh-injector SYNCMESH_OPERATOR_WEBHOOK_EXTRA_SAN=127.0.0.1 \
    SYNCMESH_OPERATOR_LEASE_NAME=syncmesh SYNCMESH_OPERATOR_LEASE_SECONDS=4 SYNCMESH_OPERATOR_CERT_REFRESH_SECONDS=2 \
    SYNCMESH_OPERATOR_CREATE_MISSING=false \
    SYNCMESH_OPERATOR_REPLICA_IMAGE=syncmesh/syncmesh-replica:test SYNCMESH_OPERATOR_LOG=info,kube=warn \
    "$OPERATOR_BIN" >>"$WORK/operator-$id.log" 2>&1 &
  OPERATOR_PIDS+=($!)
  echo $!
}
admin_get() { curl -sf --max-time 2 "http://127.0.0.1:$1$2"; }
leading() { admin_get "$1" /metrics | grep -qx 'syncmesh_operator_leader 1'; }
OP1=$(start_operator op-1 "$ADMIN_PORT" "$WEBHOOK_PORT")
check "the operator becomes ready (webhook certificate issued, cache synced)" eventually 30 admin_get "$ADMIN_PORT" /readyz
check "it takes the leader Lease" eventually 20 leading "$ADMIN_PORT"
ca_bundle() {
  local bundle
  bundle=$(k get mutatingwebhookconfiguration syncmesh-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  [[ -n "$bundle" ]] && base64 -d <<<"$bundle" | openssl x509 -noout -subject | grep -q syncmesh-webhook-ca
}
check "it sets the webhook's caBundle to its CA" eventually 20 ca_bundle
serving_cert() {
  echo | openssl s_client -connect "127.0.0.1:$WEBHOOK_PORT" -servername syncmesh-webhook.$SYSTEM_NS.svc 2>/dev/null |
    openssl x509 -noout -ext subjectAltName | grep -q "DNS:syncmesh-webhook.$SYSTEM_NS.svc.*IP Address:127.0.0.1"
}
check "the webhook serves a certificate for its Service name (and 127.0.0.1)" serving_cert

upgrade_keeps_bundle() {
  local before after
  before=$(k get mutatingwebhookconfiguration syncmesh-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  "$HELM" upgrade "$RELEASE" "$ROOT/charts/syncmesh" "${CHART_ARGS[@]}" --set operator.logLevel=debug >/dev/null || return 1
  after=$(k get mutatingwebhookconfiguration syncmesh-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  [[ -n "$before" && "$before" == "$after" ]] &&
    [[ -n "$(k -n "$SYSTEM_NS" get secret syncmesh-webhook-tls -o jsonpath='{.data.tls\.crt}')" ]]
}
check "helm upgrade keeps the caBundle and certificate the operator set" upgrade_keeps_bundle

# ------------------------------------------------------------------ a SyncedDatabase to Ready
t0=$(date +%s.%N)
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: syncmesh.io/v1alpha1
kind: SyncedDatabase
metadata: {name: orders}
spec:
  replica: {maxMemory: 256Mi}
EOF
k -n "$NS" wait --for=condition=Ready --timeout=60s sdb/orders >/dev/null || true
t1=$(date +%s.%N)
READY_SECONDS=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
is_ready() { [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
check "SyncedDatabase orders is Ready (${READY_SECONDS}s after kubectl apply)" is_ready
mesh_service() {
  local out
  out=$(k -n "$NS" get service orders-mesh -o jsonpath='{.spec.clusterIP} {.spec.publishNotReadyAddresses} {.spec.selector.syncmesh\.io/member} {.spec.ports[0].port} {.metadata.ownerReferences[0].kind}')
  echo "$out"; [[ "$out" == "None true orders 7379 SyncedDatabase" ]]
}
check "it owns the headless mesh Service (publishNotReadyAddresses)" mesh_service
mesh_certs() {
  local dir="$WORK/mesh"; mkdir -p "$dir"
  k -n "$NS" get secret orders-mesh-tls -o jsonpath='{.data.ca\.crt}' | base64 -d >"$dir/ca.crt"
  k -n "$NS" get secret orders-mesh-tls -o jsonpath='{.data.tls\.crt}' | base64 -d >"$dir/tls.crt"
  k -n "$NS" get secret orders-mesh-ca -o jsonpath='{.metadata.ownerReferences[0].kind}' | grep -qx SyncedDatabase &&
    openssl verify -CAfile "$dir/ca.crt" "$dir/tls.crt" &&
    openssl x509 -in "$dir/tls.crt" -noout -ext extendedKeyUsage | grep -q "TLS Web Server Authentication, TLS Web Client Authentication"
}
check "it issues the mesh CA and a member certificate that chains to it" mesh_certs
status_fields() {
  local out
  out=$(k -n "$NS" get sdb orders -o jsonpath='{.status.meshService} {.status.observedGeneration} {.metadata.finalizers[0]}')
  echo "$out"; [[ "$out" == "orders-mesh 1 syncmesh.io/cleanup" ]]
}
check "status names the mesh Service and observedGeneration; the finalizer is set" status_fields
uninjected() {
  k -n "$NS" get sdb orders -o jsonpath='{.status.uninjectedPods} {.status.conditions[?(@.type=="Degraded")].reason}' |
    grep -q '\["legacy"\] UninjectedPods'
}
check "a pod labelled before the webhook existed is reported (Degraded: UninjectedPods)" eventually 20 uninjected
printer_columns() {
  local out; out=$(k -n "$NS" get sdb); echo "$out"
  head -n1 <<<"$out" | grep -qE '^NAME +MEMBERS +READY +CONDITION +AGE$' && grep -qE '^orders +0 +0 +Reconciled' <<<"$out"
}
check "kubectl get sdb shows members, ready, condition and age" printer_columns
events() {
  local out; out=$(k -n "$NS" get events --field-selector involvedObject.name=orders -o jsonpath='{range .items[*]}{.reason}{" "}{end}')
  echo "$out"; [[ "$out" == *CAIssued* && "$out" == *CertificateIssued* && "$out" == *Ready* && "$out" == *UninjectedPods* ]]
}
check "Events say what it did and why" eventually 10 events

# ------------------------------------------------------------------ injection
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout}
spec:
  replicas: 2
  selector: {matchLabels: {app: checkout}}
  template:
    metadata:
      labels: {app: checkout, syncmesh.io/database: orders}
    spec:
      initContainers:
      - {name: migrate, image: shop/migrate:1}
      containers:
      - {name: app, image: shop/checkout:1}
      - name: worker
        image: shop/worker:1
        env: [{name: REDIS_URL, value: "redis://elsewhere:6379"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalog}
spec:
  replicas: 2
  selector: {matchLabels: {app: catalog}}
  template:
    metadata:
      labels: {app: catalog}
    spec:
      containers:
      - {name: app, image: shop/catalog:1}
EOF
two_pods() { [[ $(k -n "$NS" get pods -l "app=$1" -o name | wc -l) -eq 2 ]]; }
check "the labelled Deployment's ReplicaSet creates its pods through the webhook" eventually 30 two_pods checkout
injected() {
  local out
  out=$(k -n "$NS" get pods -l app=checkout -o jsonpath='{range .items[*]}{.spec.initContainers[*].name}|{.spec.initContainers[0].restartPolicy}|{.spec.initContainers[0].startupProbe.httpGet.path}|{.spec.containers[0].env[?(@.name=="REDIS_URL")].value}|{.spec.containers[1].env[?(@.name=="REDIS_URL")].value}|{.metadata.labels.syncmesh\.io/member}{"\n"}{end}')
  echo "$out"
  [[ $(grep -cx 'syncmesh-replica migrate|Always|/readyz|redis://127.0.0.1:6379|redis://elsewhere:6379|orders' <<<"$out") -eq 2 ]]
}
check "its pods carry the replica once, as a native sidecar first, and REDIS_URL (their own kept)" injected
sidecar_settings() {
  local out
  out=$(k -n "$NS" get pods -l app=checkout -o jsonpath='{.items[0].spec.initContainers[0].image} {.items[0].spec.initContainers[0].env[?(@.name=="SYNCMESH_PEERS_DNS")].value} {.items[0].spec.initContainers[0].env[?(@.name=="SYNCMESH_MAXMEMORY")].value} {.items[0].spec.initContainers[0].securityContext.readOnlyRootFilesystem} {.items[0].spec.volumes[*].name}')
  echo "$out"
  [[ "$out" == "syncmesh/syncmesh-replica:test orders-mesh.$NS.svc 268435456 true "*syncmesh-tls\ syncmesh-data* ]]
}
check "the sidecar gets the image, mesh DNS, maxMemory, restricted security context and volumes" sidecar_settings
untouched() {
  local out
  out=$(k -n "$NS" get pods -l app=catalog -o jsonpath='{range .items[*]}{.spec.initContainers}{.metadata.annotations.syncmesh\.io/injected}{.spec.containers[0].env}{"\n"}{end}')
  [[ -z "${out//$'\n'/}" ]]
}
check "an unlabelled Deployment's pods are untouched" eventually 30 untouched
# pod_refused POD DATABASE MESSAGE: a pod labelled for DATABASE is refused with MESSAGE.
pod_refused() {
  local out
  if out=$(k -n "$NS" run "$1" --image=x:1 --labels="syncmesh.io/database=$2" 2>&1); then echo "admitted: $out"; return 1; fi
  echo "$out"; grep -qF -- "$3" <<<"$out"
}
check "a pod naming an unknown database is refused with a clear message" \
  pod_refused stray nope "SyncedDatabase \"nope\" does not exist in namespace \"$NS\""
members_counted() {
  [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.status.members.injected}/{.status.members.ready} {.status.conditions[?(@.type=="MeshFormed")].reason}')" == "2/0 NoReadyMembers" ]]
}
check "status counts the injected members (none ready without a kubelet)" eventually 20 members_counted

# ------------------------------------------------------------------ durable replicas
k -n "$NS" patch sdb orders --type merge -p '{"spec":{"persistence":{"durableReplicas":2,"size":"1Gi","appendfsync":"always"}}}' >/dev/null
durable_on() {
  local out
  out=$(k -n "$NS" get statefulset orders-durable -o jsonpath='{.spec.replicas} {.spec.volumeClaimTemplates[0].spec.resources.requests.storage} {.spec.template.spec.containers[0].env[?(@.name=="SYNCMESH_APPENDFSYNC")].value} {.spec.serviceName}' 2>&1)
  echo "$out"
  [[ "$out" == "2 1Gi always orders-mesh" ]] && k -n "$NS" get pdb orders-durable >/dev/null &&
    [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')" == DurableReplicasNotReady ]]
}
check "durableReplicas: 2 creates the StatefulSet with volumes and its PDB; Ready waits for them" eventually 20 durable_on
k -n "$NS" patch sdb orders --type merge -p '{"spec":{"persistence":{"durableReplicas":0}}}' >/dev/null
durable_off() {
  ! k -n "$NS" get statefulset orders-durable 2>/dev/null && ! k -n "$NS" get pdb orders-durable 2>/dev/null &&
    [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
check "durableReplicas: 0 removes them and Ready returns" eventually 20 durable_off

# ------------------------------------------------------------------ restarts and leader election
snapshot() {
  k -n "$NS" get service/orders-mesh secret/orders-mesh-ca secret/orders-mesh-tls secret/orders-admin \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}'
  k -n "$SYSTEM_NS" get secret syncmesh-webhook-tls -o jsonpath='{.metadata.resourceVersion}'
  k -n "$NS" get sdb orders -o jsonpath=' {.status.conditions[*].lastTransitionTime}'
}
sleep 2
BEFORE=$(snapshot)
ADMIN2=$(free_port)
WEBHOOK2=$(free_port)
OP2=$(start_operator op-2 "$ADMIN2" "$WEBHOOK2")
second_ready() { admin_get "$ADMIN2" /readyz >/dev/null; }
check "a second instance starts and serves the webhook too" eventually 30 second_ready
one_leader() { leading "$ADMIN_PORT" && ! leading "$ADMIN2"; }
check "only one instance leads" one_leader
kill -9 "$OP1"
check "when the leader is killed, the other takes the Lease" eventually 30 leading "$ADMIN2"
sleep 3
AFTER=$(snapshot)
unchanged() { echo "before: $BEFORE"; echo "after:  $AFTER"; [[ "$BEFORE" == "$AFTER" ]]; }
check "the new leader changes nothing that was right (same objects, certificates, conditions)" unchanged
OP3=$(start_operator op-3 "$ADMIN_PORT" "$WEBHOOK_PORT")
check "the killed instance comes back as a follower" eventually 30 admin_get "$ADMIN_PORT" /readyz
kill -TERM "$OP2"
check "a leader stopped with SIGTERM hands over the Lease at once" eventually 10 leading "$ADMIN_PORT"

# ------------------------------------------------------------------ certificate renewal
served_serial() {
  echo | openssl s_client -connect "127.0.0.1:$WEBHOOK_PORT" 2>/dev/null | openssl x509 -noout -serial
}
OLD_SERIAL=$(served_serial)
OLD_BUNDLE=$(k get mutatingwebhookconfiguration syncmesh-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
# Damage the certificates (as an expired or foreign CA would): both are reissued.
GARBAGE=$(printf 'not a certificate' | base64 -w0)
k -n "$SYSTEM_NS" patch secret syncmesh-webhook-tls --type merge \
  -p "{\"data\":{\"ca.crt\":\"$GARBAGE\",\"tls.crt\":\"$GARBAGE\"}}" >/dev/null
rotated() {
  local bundle serial
  bundle=$(k get mutatingwebhookconfiguration syncmesh-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
  serial=$(served_serial)
  [[ -n "$serial" && "$serial" != "$OLD_SERIAL" && -n "$bundle" && "$bundle" != "$OLD_BUNDLE" ]]
}
check "a damaged webhook CA and certificate are reissued, served without a restart, and caBundle follows" eventually 20 rotated
admits_after_rotation() { k -n "$NS" run rotated --image=x:1 --labels=syncmesh.io/database=orders >/dev/null; }
check "the API server trusts the new certificate (a labelled pod is admitted)" eventually 20 admits_after_rotation
OLD_MEMBER=$(k -n "$NS" get secret orders-mesh-tls -o jsonpath='{.metadata.uid}')
k -n "$NS" delete secret orders-mesh-tls >/dev/null
member_back() {
  local uid; uid=$(k -n "$NS" get secret orders-mesh-tls -o jsonpath='{.metadata.uid}' 2>/dev/null)
  [[ -n "$uid" && "$uid" != "$OLD_MEMBER" ]]
}
check "a deleted member certificate Secret is reissued by the reconciler" eventually 20 member_back

# ------------------------------------------------------------------ admission latency
for i in $(seq 1 40); do
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: latency-%s, labels: {syncmesh.io/database: orders}}\nspec: {containers: [{name: app, image: x:1}]}\n---\n' "$i"
done | k -n "$NS" apply -f - >/dev/null
OPERATOR_Q3=$(admin_get "$ADMIN_PORT" /metrics | python3 "$HERE/testdata/quantiles.py" syncmesh_operator_admission_duration_seconds || true)
APISERVER_Q=$(k get --raw /metrics | python3 "$HERE/testdata/quantiles.py" apiserver_admission_webhook_admission_duration_seconds \
  name=inject.pods.syncmesh.io operation=CREATE || true)
latency_measured() { echo "$OPERATOR_Q3 / $APISERVER_Q"; [[ "$OPERATOR_Q3" == count=* && "$APISERVER_Q" == count=* ]]; }
check "admission latency measured on the webhook and on the API server" latency_measured
metrics() {
  admin_get "$ADMIN_PORT" /metrics | grep -E '^syncmesh_operator_(reconciles_total\{result="ok"\}|admissions_total\{outcome="injected"\}) [1-9]'
}
check "metrics count reconciles and injections" eventually 20 metrics

# ------------------------------------------------------------------ deletion
# A second finalizer holds the object in "being deleted" so that state can be observed.
k -n "$NS" patch sdb orders --type json -p '[{"op":"add","path":"/metadata/finalizers/-","value":"test.syncmesh.io/hold"}]' >/dev/null
k -n "$NS" delete sdb orders --wait=false >/dev/null
cleaned_up() {
  k -n "$NS" get sdb orders >/dev/null && ! k -n "$NS" get service orders-mesh 2>/dev/null &&
    ! k -n "$NS" get secret orders-mesh-ca 2>/dev/null && ! k -n "$NS" get secret orders-mesh-tls 2>/dev/null && ! k -n "$NS" get secret orders-admin 2>/dev/null &&
    [[ "$(k -n "$NS" get sdb orders -o jsonpath='{.metadata.finalizers}')" == '["test.syncmesh.io/hold"]' ]]
}
check "on deletion the finalizer removes the Service and Secrets, then itself" eventually 30 cleaned_up
check "a pod for a database being deleted is refused" \
  pod_refused late orders "SyncedDatabase \"orders\" in namespace \"$NS\" is being deleted; new pods cannot join it"
k -n "$NS" patch sdb orders --type json -p '[{"op":"remove","path":"/metadata/finalizers/0"}]' >/dev/null
gone() {
  ! k -n "$NS" get sdb orders 2>/dev/null && ! k -n "$NS" get service orders-mesh 2>/dev/null &&
    ! k -n "$NS" get secret orders-mesh-ca 2>/dev/null && ! k -n "$NS" get secret orders-mesh-tls 2>/dev/null
}
check "deleting the SyncedDatabase removes it, its Service and its Secrets" eventually 30 gone
check "pods can no longer join it" pod_refused late orders 'SyncedDatabase "orders" does not exist'
check "helm uninstall" "$HELM" uninstall "$RELEASE" --namespace "$SYSTEM_NS" --wait
nothing_left() {
  local out
  out=$(k get mutatingwebhookconfiguration,clusterrole,clusterrolebinding -o name | grep syncmesh; k -n "$SYSTEM_NS" get deploy,svc,sa,pdb,role,rolebinding,lease,secret -o name 2>/dev/null | grep -v '^serviceaccount/default$')
  echo "$out"; [[ -z "$out" ]]
}
check "helm uninstall leaves nothing behind (the operator's Secret and Lease included)" eventually 20 nothing_left

say "time from kubectl apply to Ready: ${READY_SECONDS}s"
say "admission latency, webhook's own timing (instance op-3): $OPERATOR_Q3"
say "admission latency, API server's view (webhook call incl. TLS): $APISERVER_Q"
