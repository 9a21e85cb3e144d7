#!/usr/bin/env bash
# SyncMesh local Kubernetes control plane: etcd + kube-apiserver +
# kube-controller-manager + kube-scheduler on loopback, built from source
# (Go modules under tests/k8s/go/) and cached outside the clone. With --node it
# also runs a real node on this machine (containerd + runc, CNI bridge, kubelet,
# kube-proxy, CoreDNS), so pods run (root only, one node instance at a time).
#
#   tests/k8s/cluster.sh build [--node] [--promtool]   build/cache the binaries only
#   tests/k8s/cluster.sh up [--node]      start (idempotent), print `export KUBECONFIG=...`
#   tests/k8s/cluster.sh env              print the exports for a running instance
#   tests/k8s/cluster.sh down [--keep]    stop everything `up` started (and delete its state)
#   tests/k8s/cluster.sh down --keep-logs also save the logs in $STATE_ROOT/logs/NAME-TIME/
#                                         (the newest 10 saved runs are kept)
#   tests/k8s/cluster.sh status           show processes, ports and log files
#   tests/k8s/cluster.sh ns [PREFIX]      create a fresh, uniquely named namespace; print its name
#   tests/k8s/cluster.sh kubectl ARGS...  run the matching kubectl against the instance
#   tests/k8s/cluster.sh exec -- CMD...   run CMD with the instance's env exported; an instance
#                                         that exec brought up is taken down when CMD ends
#   tests/k8s/cluster.sh bin              print the directory holding the cached binaries
#   tests/k8s/cluster.sh ctr ARGS...      run ctr against the node's containerd (namespace k8s.io)
#
# Options (before or after the command):
#   --name NAME   instance name (default: $SYNCMESH_K8S_NAME or "default"); each
#                 instance has its own state dir and ports, so several can run at once.
#   --node        (build, up, exec) also the node; SYNCMESH_K8S_NODE=1 does the same.
#   --promtool    (build) also Prometheus's promtool (the chart's alert rules are tested with it).
#
# Environment:
#   SYNCMESH_CACHE            binary cache root (default: $HOME/.cache/syncmesh)
#   SYNCMESH_K8S_NAME         default instance name
#   SYNCMESH_K8S_STATE        state root (default: ${TMPDIR:-/tmp}/syncmesh-k8s-$UID)
#   SYNCMESH_K8S_BASE_PORT    first port to try (default: derived from the name)
#   SYNCMESH_K8S_TIMEOUT      seconds to wait for readiness (default: 180)
#   SYNCMESH_BUILD_NICE       nice level for the Go builds (default: 0)
#   GO                        go command (default: go on PATH, else /usr/local/go/bin/go)
#
# Logs go to stderr; stdout of `up`/`env` is only eval-able `export` lines.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GO_DIR="$SCRIPT_DIR/go"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- arguments
NAME=${SYNCMESH_K8S_NAME:-default}
CMD=""
KEEP=0
KEEP_LOGS=0
NODE=${SYNCMESH_K8S_NODE:-0}
PROMTOOL=0
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) [[ $# -ge 2 ]] || die "--name needs a value"; NAME=$2; shift 2 ;;
    --name=*) NAME=${1#--name=}; shift ;;
    --keep) KEEP=1; shift ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    --node) NODE=1; shift ;;
    --promtool) PROMTOOL=1; shift ;;
    -h|--help|help) usage; exit 0 ;;
    *)
      if [[ -z "$CMD" ]]; then CMD=$1; else ARGS+=("$1"); fi
      shift
      if [[ "$CMD" == kubectl || "$CMD" == ctr || "$CMD" == exec ]]; then
        [[ "$CMD" == exec && "${1:-}" == -- ]] && shift
        ARGS+=("$@"); break
      fi
      ;;
  esac
done
[[ -n "$CMD" ]] || { usage >&2; exit 2; }
[[ "$NAME" =~ ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$ ]] || die "instance name must be lower-case alphanumerics and '-' (got '$NAME')"

