# Installs what the test suites need, when it is missing. Sourced by tests/run-all.sh.
#
# System packages come from Debian (redis-server and redis-tools are the oracle and the CLI
# clients; openssl makes test certificates; iproute2 (ip, tc), iptables and kmod (modprobe)
# build the fault tests' network).
# Python packages are pinned in tests/compat/requirements.txt.

SYNCMESH_APT_PACKAGES=(redis-server redis-tools openssl iproute2 iptables kmod curl
    containernetworking-plugins conntrack gcc libc6-dev pkg-config libseccomp-dev busybox-static)

install_test_dependencies() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v tc >/dev/null || missing+=(iproute2)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v curl >/dev/null || missing+=(curl)
    [[ $(id -u) -ne 0 ]] || command -v modprobe >/dev/null || missing+=(kmod)
    # The node suite (tests/k8s/node-smoke.sh, cluster.sh up --node): CNI plugins, conntrack for
    # kube-proxy, gcc + libseccomp for runc and the pause image, busybox for a toolbox image.
    [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/portmap ]] || missing+=(containernetworking-plugins)
    command -v conntrack >/dev/null || missing+=(conntrack)
    command -v gcc >/dev/null || missing+=(gcc libc6-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    [[ -f /usr/include/seccomp.h ]] || missing+=(libseccomp-dev)
    [[ -x /bin/busybox ]] || missing+=(busybox-static)
    if ((${#missing[@]} > 0)); then
        echo "installing: ${missing[*]}"
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null || return 1
    fi
    # A packaged redis-server may have started as a service; the tests start their own.
    python3 -c 'import redis, pytest' 2>/dev/null \
        || python3 -m pip install -q -r "$repo/tests/compat/requirements.txt" || return 1
    # The frameworks suite: Node.js and npm (BullMQ, node-redlock, rate-limiter-flexible); its
    # packages are pinned in tests/frameworks (package-lock.json, requirements.txt).
    command -v node >/dev/null && command -v npm >/dev/null || {
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
    } || return 1
    python3 -c 'import celery' 2>/dev/null \
        || python3 -m pip install -q -r "$repo/tests/frameworks/requirements.txt" || return 1
    command -v cargo >/dev/null || { echo "cargo (Rust) is required" >&2; return 1; }
    load_fault_modules
    return 0
}

# The kernel features tests/faults uses. Most kernels load them on demand; where they are modules,
# load them now (a kernel without module files, e.g. in a VM with everything built in, is fine).
# sch_netem is optional: without it the harness slows links with tbf and says so.
# tests/faults/run.sh checks what it needs and fails with a clear message if something is absent.
load_fault_modules() {
    [[ $(id -u) -eq 0 ]] && command -v modprobe >/dev/null && [[ -d /lib/modules/$(uname -r) ]] || return 0
    local m
    for m in veth bridge nf_tables nft_compat xt_statistic sch_tbf sch_netem; do
        modprobe -q "$m" 2>/dev/null || true
    done
}
