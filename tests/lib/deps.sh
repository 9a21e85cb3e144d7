# Installs what the test suites need, when it is missing. Sourced by tests/run-all.sh.
#
# System packages come from Debian (redis-server and redis-tools are the oracle and the CLI
# clients; openssl makes test certificates; iproute2/iptables build the fault tests' network).
# Python packages are pinned in tests/compat/requirements.txt.

SYNCMESH_APT_PACKAGES=(redis-server redis-tools openssl iproute2 iptables curl
    containernetworking-plugins conntrack gcc libc6-dev pkg-config libseccomp-dev busybox-static)

install_test_dependencies() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v curl >/dev/null || missing+=(curl)
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
    command -v cargo >/dev/null || { echo "cargo (Rust) is required" >&2; return 1; }
    return 0
}