# ---------------------------------------------------------------- versions
modver() { # modver FILE MODULE -> version required in FILE
  awk -v m="$2" '($1==m && $2 ~ /^v/){print $2; exit} ($1=="require" && $2==m){print $3; exit}' "$1"
}
K8S_VERSION=$(modver "$GO_DIR/kubernetes/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(modver "$GO_DIR/etcd/go.mod" go.etcd.io/etcd/server/v3)
HELM_VERSION=$(modver "$GO_DIR/helm/go.mod" helm.sh/helm/v4)
CONTAINERD_VERSION=$(modver "$GO_DIR/containerd/go.mod" github.com/containerd/containerd/v2)
COREDNS_VERSION=$(modver "$GO_DIR/coredns/go.mod" github.com/coredns/coredns)
RUNC_VERSION=$(modver "$GO_DIR/runc/go.mod" github.com/opencontainers/runc)
PROMETHEUS_VERSION=$(modver "$GO_DIR/prometheus/go.mod" github.com/prometheus/prometheus)
[[ -n "$K8S_VERSION" && -n "$ETCD_VERSION" && -n "$HELM_VERSION" && -n "$CONTAINERD_VERSION" && -n "$COREDNS_VERSION" && -n "$RUNC_VERSION" && -n "$PROMETHEUS_VERSION" ]] ||
  die "cannot read versions from $GO_DIR/*/go.mod"

CACHE_ROOT=${SYNCMESH_CACHE:-${HOME:-/root}/.cache/syncmesh}
CACHE_DIR="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN="$CACHE_DIR/bin"
STATE_ROOT=${SYNCMESH_K8S_STATE:-${TMPDIR:-/tmp}/syncmesh-k8s-$(id -u)}
STATE="$STATE_ROOT/$NAME"
TIMEOUT=${SYNCMESH_K8S_TIMEOUT:-180}
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1          # first address of SERVICE_CIDR: the `kubernetes` Service
SA_ISSUER=https://kubernetes.default.svc.cluster.local
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)
# The node (tests/k8s/node.sh): pods on a bridge with this subnet; the bridge's own address
# is the node's IP, where the kubelet, CoreDNS and (for pods) the apiserver listen.
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
NODE_BRIDGE=syncmesh0
NODE_COMPONENTS=(containerd kubelet kube-proxy coredns)
PAUSE_IMAGE=syncmesh.local/pause:1.0   # the pod sandbox image; images.sh builds it (same name there)
# shellcheck source=tests/k8s/node.sh
source "$SCRIPT_DIR/node.sh"
# shellcheck source=tests/lib/progress.sh
source "$SCRIPT_DIR/../lib/progress.sh"

# ---------------------------------------------------------------- build
find_go() {
  if [[ -n "${GO:-}" ]]; then echo "$GO"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  die "no Go toolchain found (set GO=/path/to/go)"
}

