#!/usr/bin/env bash
# SyncMesh on a local single-node Kubernetes cluster, with two demo microservices sharing a
# database through their injected replicas.
#
#   tests/k8s/demo.sh up      build everything, start the cluster (control plane + node),
#                             install the chart, deploy the demo; prints what to try
#   tests/k8s/demo.sh down    stop the cluster and remove its state
#
# The first `up` on a fresh machine builds Kubernetes, containerd, runc and CoreDNS from source
# (10-20 minutes on 2 cores); later ones take about a minute. Needs root (the node runs
# containers). Environment: DEMO_NAME (cluster instance, default "demo").
#
# tests/k8s/e2e.sh sources this file for the same steps (the functions below).

DEMO_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEMO_ROOT=$(cd "$DEMO_HERE/../.." && pwd)
DEMO_TAG=dev
DEMO_SYSTEM_NS=syncmesh-system
DEMO_NS=shop

demo_log() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# demo_build: the replica, operator and demo binaries (debug profile, shared target dir).
demo_build() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
  # shellcheck source=tests/lib/progress.sh
  source "$DEMO_ROOT/tests/lib/progress.sh"
  PROGRESS_TAG=demo progress "cargo build of the replica, the operator and the demo service" \
    cargo build --color never --manifest-path "$DEMO_ROOT/Cargo.toml" -p syncmesh-replica -p syncmesh-operator -p syncmesh-demo
  DEMO_BIN=$CARGO_TARGET_DIR/debug
}

# demo_images INSTANCE TAG: OCI images of the three binaries, imported into the node.
demo_images() {
  local name=$1 tag=$2 b
  for b in syncmesh-replica syncmesh-operator syncmesh-demo; do
    "$DEMO_HERE/images.sh" --name "$name" binary "syncmesh/$b:$tag" "$DEMO_BIN/$b" --strip || return 1
  done
}

# demo_install KUBECTL HELM TAG: the CRD and the chart, waiting for the operator pods.
demo_install() {
  local kubectl=$1 helm=$2 tag=$3
  "$kubectl" apply --server-side -f "$DEMO_ROOT/crds/" >/dev/null &&
    "$kubectl" wait --for=condition=Established crd/synceddatabases.syncmesh.io >/dev/null &&
    "$helm" upgrade --install syncmesh "$DEMO_ROOT/charts/syncmesh" --namespace "$DEMO_SYSTEM_NS" --create-namespace \
      --set operator.image.tag="$tag" --set operator.image.pullPolicy=Never --set replica.image.tag="$tag" \
      --set operator.logFormat=text --wait --timeout 180s >/dev/null
}

# demo_deploy KUBECTL TAG: the database `orders` and two services (svc-a, svc-b, 2 pods each).
demo_deploy() {
  local kubectl=$1 tag=$2 svc
  "$kubectl" create namespace "$DEMO_NS" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$kubectl" -n "$DEMO_NS" apply -f - >/dev/null <<EOF || return 1
apiVersion: syncmesh.io/v1alpha1
kind: SyncedDatabase
metadata: {name: orders}
spec:
  replica: {imagePullPolicy: Never, maxMemory: 128Mi}
EOF
  for svc in svc-a svc-b; do
    "$kubectl" -n "$DEMO_NS" apply -f - >/dev/null <<EOF || return 1
apiVersion: apps/v1
kind: Deployment
metadata: {name: $svc}
spec:
  replicas: 2
  selector: {matchLabels: {app: $svc}}
  template:
    metadata:
      labels: {app: $svc, syncmesh.io/database: orders}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: app
        image: syncmesh/syncmesh-demo:$tag
        imagePullPolicy: Never
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
        securityContext:
          runAsNonRoot: true
          runAsUser: 65532
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
          seccompProfile: {type: RuntimeDefault}
EOF
  done
}

