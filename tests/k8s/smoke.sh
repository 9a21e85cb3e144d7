#!/usr/bin/env bash
# Smoke test of the local control plane (tests/k8s/cluster.sh): brings up its own
# instance, exercises it with kubectl (and helm), and always takes it down on exit.
# Ends with "N passed, M failed"; exits non-zero if any check failed.
#
#   bash tests/k8s/smoke.sh
#
# Environment: SMOKE_NAME (instance name, default smoke-<pid>), plus everything
# cluster.sh reads (SYNCMESH_CACHE, SYNCMESH_K8S_STATE, ...).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER="$HERE/cluster.sh"
NAME=${SMOKE_NAME:-smoke-$$}
NAME2="$NAME-b"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-smoke.XXXXXX")
WEBHOOK_PID=""
STARTED_AT=$SECONDS

TEST_TAG=smoke
# shellcheck source=tests/k8s/testlib.sh
source "$HERE/testlib.sh"

cleanup() {
  local rc=$?
  set +e
  [[ -n "$WEBHOOK_PID" ]] && kill "$WEBHOOK_PID" 2>/dev/null
  if (( FAILED > 0 || rc != 0 )); then
    local st
    st=$("$CLUSTER" --name "$NAME" status 2>/dev/null | sed -n 's/^state: *//p')
    for f in "$st"/logs/*.log "$WORK/webhook.log"; do
      [[ -f "$f" ]] || continue
      echo "---- $f: last errors"; grep -E '^[EF][0-9]{4} |"level":"(error|fatal)"' "$f" | tail -n 8 | cut -c1-300
      echo "---- $f: last lines"; tail -n 8 "$f" | cut -c1-300
    done
  fi
  "$CLUSTER" --name "$NAME2" down >/dev/null 2>&1
  "$CLUSTER" --name "$NAME" down 2>&1 | sed 's/^/    /'
  rm -rf "$WORK"
  finish "$rc"
}
on_exit cleanup

# ------------------------------------------------------------------ up
say "bringing up control plane '$NAME' (builds binaries on first use)"
t0=$SECONDS
if ! ENV_OUT=$("$CLUSTER" --name "$NAME" up); then
  fail "cluster.sh up"; exit 1
fi
eval "$ENV_OUT"
pass "cluster.sh up ($((SECONDS - t0))s) printed $(head -n1 <<<"$ENV_OUT")"
KUBECTL=${KUBECTL:-$SYNCMESH_K8S_BIN/kubectl}
HELM=$SYNCMESH_K8S_BIN/helm
k() { "$KUBECTL" "$@"; }

env_same() { [[ "$("$CLUSTER" --name "$NAME" env | head -n1)" == "export KUBECONFIG=$KUBECONFIG" ]]; }
check "cluster.sh env prints the same KUBECONFIG" env_same
WANT_VERSION="$(k version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n1)"
server_version() {
  local got
  got=$(k version -o json | sed -n '/"serverVersion"/,/}/s/.*"gitVersion": *"\([^"]*\)".*/\1/p')
  echo "server reports '$got'"
  [[ "$got" == "$WANT_VERSION" ]]
}
check "server version is $WANT_VERSION" server_version
readyz() { [[ "$(k get --raw /readyz)" == ok ]]; }
check "/readyz is ok" readyz
APISERVER_LOG="$(dirname "$KUBECONFIG")/logs/kube-apiserver.log"
admission_chain() {
  grep -q "mutating admission controller.*ServiceAccount.*MutatingAdmissionWebhook" "$APISERVER_LOG" &&
    grep -q "validating admission controller.*ValidatingAdmissionPolicy,ValidatingAdmissionWebhook" "$APISERVER_LOG"
}
check "admission chain includes ServiceAccount, webhooks and admission policies" admission_chain
rbac_denies() { [[ "$(k auth can-i create pods --as=system:serviceaccount:default:default)" == no ]]; }
check "RBAC denies an unprivileged service account" rbac_denies || true

# ------------------------------------------------------------------ namespace
if ! NS=$("$CLUSTER" --name "$NAME" ns smoke) || [[ -z "$NS" ]]; then fail "cluster.sh ns"; exit 1; fi
NS_OTHER=$("$CLUSTER" --name "$NAME" ns smoke)
two_namespaces() { [[ "$NS" != "$NS_OTHER" ]] && k get ns "$NS" "$NS_OTHER"; }
check "cluster.sh ns gives distinct namespaces ($NS, $NS_OTHER)" two_namespaces
sa_exists() { k -n "$NS" get serviceaccount default >/dev/null 2>&1; }
check "controller-manager creates the default ServiceAccount in $NS" eventually 30 sa_exists || true

