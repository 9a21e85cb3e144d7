# shellcheck shell=bash
# The node mode of tests/k8s/cluster.sh (`up --node`): a real Kubernetes node on this machine,
# so pods run. Sourced by cluster.sh (it uses its variables and helpers); not run on its own.
#
#   containerd (+ runc, the CRI plugin)  state in $STATE/node/containerd, its own socket; runc
#                                         1.5.2 built from source (Debian's 1.1.5 predates OCI spec 1.3)
#   CNI bridge $NODE_BRIDGE               $NODE_IP/24 = the node's IP; pods get 10.244.0.2-254
#                                         (host-local IPAM, portmap, loopback; config in
#                                         $STATE/node/cni, plugins from Debian's
#                                         containernetworking-plugins in /usr/lib/cni)
#   kubelet                               registers Node syncmesh-$NAME, root dir $STATE/node/kubelet,
#                                         cgroupfs driver, cgroup v1 allowed, clusterDNS $NODE_IP
#   kube-proxy                            iptables mode: ClusterIP Services work from pods and host
#   CoreDNS                               host process on $NODE_IP:53, `kubernetes` plugin
#
# The apiserver listens on every address and advertises $NODE_IP, so the `kubernetes` Service
# (10.96.0.1:443) reaches it from pods, and it reaches webhooks at pod IPs through the bridge.
#
# Host changes, all undone by `down`: the bridge, iptables chains KUBE-* and CNI-* (and the
# rules that jump to them), cgroups kubepods/ in every v1 hierarchy, mounts under $STATE, and
# the sysctls in NODE_SYSCTLS (saved at `up`, restored at `down`). Only one instance at a time
# can run a node (the bridge, the pod subnet, port 53 and the iptables chains are per host).

NODE_SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  vm.overcommit_memory kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.conf.all.route_localnet)
NODE_OWNER_FILE="$STATE_ROOT/.node-owner"
NODE_APT_PACKAGES="containernetworking-plugins iptables iproute2 conntrack gcc libc6-dev libseccomp-dev pkg-config"

node_name() { echo "syncmesh-$NAME"; }
node_dir() { echo "$STATE/node"; }
containerd_sock() { echo "$STATE/node/containerd/containerd.sock"; }
is_node_instance() { [[ -d "$STATE/node" ]]; }

ctr_cmd() { "$BIN/ctr" --address "$(containerd_sock)" --namespace k8s.io "$@"; }