# demo_pod_ips KUBECTL APP: IPs of the app's pods that are not being deleted.
demo_pod_ips() {
  "$1" -n "$DEMO_NS" get pods -l "app=$2" \
    -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{.status.podIP}{"\n"}{end}' | grep -E '^[0-9.]+$'
}

# demo_ready_pods KUBECTL: how many of the database's pods are ready (and not being deleted).
demo_ready_pods() {
  "$1" -n "$DEMO_NS" get pods -l syncmesh.io/database=orders \
    -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -cx True
}

demo_up() {
  local name=${DEMO_NAME:-demo} env_out kubectl helm deadline a b
  demo_log "installing missing packages (CNI plugins, conntrack, gcc, libseccomp, ...)"
  # shellcheck source=tests/lib/deps.sh
  repo=$DEMO_ROOT source "$DEMO_ROOT/tests/lib/deps.sh"
  repo=$DEMO_ROOT install_test_dependencies || return 1
  demo_log "building the replica, the operator and the demo service"
  demo_build || return 1
  demo_log "starting the cluster '$name' (control plane and node; the first run builds them from source)"
  env_out=$("$DEMO_HERE/cluster.sh" --name "$name" up --node) || return 1
  eval "$env_out"
  kubectl=$SYNCMESH_K8S_BIN/kubectl
  helm=$SYNCMESH_K8S_BIN/helm
  demo_log "building and importing the images"
  demo_images "$name" "$DEMO_TAG" || return 1
  demo_log "installing the chart"
  demo_install "$kubectl" "$helm" "$DEMO_TAG" || return 1
  demo_log "deploying the database 'orders' and the services svc-a and svc-b"
  demo_deploy "$kubectl" "$DEMO_TAG" || return 1
  deadline=$((SECONDS + 180))
  until [[ $(demo_ready_pods "$kubectl") -eq 4 ]]; do
    (( SECONDS < deadline )) || { demo_log "the demo pods did not become ready"; return 1; }
    sleep 2
  done
  a=$(demo_pod_ips "$kubectl" svc-a | head -n1)
  b=$(demo_pod_ips "$kubectl" svc-b | head -n1)
  cat <<EOF

SyncMesh runs on the local cluster '$name': the operator in $DEMO_SYSTEM_NS, and in namespace
$DEMO_NS the database 'orders' shared by svc-a and svc-b (2 pods each, each pod with its own replica).

  eval "\$($DEMO_HERE/cluster.sh --name $name env)"   # KUBECONFIG etc. for this shell
  export PATH=\$SYNCMESH_K8S_BIN:\$PATH
  kubectl -n $DEMO_NS get sdb,pods -o wide

Reach one pod of each service through the API server (works wherever kubectl works):

  kubectl -n $DEMO_NS port-forward deployment/svc-a 8081:8080 >/dev/null &
  kubectl -n $DEMO_NS port-forward deployment/svc-b 8082:8080 >/dev/null &

  curl -X PUT --data hello localhost:8081/kv/greeting    # write through a pod of svc-a
  curl localhost:8082/kv/greeting                        # read it through a pod of svc-b
  curl -X POST localhost:8082/incr/visits                # a counter every pod increments
  curl localhost:8082/subscribe/news &                   # wait for a message in svc-b...
  curl -X POST --data hi localhost:8081/publish/news     # ...published from svc-a: PUBLISH
                                                         # counts svc-a's own replica's
                                                         # subscribers (0), svc-b gets it anyway
  kubectl -n $DEMO_NS delete pod -l app=svc-a            # replacements bootstrap from the mesh
                                                         # (restart the port-forward after)

On this machine (the node's host) the pod IPs work directly too: curl http://$a:8080/kv/greeting
(svc-a) and http://$b:8080/kv/greeting (svc-b).

  $DEMO_HERE/demo.sh down                               # stop and remove everything
EOF
}

demo_main() {
  case "${1:-}" in
    up) demo_up ;;
    down) "$DEMO_HERE/cluster.sh" --name "${DEMO_NAME:-demo}" down ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; return 2 ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -uo pipefail
  demo_main "$@"
fi