# ------------------------------------------------------------------ mutating webhook (URL on loopback)
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/ca.key" -subj "/CN=smoke-webhook-ca" -days 1 -out "$WORK/ca.crt" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/wh.key" 2>/dev/null
openssl req -new -key "$WORK/wh.key" -subj "/CN=127.0.0.1" -out "$WORK/wh.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$WORK/wh.ext"
openssl x509 -req -in "$WORK/wh.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial -days 1 \
  -extfile "$WORK/wh.ext" -out "$WORK/wh.crt" 2>/dev/null
python3 "$HERE/testdata/mutating-webhook.py" "$WORK/wh.crt" "$WORK/wh.key" > "$WORK/webhook.port" 2> "$WORK/webhook.log" &
WEBHOOK_PID=$!
webhook_listening() { [[ -s "$WORK/webhook.port" ]]; }
if eventually 10 webhook_listening; then
  WH_PORT=$(cat "$WORK/webhook.port")
  k apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: smoke-$NS
webhooks:
- name: smoke.syncmesh.io
  clientConfig:
    url: https://127.0.0.1:$WH_PORT/mutate
    caBundle: $(base64 -w0 < "$WORK/ca.crt")
  rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods]
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: $NS}
  objectSelector:
    matchLabels: {smoke.syncmesh.io/inject: "true"}
  sideEffects: None
  admissionReviewVersions: [v1]
  failurePolicy: Fail
  timeoutSeconds: 5
EOF
  pass "mutating webhook served on 127.0.0.1:$WH_PORT and registered"
else
  fail "mutating webhook did not start" "$(cat "$WORK/webhook.log")"
fi

# ------------------------------------------------------------------ Deployment -> ReplicaSet -> Pods
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, smoke.syncmesh.io/inject: "true"}
    spec:
      containers:
      - name: web
        image: registry.invalid/web:1
EOF
rs_ready() { [[ "$(k -n "$NS" get rs -l app=web -o jsonpath='{.items[0].metadata.ownerReferences[0].name}' 2>/dev/null)" == web ]]; }
check "Deployment creates its ReplicaSet" eventually 30 rs_ready || true
pods_count() { [[ "$(k -n "$NS" get pods -l app=web -o name 2>/dev/null | wc -l)" -eq 2 ]]; }
check "ReplicaSet creates 2 Pods (Pending without a kubelet)" eventually 30 pods_count || true
pods_mutated() {
  local out
  out=$(k -n "$NS" get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.labels.smoke\.syncmesh\.io/mutated} {.metadata.annotations.smoke\.syncmesh\.io/created-by} {.status.phase}{"\n"}{end}')
  echo "$out"
  [[ $(grep -c "^true system:serviceaccount:kube-system:replicaset-controller Pending$" <<<"$out") -eq 2 ]]
}
check "Pods were mutated by the webhook, created by the ReplicaSet controller" pods_mutated || true
token_volume() {
  k -n "$NS" get pods -l app=web -o jsonpath='{.items[0].spec.volumes[0].projected.sources[0].serviceAccountToken.path}' | grep -qx token
}
check "ServiceAccount admission mounted the projected token volume" token_volume || true

# ------------------------------------------------------------------ ValidatingAdmissionPolicy
k apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: smoke-max-replicas-$NS
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
  - expression: "object.spec.replicas <= 5"
    message: "smoke: at most 5 replicas"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: smoke-max-replicas-$NS
spec:
  policyName: smoke-max-replicas-$NS
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: $NS}
EOF
vap_denies() {
  local out
  if out=$(k -n "$NS" create deployment too-big --image=registry.invalid/x:1 --replicas=9 2>&1); then
    k -n "$NS" delete deployment too-big --wait=false >/dev/null 2>&1; return 1
  fi
  grep -q "smoke: at most 5 replicas" <<<"$out"
}
check "ValidatingAdmissionPolicy denies a Deployment with 9 replicas" eventually 30 vap_denies || true