# build_group GROUP MODULE LDFLAGS TAGS PACKAGES OUTPUT-NAMES...
#   MODULE is a wrapper module under tests/k8s/go/; PACKAGES is "tool" (every `tool` line
#   of its go.mod) or a space-separated list of packages. BUILD_CGO=1 builds with cgo.
build_group() {
  local group=$1 mod="$GO_DIR/$2" ldflags=$3 tags=$4 pkgs=$5; shift 5
  local outs=("$@") go stamp want have=1 o tmp start
  go=$(find_go)
  want=$( { cat "$mod/go.mod" "$mod/go.sum"; [[ -f "$mod/main.go" ]] && cat "$mod/main.go"; "$go" version
            [[ "$pkgs" == tool ]] || echo "$pkgs"; echo "$ldflags|$tags|cgo${BUILD_CGO:-0}|trimpath"; } | sha256sum | cut -c1-16)
  for o in "${outs[@]}"; do [[ -x "$BIN/$o" ]] || have=0; done
  stamp="$BIN/.stamp-$group"
  if [[ $have == 1 && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  log "building $group (${outs[*]}) with $("$go" env GOVERSION) -> $BIN"
  start=$SECONDS
  tmp=$(mktemp -d "$CACHE_DIR/.build-$group.XXXXXX")
  # All packages of one module in one `go build`, so shared packages compile once.
  # One retry: a cold build downloads a few hundred modules, and a transient proxy
  # error should not fail CI (what was compiled before the error stays cached).
  local attempt
  for attempt in 1 2; do
    # -v and tests/lib/progress.sh: a line with the elapsed time, the modules downloaded and the
    # packages compiled every 30 s (a spinner on a terminal) instead of silence or one line per
    # module; errors are printed as they come.
    # shellcheck disable=SC2086 # $pkgs is a space-separated package list
    if PROGRESS_TAG=cluster.sh progress "go build of $group" \
        env -C "$mod" CGO_ENABLED="${BUILD_CGO:-0}" GOWORK=off GOFLAGS="-trimpath -mod=readonly -buildvcs=false" \
          nice -n "${SYNCMESH_BUILD_NICE:-0}" "$go" build -v -tags="$tags" -ldflags="$ldflags" -o "$tmp/" $pkgs; then
      break
    fi
    if [[ $attempt == 2 ]]; then rm -rf "$tmp"; die "go build of $group failed"; fi
    log "go build of $group failed; retrying once in 10s"; sleep 10
  done
  # go names a binary after its package's last element: go.etcd.io/etcd/server/v3 -> "server",
  # the CoreDNS wrapper module (package ".") -> its module's last element, "coredns".
  if [[ $group == etcd && -x "$tmp/server" ]]; then mv "$tmp/server" "$tmp/etcd"; fi
  for o in "${outs[@]}"; do
    [[ -x "$tmp/$o" ]] || { ls -l "$tmp" >&2; rm -rf "$tmp"; die "build of $group did not produce $o"; }
  done
  for o in "${outs[@]}"; do mv -f "$tmp/$o" "$BIN/$o"; done
  rm -rf "$tmp"
  echo "$want" > "$stamp"
  log "built $group in $((SECONDS - start))s"
}

ensure_binaries() {
  mkdir -p "$BIN"
  exec 8>"$CACHE_DIR/.build.lock"
  if ! flock -n 8; then
    log "another cluster.sh is checking or building the binaries in $CACHE_DIR; waiting"
    flock 8
  fi
  local start=$SECONDS kv ld p minor k=k8s.io/kubernetes/cmd
  kv=${K8S_VERSION#v}; minor=$(cut -d. -f2 <<<"$kv")
  ld="-s -w"
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=${kv%%.*} -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  build_group kubernetes kubernetes "$ld" "selinux,notest,grpcnotrace" \
    "$k/kube-apiserver $k/kube-controller-manager $k/kube-scheduler $k/kubectl" \
    kube-apiserver kube-controller-manager kube-scheduler kubectl
  build_group etcd etcd "-s -w" "grpcnotrace" tool etcd
  build_group helm helm "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" "" tool helm
  if [[ $NODE == 1 ]]; then
    # The node: same wrapper module (and so the same dependency versions) as the control plane.
    build_group kubernetes-node kubernetes "$ld" "selinux,notest,grpcnotrace" "$k/kubelet $k/kube-proxy" kubelet kube-proxy
    build_group containerd containerd "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
      "no_btrfs,no_devmapper,no_zfs,urfave_cli_no_docs" tool containerd containerd-shim-runc-v2 ctr
    build_group coredns coredns "-s -w" "grpcnotrace" . coredns
    BUILD_CGO=1 build_group runc runc "-s -w -X main.version=${RUNC_VERSION#v}" "seccomp,urfave_cli_no_docs" tool runc
  fi
  if [[ $PROMTOOL == 1 ]]; then
    # Module v0.3XX.Y is Prometheus 3.XX.Y.
    local pv="3.${PROMETHEUS_VERSION#v0.3}"
    build_group prometheus prometheus "-s -w -X github.com/prometheus/common/version.Version=$pv" "" tool promtool
  fi
  flock -u 8; exec 8>&-
  if (( SECONDS - start > 1 )); then log "binaries ready in $((SECONDS - start))s"; fi
}

# ---------------------------------------------------------------- helpers
port_in_use() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# Reserve 10 consecutive ports for this instance under a global lock, avoiding ports
# that are listening and ports that other instances have reserved (the last five are
# the node's: CoreDNS readiness, kubelet, kubelet healthz, kube-proxy metrics and healthz).
allocate_ports() {
  mkdir -p "$STATE_ROOT"
  exec 7>"$STATE_ROOT/.ports.lock"
  flock 7
  local base tries=0 p ok reserved
  if [[ -n "${SYNCMESH_K8S_BASE_PORT:-}" ]]; then
    base=$SYNCMESH_K8S_BASE_PORT
  else
    base=$(( 20000 + ($(printf '%s' "$NAME" | cksum | cut -d' ' -f1) % 1000) * 10 ))
  fi
  reserved=$(cat "$STATE_ROOT"/*/ports 2>/dev/null | grep -v "^NAME=$NAME\$" | sed -n 's/^[A-Z_]*=\([0-9][0-9]*\)$/\1/p' | sort -u || true)
  while :; do
    ok=1
    for p in $(seq "$base" $((base + 9))); do
      if port_in_use "$p" || grep -qx "$p" <<<"$reserved"; then ok=0; break; fi
    done
    [[ $ok == 1 ]] && break
    tries=$((tries+1)); (( tries < 500 )) || die "no free ports found"
    base=$((base + 10)); (( base < 30000 )) || base=20000
  done
  cat > "$STATE/ports" <<EOF
NAME=$NAME
API_PORT=$base
ETCD_PORT=$((base+1))
ETCD_PEER_PORT=$((base+2))
KCM_PORT=$((base+3))
SCHED_PORT=$((base+4))
DNS_READY_PORT=$((base+5))
KUBELET_PORT=$((base+6))
KUBELET_HEALTHZ_PORT=$((base+7))
PROXY_METRICS_PORT=$((base+8))
PROXY_HEALTHZ_PORT=$((base+9))
EOF
  flock -u 7; exec 7>&-
}

load_ports() { # shellcheck disable=SC1091
  [[ -f "$STATE/ports" ]] && source "$STATE/ports"
}

# ECDSA P-256 keys in PKCS#8 PEM ("BEGIN PRIVATE KEY"), which every client library reads.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# cert NAME CN ORG SIGNER [SANs] [usage]   (1 year)
cert() {
  local name=$1 cn=$2 org=$3 ca=$4 sans=${5:-} usage=${6:-clientAuth} d="$STATE/pki" subj
  subj="/CN=$cn"; [[ -n "$org" ]] && subj="/O=$org$subj"
  newkey "$d/$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } > "$d/$name.ext"
  openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
  openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$d/$name.ext"
}

ca() { # ca NAME CN
  local d="$STATE/pki"
  newkey "$d/$1.key"
  openssl req -x509 -new -key "$d/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$d/$1.crt" 2>/dev/null
}

gen_pki() {
  local d="$STATE/pki"
  mkdir -p "$d"; chmod 700 "$d"
  ca ca "syncmesh-$NAME-ca"
  ca etcd-ca "syncmesh-$NAME-etcd-ca"
  ca front-proxy-ca "syncmesh-$NAME-front-proxy-ca"
  cert apiserver kube-apiserver "" ca \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP" serverAuth
  cert admin kubernetes-admin system:masters ca
  cert controller-manager system:kube-controller-manager "" ca
  cert scheduler system:kube-scheduler "" ca
  cert etcd-server etcd "" etcd-ca "DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
  cert apiserver-etcd-client kube-apiserver-etcd-client "" etcd-ca
  cert front-proxy-client front-proxy-client "" front-proxy-ca
  # Service-account token signing key pair (RSA, as kubeadm does).
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
  openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  chmod 600 "$d"/*.key
}

b64() { base64 -w0 < "$1"; }

kubeconfig() { # kubeconfig FILE USER CERTNAME
  local d="$STATE/pki"
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: syncmesh-$NAME
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$d/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$d/$3.crt")
    client-key-data: $(b64 "$d/$3.key")
contexts:
- name: syncmesh-$NAME
  context:
    cluster: syncmesh-$NAME
    user: $2
current-context: syncmesh-$NAME
EOF
  chmod 600 "$1"
}

pid_of() { if [[ -f "$STATE/$1.pid" ]]; then cat "$STATE/$1.pid"; fi; }

# A pid counts as ours only if it is alive and its command line names our state dir. While a
# process is inside execve (between start_proc's pid file and the component's own main) its
# /proc/PID/cmdline reads empty: such a live, not-yet-named process is asked again for up to a
# second instead of being declared gone. A zombie (exited, not yet reaped) is gone.
is_ours() {
  local pid=$1 cmdline state _
  [[ -n "$pid" ]] || return 1
  for _ in $(seq 1 20); do
    [[ -r /proc/$pid/cmdline ]] || return 1
    state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    cmdline=$({ tr '\0' ' ' < /proc/"$pid"/cmdline; } 2>/dev/null) || return 1
    if [[ -n "$cmdline" ]]; then grep -qF -- "$STATE/" <<<"$cmdline"; return; fi
    sleep 0.05
  done
  return 1
}

# The pid of each component's launcher, a child of this shell, whose status `wait` can read
# (setsid --wait returns the component's exit status, whether or not it had to fork).
declare -A LAUNCHER=()

start_proc() { # start_proc NAME BINARY ARGS...
  local name=$1; shift
  log "starting $name (log: $STATE/logs/$name.log)"
  # setsid: its own session, so a Ctrl-C in the caller's terminal does not reach it.
  # The lock descriptors (7-9) are closed so a daemon never holds our locks.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid --wait bash -c 'echo $$ > "$0"; exec "$@"' "$STATE/$name.pid" "$@" \
    </dev/null >"$STATE/logs/$name.log" 2>&1 7>&- 8>&- 9>&- &
  LAUNCHER[$name]=$!
  local _
  for _ in $(seq 1 50); do
    # Started once the pid file is written and the pid runs the component (exec done).
    if [[ -s "$STATE/$name.pid" ]] && is_ours "$(pid_of "$name")"; then return 0; fi
    if ! kill -0 "${LAUNCHER[$name]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  exit_reason "$name"
  fail_with_log "$name" "$name did not start: $REASON"
}

# Why a component is not running, in REASON: its exit status or the signal that ended it (read
# from its launcher, a child of this shell: so never call this in a $(...) subshell), or that
# it is alive but no longer ours.
REASON=""
exit_reason() {
  local name=$1 launcher=${LAUNCHER[$1]:-} pid rc=0 sig
  pid=$(pid_of "$name")
  if [[ -n "$pid" && -r /proc/$pid/cmdline ]] && [[ "$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; then
    REASON="pid $pid is alive but its command line does not name $STATE/: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-200)"
    return
  fi
  if [[ -z "$launcher" ]]; then REASON="not started by this run"; return; fi
  if kill -0 "$launcher" 2>/dev/null && ! [[ "$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$launcher/stat" 2>/dev/null)" == Z ]]; then
    REASON="its launcher (pid $launcher) still runs"; return
  fi
  wait "$launcher" 2>/dev/null || rc=$?
  # A setsid that had to fork reports a child killed by a signal as "did not exit normally",
  # with the signal's number as its own status.
  if [[ "$launcher" != "$pid" ]] && (( rc > 0 && rc < 128 )) &&
      tail -n 1 "$STATE/logs/$name.log" 2>/dev/null | grep -q "did not exit normally"; then
    rc=$((rc + 128))
  fi
  if (( rc > 128 )); then
    sig=$(kill -l $((rc - 128)) 2>/dev/null || echo "$((rc - 128))")
    REASON="killed by signal SIG$sig"
    [[ $sig != KILL ]] || REASON+=" (if nobody sent it: the kernel's OOM killer? see dmesg)"
  elif (( rc == 127 )); then
    REASON="exit status 127: the binary could not be run"
  else
    REASON="exit status $rc"
  fi
}

fail_with_log() { # fail_with_log NAME MESSAGE
  local f="$STATE/logs/$1.log"
  if [[ -s "$f" ]]; then
    log "$2; last lines of $f:"
    tail -n 40 "$f" >&2 || true
  else
    log "$2; its log $f is empty"
  fi
  exit 1
}

wait_for() { # wait_for NAME DESCRIPTION COMMAND...
  local name=$1 what=$2 deadline=$((SECONDS + TIMEOUT)) pid; shift 2
  pid=$(pid_of "$name")
  until "$@" >/dev/null 2>&1; do
    if ! is_ours "$pid"; then
      exit_reason "$name"
      fail_with_log "$name" "$name exited while waiting for $what: $REASON"
    fi
    (( SECONDS < deadline )) || fail_with_log "$name" "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}

api_get() { # api_get PATH
  curl -sf --max-time 5 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" \
    --key "$STATE/pki/admin.key" "https://127.0.0.1:$API_PORT$1"
}
etcd_health() {
  curl -sf --max-time 5 --cacert "$STATE/pki/etcd-ca.crt" --cert "$STATE/pki/apiserver-etcd-client.crt" \
    --key "$STATE/pki/apiserver-etcd-client.key" "https://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}
api_ready() { [[ "$(api_get /readyz)" == ok ]]; }
healthz_insecure() { curl -skf --max-time 5 "https://127.0.0.1:$1/healthz" | grep -qx ok; }
default_sa_ready() {
  api_get /api/v1/namespaces/default/serviceaccounts/default >/dev/null &&
    api_get /api/v1/namespaces/default/configmaps/kube-root-ca.crt >/dev/null
}

running() { # all components alive and the apiserver ready
  load_ports || return 1
  local c
  for c in "${COMPONENTS[@]}"; do is_ours "$(pid_of "$c")" || return 1; done
  if is_node_instance; then node_running || return 1; fi
  api_ready 2>/dev/null
}

print_env() {
  echo "export KUBECONFIG=$STATE/kubeconfig"
  echo "export SYNCMESH_K8S_NAME=$NAME"
  echo "export SYNCMESH_K8S_BIN=$BIN"
  if is_node_instance; then echo "export SYNCMESH_K8S_CONTAINERD=$(containerd_sock)"; fi
}

stop_component() { # stop_component NAME: TERM, then KILL after 10 s
  local c=$1 pid _
  pid=$(pid_of "$c")
  if is_ours "$pid"; then
    log "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do is_ours "$pid" || break; sleep 0.1; done
    if is_ours "$pid"; then log "$c did not exit in 10s; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$STATE/$c.pid"
}

stop_all() {
  local c
  load_ports || true   # the node's teardown talks to the apiserver
  # Called as the left side of `||`, node_down runs without errexit: teardown goes on past a
  # step that fails, so one leftover does not leave every other one behind.
  if is_node_instance; then node_down || log "the node's teardown reported an error (see above)"; fi
  for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_component "$c"; done
  return 0
}

# One lock per instance, for up and down. `down` removes the lock file (while it holds it), so
# no empty lock file stays behind per instance; a waiter that then gets the lock of the removed
# file sees that the path no longer names its file, and opens and locks it again.
lock_instance() {
  local lock="$STATE_ROOT/$NAME.lock" waited=0
  mkdir -p "$STATE_ROOT"
  while :; do
    exec 9>>"$lock"
    if ! flock -n 9; then
      [[ $waited == 1 ]] || log "instance '$NAME' is busy (another up/down); waiting"
      waited=1; flock 9
    fi
    [[ "$(stat -c %d:%i "$lock" 2>/dev/null)" == "$(stat -L -c %d:%i /dev/fd/9)" ]] && return 0
    exec 9>&-
  done
}
unlock_instance_and_remove() { rm -f "$STATE_ROOT/$NAME.lock"; exec 9>&-; }

# Saves the instance's logs outside its state directory (which `down` deletes), keeping the
# newest 10 saved runs; prints where.
save_logs() {
  [[ -d "$STATE/logs" ]] || return 0
  local dest="$STATE_ROOT/logs/$NAME-$(date +%Y%m%d-%H%M%S)" old
  mkdir -p "$STATE_ROOT/logs"
  cp -r "$STATE/logs" "$dest"
  log "logs of instance '$NAME' saved in $dest"
  # shellcheck disable=SC2012 # names are ours: NAME-YYYYmmdd-HHMMSS
  for old in $(ls -1dt "$STATE_ROOT"/logs/*/ 2>/dev/null | tail -n +11); do rm -rf "$old"; done
}

# ---------------------------------------------------------------- commands
cmd_up() {
  command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is required (apt-get install curl)"
  ensure_binaries
  lock_instance
  if running; then
    if [[ $NODE == 1 ]] && ! is_node_instance; then
      die "instance '$NAME' is running without a node; take it down first (cluster.sh --name $NAME down)"
    fi
    log "instance '$NAME' already running (apiserver https://127.0.0.1:$API_PORT)"
    print_env; return 0
  fi
  if [[ $NODE == 1 ]]; then node_preflight; fi
  if [[ -d "$STATE" ]]; then log "cleaning up stale state of instance '$NAME'"; stop_all; rm -rf "$STATE"; fi
  local start=$SECONDS
  UP_OK=0
  mkdir -p "$STATE/logs" "$STATE/etcd" "$STATE/kcm" "$STATE/scheduler"
  if [[ $NODE == 1 ]]; then mkdir -p "$STATE/node"; fi
  chmod 700 "$STATE" "$STATE/etcd"
  # If anything below fails, stop what was started (state kept for the logs).
  trap '[[ $UP_OK == 1 ]] || { log "up failed; stopping what was started (its logs stay in $STATE/logs until down; down --keep-logs saves them)"; stop_all; }' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  allocate_ports; load_ports
  gen_pki
  kubeconfig "$STATE/kubeconfig" kubernetes-admin admin
  kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  kubeconfig "$STATE/scheduler.kubeconfig" system:kube-scheduler scheduler
  local p="$STATE/pki"
  # Without a node the apiserver listens on loopback only, and the `kubernetes` Service has no
  # endpoints (127.0.0.1 may not be one). With a node, pods must reach it: it listens on every
  # address and advertises the node's IP, which the lease reconciler publishes as the endpoint.
  local net_flags=(--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none)
  if [[ $NODE == 1 ]]; then
    node_pki
    net_flags=(--bind-address=0.0.0.0 --advertise-address="$NODE_IP" --endpoint-reconciler-type=lease
      --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key"
      --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP)
    # The bridge must exist before anything binds the node's IP (the apiserver advertises it,
    # CoreDNS and the kubelet listen on it); the CNI bridge plugin adopts it.
    ip link add "$NODE_BRIDGE" type bridge
    ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$NODE_BRIDGE"
    ip link set "$NODE_BRIDGE" up
  fi

  start_proc etcd "$BIN/etcd" \
    --name "$NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls "https://127.0.0.1:$ETCD_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "$NAME=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    --cert-file "$p/etcd-server.crt" --key-file "$p/etcd-server.key" \
    --trusted-ca-file "$p/etcd-ca.crt" --client-cert-auth \
    --unsafe-no-fsync --log-level warn
  wait_for etcd "etcd /health" etcd_health

  start_proc kube-apiserver "$BIN/kube-apiserver" \
    "${net_flags[@]}" --secure-port="$API_PORT" \
    --etcd-servers="https://127.0.0.1:$ETCD_PORT" --etcd-cafile="$p/etcd-ca.crt" \
    --etcd-certfile="$p/apiserver-etcd-client.crt" --etcd-keyfile="$p/apiserver-etcd-client.key" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer="$SA_ISSUER" --api-audiences="$SA_ISSUER" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,PodSecurity,Priority,RuntimeClass,StorageObjectInUseProtection,PersistentVolumeClaimResize,MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,ResourceQuota \
    --allow-privileged=true \
    --enable-aggregator-routing=true \
    --requestheader-client-ca-file="$p/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$p/front-proxy-client.crt" --proxy-client-key-file="$p/front-proxy-client.key" \
    --profiling=false --v=1
  wait_for kube-apiserver "kube-apiserver /readyz" api_ready

  start_proc kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$STATE/kcm" \
    --client-ca-file="$p/ca.crt" --requestheader-client-ca-file="$p/front-proxy-ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --root-ca-file="$p/ca.crt" --service-account-private-key-file="$p/sa.key" \
    --use-service-account-credentials=true \
    --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false \
    --controllers='*,bootstrapsigner,tokencleaner' \
    --leader-elect=false --profiling=false --v=1
  start_proc kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$STATE/scheduler" \
    --leader-elect=false --profiling=false --v=1
  wait_for kube-controller-manager "kube-controller-manager /healthz" healthz_insecure "$KCM_PORT"
  wait_for kube-scheduler "kube-scheduler /healthz" healthz_insecure "$SCHED_PORT"
  # The service-account and root-CA publisher controllers must have run before
  # pods can be admitted (ServiceAccount admission needs the `default` SA).
  wait_for kube-controller-manager "the default ServiceAccount and kube-root-ca.crt" default_sa_ready
  if [[ $NODE == 1 ]]; then node_up; fi
  UP_OK=1; trap - EXIT INT TERM
  log "instance '$NAME' ready in $((SECONDS - start))s: Kubernetes $K8S_VERSION at https://127.0.0.1:$API_PORT (etcd $ETCD_VERSION on :$ETCD_PORT)"
  print_env
}

cmd_down() {
  lock_instance
  if [[ ! -d "$STATE" ]]; then log "instance '$NAME' is not running"; unlock_instance_and_remove; return 0; fi
  stop_all
  if [[ $KEEP_LOGS == 1 ]]; then save_logs; fi
  if [[ $KEEP == 1 ]]; then
    log "instance '$NAME' stopped; state kept in $STATE"
    exec 9>&-
  else
    rm -rf "$STATE"
    unlock_instance_and_remove
    log "instance '$NAME' stopped and its state removed"
  fi
}

cmd_env() {
  load_ports || die "instance '$NAME' is not up (run: $0 up${NAME:+ --name $NAME})"
  running || log "warning: instance '$NAME' has state but is not healthy"
  print_env
}

cmd_status() {
  echo "instance:   $NAME"
  echo "versions:   kubernetes $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION (node: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CoreDNS $COREDNS_VERSION)"
  echo "binaries:   $BIN"
  echo "state:      $STATE"
  if ! load_ports; then echo "status:     down"; return 0; fi
  echo "apiserver:  https://127.0.0.1:$API_PORT (etcd :$ETCD_PORT, kcm :$KCM_PORT, scheduler :$SCHED_PORT)"
  echo "kubeconfig: $STATE/kubeconfig"
  local c pid
  local comps=("${COMPONENTS[@]}")
  if is_node_instance; then
    comps+=("${NODE_COMPONENTS[@]}")
    echo "node:       $(node_name) at $NODE_IP (bridge $NODE_BRIDGE, pods $POD_CIDR, DNS $NODE_IP:53), containerd $(containerd_sock)"
  fi
  for c in "${comps[@]}"; do
    pid=$(pid_of "$c")
    if is_ours "$pid"; then printf '  %-24s pid %-7s log %s\n' "$c" "$pid" "$STATE/logs/$c.log"
    else printf '  %-24s NOT RUNNING       log %s\n' "$c" "$STATE/logs/$c.log"; fi
  done
  if running; then echo "status:     ready"; else echo "status:     not ready"; return 1; fi
}

cmd_ns() {
  load_ports || die "instance '$NAME' is not up"
  local prefix=${ARGS[0]:-test}
  [[ "$prefix" =~ ^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$ ]] || die "bad namespace prefix '$prefix'"
  # generateName: the apiserver picks a unique name, so parallel callers never collide.
  "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" create -o jsonpath='{.metadata.name}' -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  generateName: $prefix-
  labels:
    syncmesh.io/test-namespace: "true"
EOF
  echo
}

cmd_exec() {
  [[ ${#ARGS[@]} -gt 0 ]] || die "usage: $0 exec -- COMMAND [ARGS...]"
  local was_running=0 env_out rc=0
  if ( lock_instance; running ); then was_running=1; fi
  env_out=$(cmd_up)
  eval "$env_out"
  export KUBECONFIG SYNCMESH_K8S_NAME SYNCMESH_K8S_BIN
  # We stop an instance we started: on success, failure or interruption.
  [[ $was_running == 1 ]] || trap 'cmd_down' EXIT
  log "running: ${ARGS[*]}"
  # Run it in the background and wait, so INT/TERM reach this shell at once (and
  # are passed on) instead of after the command ends; stdin stays the caller's.
  exec 3<&0
  "${ARGS[@]}" <&3 3<&- &
  EXEC_CHILD=$!
  exec 3<&-
  trap 'kill -INT "$EXEC_CHILD" 2>/dev/null; wait "$EXEC_CHILD"; exit 130' INT
  trap 'kill -TERM "$EXEC_CHILD" 2>/dev/null; wait "$EXEC_CHILD"; exit 143' TERM
  wait "$EXEC_CHILD" || rc=$?
  trap - INT TERM
  log "command exited with status $rc"
  exit "$rc"
}

case "$CMD" in
  exec) cmd_exec ;;
  build) ensure_binaries; log "binaries in $BIN: $(cd "$BIN" && echo *)" ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  ns) cmd_ns ;;
  bin) echo "$BIN" ;;
  kubectl) load_ports || die "instance '$NAME' is not up"; exec "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "${ARGS[@]}" ;;
  ctr) is_node_instance || die "instance '$NAME' has no node (up --node)"
    # containerd's client warns on every call that cgroup v1 is deprecated: known, and noise here.
    ctr_cmd "${ARGS[@]}" 2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2) ;;
  *) die "unknown command '$CMD' (try --help)" ;;
esac
