"""The hosts of a fault run: one network namespace per replica, joined by veth pairs to a bridge.

    bridge namespace  <prefix>-br        br0 ── h1 ── h2 ── … (one port per host)
    host namespace    <prefix>-<name>    eth0 = 10.201.0.<n>/24, lo (the replica's client port)

The bridge lives in a namespace of its own and the subnet is never routed into the root
namespace, so two runs (different prefixes) cannot see each other and the machine's own network
is never touched. Every fault is a rule inside a host namespace: deleting the namespaces at the
end removes all of them, whatever state the run stopped in.

Faults act on traffic between hosts only (never on loopback), so the workload's clients, which
run inside each host namespace like an application container in a pod, keep reaching their
replica during partitions.
"""

import ctypes
import os
import subprocess
import threading

SUBNET = "10.201.0"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args, check=True):
    """Runs a command; raises with its stderr when it fails and check is set."""
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def enter_netns(ns):
    """Moves the calling thread (only it) into network namespace `ns`."""
    with open(f"/run/netns/{ns}") as f:
        if _libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")


class Host:
    def __init__(self, name, ns, ip):
        self.name = name
        self.ns = ns
        self.ip = ip

    def run(self, *args, check=True):
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    def iptables(self, *args, check=True):
        return self.run("iptables", "-w", *args, check=check)


class Network:
    def __init__(self, prefix):
        self.prefix = prefix
        self.bridge_ns = f"{prefix}-br"
        self.hosts = {}
        self.namespaces = []
        self.netem = False
        self._lock = threading.Lock()
        self._rules = {}  # fault id -> [(host, rule args)]
        self._shaped = {}  # host name -> fault id holding its root qdisc

    def create(self):
        self._add_ns(self.bridge_ns)
        sh("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")

    def _add_ns(self, ns):
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def add_host(self, name):
        n = len(self.hosts) + 1
        host = Host(name, f"{self.prefix}-{name}", f"{SUBNET}.{n}")
        self._add_ns(host.ns)
        # Both ends are created directly inside their namespaces: no name in the root namespace.
        sh("ip", "link", "add", "eth0", "netns", host.ns, "type", "veth",
           "peer", "name", f"h{n}", "netns", self.bridge_ns)
        sh("ip", "-n", self.bridge_ns, "link", "set", f"h{n}", "master", "br0", "up")
        sh("ip", "-n", host.ns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        sh("ip", "-n", host.ns, "link", "set", "eth0", "up")
        # Fault rules go to one chain per host, entered for all non-loopback traffic.
        host.iptables("-N", "FAULTS")
        host.iptables("-A", "INPUT", "!", "-i", "lo", "-j", "FAULTS")
        host.iptables("-A", "OUTPUT", "!", "-o", "lo", "-j", "FAULTS")
        self.hosts[name] = host
        return host

    def probe_netem(self):
        """Whether this kernel has sch_netem (many CI and VM kernels lack it)."""
        host = next(iter(self.hosts.values()))
        ok = host.run("tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms",
                      check=False).returncode == 0
        if ok:
            host.run("tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        self.netem = ok
        return ok

    # --- faults -------------------------------------------------------------------------------

    def _add_rule(self, fid, host, rule):
        host.iptables("-A", "FAULTS", *rule)
        self._rules.setdefault(fid, []).append((host, rule))

    def drop(self, fid, src, dst):
        """Packets from host src to host dst are dropped (one way), at dst's input."""
        with self._lock:
            self._add_rule(fid, self.hosts[dst], ["-s", self.hosts[src].ip, "-j", "DROP"])

    def loss(self, fid, name, probability):
        """Host `name` loses a fraction of the packets it receives from other hosts."""
        with self._lock:
            self._add_rule(fid, self.hosts[name], [
                "-s", f"{SUBNET}.0/24", "-m", "statistic", "--mode", "random",
                "--probability", f"{probability:.2f}", "-j", "DROP"])

    def slow(self, fid, name, delay_ms):
        """Host `name`'s outgoing link gets slow: netem delay and jitter when the kernel has it,
        otherwise a token bucket (tbf) at a low rate whose queue delays what is sent beyond it.
        Returns a description of what was applied, or None if the host is already shaped."""
        with self._lock:
            if name in self._shaped:
                return None
            host = self.hosts[name]
            if self.netem:
                args = ["netem", "delay", f"{delay_ms}ms", f"{delay_ms // 4}ms"]
                what = f"netem delay {delay_ms}ms±{delay_ms // 4}ms"
            else:
                args = ["tbf", "rate", "256kbit", "burst", "4kb", "latency", f"{delay_ms}ms"]
                what = f"tbf 256kbit, queue up to {delay_ms}ms"
            host.run("tc", "qdisc", "add", "dev", "eth0", "root", *args)
            self._shaped[name] = fid
            return what

    def heal(self, fid):
        """Removes the rules and the shaping one fault added."""
        with self._lock:
            for host, rule in self._rules.pop(fid, []):
                host.iptables("-D", "FAULTS", *rule, check=False)
            for name, holder in list(self._shaped.items()):
                if holder == fid:
                    self.hosts[name].run("tc", "qdisc", "del", "dev", "eth0", "root", check=False)
                    del self._shaped[name]

    def heal_all(self):
        with self._lock:
            self._rules.clear()
            self._shaped.clear()
            for host in self.hosts.values():
                host.iptables("-F", "FAULTS", check=False)
                host.run("tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def destroy(self):
        """Deletes every namespace of the run (their links, rules and qdiscs go with them)."""
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()


def leftover_namespaces(prefix):
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix + "-")]