# ------------------------------------------------------------------ server-side apply
cm() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  colour: %s\n' "$1"; }
ssa_create() {
  cm red | k -n "$NS" apply --server-side -f - &&
    k -n "$NS" get cm ssa -o jsonpath='{.metadata.managedFields[0].manager}/{.metadata.managedFields[0].operation}' | grep -qx kubectl/Apply
}
check "kubectl apply --server-side creates an object owned by field manager kubectl" ssa_create || true
ssa_conflict() {
  local out
  if out=$(cm blue | k -n "$NS" apply --server-side --field-manager=other -f - 2>&1); then echo "$out"; return 1; fi
  grep -qi conflict <<<"$out" || { echo "$out"; return 1; }
  cm blue | k -n "$NS" apply --server-side --field-manager=other --force-conflicts -f - >/dev/null &&
    [[ "$(k -n "$NS" get cm ssa -o jsonpath='{.data.colour}')" == blue ]]
}
check "server-side apply detects a field-manager conflict; --force-conflicts takes over" ssa_conflict || true

# ------------------------------------------------------------------ CRDs and kubectl explain
crd_established() { k apply --server-side -f "$1" && k wait --for=condition=Established --timeout=30s "crd/$2"; }
check "CRD applies server-side and becomes Established" \
  crd_established "$HERE/testdata/widget-crd.yaml" widgets.smoke.syncmesh.io || true
explain_widget() { k explain widgets.spec.size 2>&1 | grep -q "Number of sprockets in the widget"; }
check "kubectl explain widgets.spec.size shows the schema description" eventually 30 explain_widget || true
widget() { printf 'apiVersion: smoke.syncmesh.io/v1alpha1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: %s\n' "$1"; }
widget_ok() { widget 3 | k -n "$NS" apply --server-side -f - >/dev/null; }
check "a valid custom resource applies server-side" eventually 15 widget_ok || true
widget_bad() { local out; if out=$(widget 42 | k -n "$NS" apply --server-side -f - 2>&1); then return 1; fi; grep -q "should be less than or equal to 10" <<<"$out"; }
check "the CRD schema rejects an invalid custom resource with a clear message" widget_bad || true
SDB_CRD="$ROOT/crds/syncmesh.io_synceddatabases.yaml"
if [[ -f "$SDB_CRD" ]]; then
  check "the project's SyncedDatabase CRD applies server-side and is Established" \
    crd_established "$SDB_CRD" synceddatabases.syncmesh.io || true
  explain_sdb() { k explain synceddatabases.spec >/dev/null 2>&1; }
  check "kubectl explain synceddatabases.spec" eventually 30 explain_sdb || true
fi

# ------------------------------------------------------------------ helm
helm_roundtrip() {
  "$HELM" install smoke "$HERE/testdata/smoke-chart" -n "$NS" --set greeting=hi &&
    [[ "$(k -n "$NS" get cm smoke-greeting -o jsonpath='{.data.greeting}')" == hi ]] &&
    "$HELM" list -n "$NS" | grep -q "^smoke.*deployed" &&
    "$HELM" uninstall smoke -n "$NS" &&
    ! k -n "$NS" get cm smoke-greeting 2>/dev/null
}
check "helm installs, lists and uninstalls a chart" helm_roundtrip || true

# ------------------------------------------------------------------ a second instance at the same time
second_instance() {
  local env2 kc2
  env2=$("$CLUSTER" --name "$NAME2" up 2>/dev/null) || return 1
  kc2=$(sed -n 's/^export KUBECONFIG=//p' <<<"$env2")
  [[ "$kc2" != "$KUBECONFIG" ]] || return 1
  [[ "$(KUBECONFIG=$kc2 k get --raw /readyz)" == ok ]] || return 1
  # Isolated: the first instance's namespace does not exist in the second.
  ! KUBECONFIG=$kc2 k get ns "$NS" >/dev/null 2>&1 || return 1
  [[ "$(k get --raw /readyz)" == ok ]] || return 1
  "$CLUSTER" --name "$NAME2" down 2>/dev/null
}
check "a second control plane runs alongside on other ports, then goes down" second_instance || true

# ------------------------------------------------------------------ down
API_PORT=$(sed -n 's#.*server: https://127.0.0.1:\([0-9]*\).*#\1#p' "$KUBECONFIG")
STATE_DIR=$(dirname "$KUBECONFIG")
"$CLUSTER" --name "$NAME" down >/dev/null 2>&1
down_clean() { ! (: </dev/tcp/127.0.0.1/"$API_PORT") 2>/dev/null && [[ ! -e "$STATE_DIR" ]]; }
check "cluster.sh down stops the processes and removes the state" down_clean || true