node_preflight() {
  [[ $(id -u) == 0 ]] || die "--node needs root (bridge, iptables, mounts, cgroups)"
  local missing=() c
  for c in iptables ip conntrack gcc pkg-config; do command -v "$c" >/dev/null || missing+=("$c"); done
  [[ -f /usr/include/seccomp.h ]] || missing+=(libseccomp-dev)
  for c in bridge host-local loopback portmap; do [[ -x /usr/lib/cni/$c ]] || missing+=("cni:$c"); done
  [[ ${#missing[@]} == 0 ]] ||
    die "--node needs ${missing[*]} (apt-get install $NODE_APT_PACKAGES)"
  if [[ -f "$NODE_OWNER_FILE" ]]; then
    local owner; owner=$(cat "$NODE_OWNER_FILE")
    if [[ "$owner" != "$NAME" && -d "$STATE_ROOT/$owner/node" ]]; then
      die "instance '$owner' already runs the node (one node instance per host); take it down first"
    fi
  fi
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    log "removing a stale bridge $NODE_BRIDGE"
    ip link del "$NODE_BRIDGE" || die "cannot remove stale bridge $NODE_BRIDGE"
  fi
}

node_pki() {
  local nn; nn=$(node_name)
  cert node "system:node:$nn" system:nodes ca
  cert kube-proxy system:kube-proxy "" ca
  # The apiserver's client certificate towards kubelets (logs, exec, port-forward).
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ca
  cert kubelet "$nn" "" ca "DNS:$nn,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1" serverAuth
  chmod 600 "$STATE"/pki/*.key
  kubeconfig "$STATE/node.kubeconfig" "system:node:$nn" node
  kubeconfig "$STATE/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
}

# Host paths that the kubelet, containerd's shims and libcni use whatever they are told
# (/var/lib/kubelet/device-plugins, /var/log/containers, /var/lib/cni/results, /run/containerd/s):
# `up` notes which of them did not exist, `down` removes our entries and those directories.
NODE_HOST_DIRS=(/var/lib/kubelet /var/log/containers /var/lib/cni /run/containerd)
node_note_host_dirs() {
  local h
  for h in "${NODE_HOST_DIRS[@]}"; do [[ -e "$h" ]] || echo "$h"; done > "$STATE/node/host-dirs.created"
}
node_cleanup_host_dirs() {
  local f id sock
  for f in /var/log/containers/*.log; do
    [[ -L "$f" && "$(readlink "$f")" == "$STATE/"* ]] && rm -f "$f"
  done
  for f in /var/lib/cni/results/"syncmesh-$NAME"-*-eth0; do
    [[ -e "$f" ]] || continue
    id=${f#/var/lib/cni/results/syncmesh-"$NAME"-}; id=${id%-eth0}
    rm -f "$f" "/var/lib/cni/results/cni-loopback-$id-lo"
  done
  # Shim sockets: /run/containerd/s/<hash>; one that no process has bound any more is stale.
  for sock in /run/containerd/s/*; do
    [[ -S "$sock" ]] || continue
    grep -qF " $sock" /proc/net/unix || rm -f "$sock"
  done
  [[ -f "$STATE/node/host-dirs.created" ]] || return 0
  while IFS= read -r f; do
    case "$f" in
      /var/lib/kubelet) rm -rf "$f" ;;   # only our kubelet's device-plugin socket and checkpoint
      ?*) [[ -d "$f" ]] && find "$f" -depth -type d -empty -delete 2>/dev/null || true ;;
    esac
  done < "$STATE/node/host-dirs.created"
  return 0
}

node_save_sysctls() {
  local s f
  for s in "${NODE_SYSCTLS[@]}"; do
    f=/proc/sys/${s//.//}
    [[ -r "$f" ]] && echo "$s=$(cat "$f")"
  done > "$STATE/node/sysctls.saved"
}

node_restore_sysctls() {
  local line s v
  [[ -f "$STATE/node/sysctls.saved" ]] || return 0
  while IFS= read -r line; do
    s=${line%%=*}; v=${line#*=}
    echo "$v" > "/proc/sys/${s//.//}" 2>/dev/null || log "could not restore $s=$v"
  done < "$STATE/node/sysctls.saved"
}

write_containerd_config() {
  local d="$STATE/node/containerd"
  cat > "$d/config.toml" <<EOF
# containerd for node instance '$NAME' (tests/k8s/node.sh); everything under $d.
version = 4
root = '$d/root'
state = '$d/state'
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs',
  'io.containerd.image-verifier.v1.bindir', 'io.containerd.tracing.processor.v1.otlp']

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = '$d/containerd.sock'
  [plugins.'io.containerd.server.v1.ttrpc']
    address = '$d/containerd.sock.ttrpc'
  [plugins.'io.containerd.internal.v1.opt']
    path = '$d/opt'
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    netns_mounts_under_state_dir = true
    # This host's root lacks CAP_SYS_RESOURCE, so a negative oom_score_adj (pause: -998,
    # Guaranteed pods: -997) cannot be set; clamp to our own (0) instead of failing every pod.
    restrict_oom_score_adj = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$BIN/runc'
          Root = '$d/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$STATE/node/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
EOF
}

write_cni_config() {
  mkdir -p "$STATE/node/cni/net.d" "$STATE/node/cni/ipam"
  cat > "$STATE/node/cni/net.d/10-syncmesh.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "syncmesh-$NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/node/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

write_kubelet_config() {
  cat > "$STATE/node/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false            # this machine has cgroup v1 (hybrid); Kubernetes 1.35+ refuses it by default
cgroupDriver: cgroupfs         # no systemd
containerRuntimeEndpoint: unix://$(containerd_sock)
imageServiceEndpoint: unix://$(containerd_sock)
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $STATE/pki/kubelet.crt
tlsPrivateKeyFile: $STATE/pki/kubelet.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
podLogsDir: $STATE/node/pod-logs
failSwapOn: false
protectKernelDefaults: false
serializeImagePulls: false
# Test images are imported, never pulled: never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
shutdownGracePeriod: 0s
maxPods: 110
EOF
}

write_kube_proxy_config() {
  cat > "$STATE/node/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $(node_name)
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
iptables: {localhostNodePorts: false}
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

write_corefile() {
  cat > "$STATE/node/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    ready 127.0.0.1:$DNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/kubeconfig syncmesh-$NAME
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 5
}
EOF
}

containerd_ready() { ctr_cmd version; }
node_ready() {
  [[ "$("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get node "$(node_name)" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
http_ok() { curl -sf --max-time 5 "$1" >/dev/null; }

# The part of `up` after the control plane is ready.
node_up() {
  local d="$STATE/node" start=$SECONDS
  mkdir -p "$d/containerd" "$d/kubelet" "$d/pod-logs"
  echo "$NAME" > "$NODE_OWNER_FILE"
  node_save_sysctls
  node_note_host_dirs
  # Forwarding: a pod reaching a Service whose endpoint is another pod on the same bridge is
  # DNATed and routed back out of the bridge; br_netfilter makes bridged traffic see iptables.
  [[ -d /proc/sys/net/bridge ]] || modprobe br_netfilter 2>/dev/null ||
    log "warning: br_netfilter is not available; pod -> ClusterIP -> pod on this node may fail"
  echo 1 > /proc/sys/net/ipv4/ip_forward
  if [[ -d /proc/sys/net/bridge ]]; then
    echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
    echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables
  fi
  write_containerd_config; write_cni_config; write_kubelet_config; write_kube_proxy_config; write_corefile

  start_proc containerd env PATH="$BIN:$PATH" "$BIN/containerd" --config "$d/containerd/config.toml" --log-level warn
  wait_for containerd "the containerd socket" containerd_ready
  "$SCRIPT_DIR/images.sh" --name "$NAME" pause 7>&- 8>&- 9>&- || die "could not import the pause image"

  start_proc kubelet "$BIN/kubelet" --config="$d/kubelet.yaml" --kubeconfig="$STATE/node.kubeconfig" \
    --root-dir="$d/kubelet" --cert-dir="$d/kubelet/pki" \
    --hostname-override="$(node_name)" --node-ip="$NODE_IP" --v=1
  start_proc kube-proxy "$BIN/kube-proxy" --config="$d/kube-proxy.yaml" --v=1
  start_proc coredns "$BIN/coredns" -conf "$d/Corefile"
  wait_for kubelet "kubelet /healthz" http_ok "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for kubelet "Node $(node_name) to be Ready" node_ready
  wait_for kube-proxy "kube-proxy /healthz" http_ok "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  wait_for coredns "CoreDNS /ready" http_ok "http://127.0.0.1:$DNS_READY_PORT/ready"
  log "node $(node_name) ready in $((SECONDS - start))s (containerd $CONTAINERD_VERSION, CoreDNS $COREDNS_VERSION at $NODE_IP:53, pods in $POD_CIDR)"
}

node_running() {
  local c
  for c in "${NODE_COMPONENTS[@]}"; do is_ours "$(pid_of "$c")" || return 1; done
}

# Delete every pod through the API so that the kubelet stops them the normal way (CNI DEL
# releases addresses and portmap rules); the controllers must be stopped first.
node_drain() {
  local deadline=$((SECONDS + 30)) left start=$SECONDS
  api_ready 2>/dev/null && is_ours "$(pid_of kubelet)" && is_ours "$(pid_of containerd)" || return 0
  left=$(ctr_cmd tasks ls -q 2>/dev/null | wc -l)
  (( left > 0 )) || return 0
  log "deleting every pod ($left containers, pause included, running)"
  "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" delete pods --all --all-namespaces \
    --grace-period=0 --force --wait=false --request-timeout=10s >/dev/null 2>&1 || true
  while left=$(ctr_cmd tasks ls -q 2>/dev/null | wc -l) && (( left > 0 && SECONDS < deadline )); do sleep 0.5; done
  if (( left == 0 )); then log "pods stopped by the kubelet in $((SECONDS - start))s"
  else log "$left containers still running after 30s; killing them"; fi
}

# Stop what is left without the kubelet: kill tasks, the shims, unmount, and undo host changes.
node_cleanup() {
  local d="$STATE/node" t pid m
  if [[ -S "$(containerd_sock)" ]] && is_ours "$(pid_of containerd)"; then
    for t in $(ctr_cmd tasks ls -q 2>/dev/null); do ctr_cmd tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  fi
  stop_component containerd
  # Shims outlive containerd by design; ours name our socket on their command line.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $(containerd_sock)" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Container processes whose shim is gone are reparented; find them by their cgroup.
  for pid in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the state dir (rootfs overlays, pod volumes, netns), deepest first.
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  node_cleanup_iptables
  node_cleanup_cgroups
  node_restore_sysctls
  node_cleanup_host_dirs
  [[ "$(cat "$NODE_OWNER_FILE" 2>/dev/null)" == "$NAME" ]] && rm -f "$NODE_OWNER_FILE"
  return 0
}

# Remove the KUBE-* (kubelet, kube-proxy) and CNI-* (portmap, bridge) chains and every rule
# that jumps to them, in IPv4 and IPv6, every table.
node_cleanup_iptables() {
  local ipt t rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$ipt-save" -t "$t" >/dev/null 2>&1 || continue
      while IFS= read -r rule; do
        # shellcheck disable=SC2086 # the saved rule is re-split into its arguments
        eval "$ipt -w -t $t -D ${rule#-A }" 2>/dev/null || true
      done < <("$ipt-save" -t "$t" | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE-|CNI-)')
      for chain in $("$ipt-save" -t "$t" | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\) .*/\1/p'); do
        "$ipt" -w -t "$t" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt-save" -t "$t" | sed -n 's/^:\(\(KUBE\|CNI\)-[^ ]*\) .*/\1/p'); do
        "$ipt" -w -t "$t" -X "$chain" 2>/dev/null || true
      done
    done
  done
  # kube-proxy (even in iptables mode) and the kubelet may create nftables tables named kube-proxy.
  if command -v nft >/dev/null; then
    local fam
    for fam in ip ip6; do nft delete table "$fam" kube-proxy 2>/dev/null || true; done
  fi
}

# The kubelet's QoS and pod cgroups (cgroupfs driver): /sys/fs/cgroup/<hierarchy>/kubepods.
node_cleanup_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "$h" ]] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || log "could not remove every cgroup under $h"
  done
}

# `down` of a node instance: controllers first (nothing recreates pods), pods through the API,
# then the node's processes, then the host changes; the apiserver and etcd after that.
node_down() {
  stop_component kube-scheduler
  stop_component kube-controller-manager
  node_drain
  stop_component kube-proxy
  stop_component coredns
  stop_component kubelet
  node_cleanup
}
