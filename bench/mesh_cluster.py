"""Helpers of bench/mesh.sh: start and stop syncmesh-replica processes as a mesh, talk RESP
over raw sockets, read /readyz, /metrics and /status.

Every process started here is written to $MESH_BENCH_PIDFILE (one pid a line) so that mesh.sh
can kill whatever is left even if Python dies; Python also kills them itself (stop_all).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPLICA_BIN = os.environ.get("SYNCMESH_REPLICA_BIN") or os.path.join(REPO, "target/release/syncmesh-replica")
WORKDIR = os.environ.get("MESH_BENCH_WORKDIR") or "/tmp"
PIDFILE = os.environ.get("MESH_BENCH_PIDFILE")

_children = []  # every Popen started by this process, to stop at the end


def register(proc):
    _children.append(proc)
    if PIDFILE:
        with open(PIDFILE, "a") as f:
            f.write(f"{proc.pid}\n")


def stop(procs, grace=5.0):
    """SIGTERM, then SIGKILL after `grace` seconds, for each process (not yet exited)."""
    procs = [p for p in procs if p.poll() is None]
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all():
    stop(_children)


def _term_handler(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers():
    """SIGTERM (from `timeout` or mesh.sh) unwinds like Ctrl-C, so `finally` blocks run."""
    signal.signal(signal.SIGTERM, _term_handler)


_used_ports = set()


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port


# ---------------------------------------------------------------- RESP over a raw socket


class Conn:
    """A minimal blocking RESP client: pre-encoded commands, one reply at a time (no redis-py
    overhead in the measured loops)."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return RespError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(f"bad RESP line {line!r}")

    def call(self, *args):
        self.sock.sendall(encode(*args))
        r = self.reply()
        if isinstance(r, RespError):
            raise r
        return r


class RespError(Exception):
    pass


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# ---------------------------------------------------------------- admin HTTP


def http_get(port, path, timeout=2.0):
    """(status, body) or (None, error text)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except OSError as e:
        return None, str(e)


def readyz_fast(port):
    """True when GET /readyz answers 200; a raw socket (cheaper than http.client)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def metrics(port):
    """Prometheus text -> {name: value} for unlabelled series."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics on admin port {port}: {status} {body!r}")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def status_json(port):
    status, body = http_get(port, "/status")
    if status != 200:
        raise RuntimeError(f"/status on admin port {port}: {status} {body!r}")
    return json.loads(body)


# ---------------------------------------------------------------- replicas


class Replica:
    def __init__(self, name, mesh=True):
        self.name = name
        self.port, self.admin, self.mesh_port = free_port(), free_port(), free_port()
        self.mesh = mesh
        self.proc = None
        self.log = os.path.join(WORKDIR, f"{name}.log")
        self.t_spawn = None

    @property
    def mesh_addr(self):
        return f"127.0.0.1:{self.mesh_port}"

    def spawn(self, peers=(), extra=()):
        if not os.access(REPLICA_BIN, os.X_OK):
            sys.exit(f"replica binary not found: {REPLICA_BIN} (set SYNCMESH_REPLICA_BIN)")
        cmd = [REPLICA_BIN, "--bind", "127.0.0.1", "--port", str(self.port),
               "--admin-port", str(self.admin), "--admin-bind", "127.0.0.1",
               "--mesh-port", str(self.mesh_port), "--mesh-bind", "127.0.0.1"]
        if self.mesh:
            cmd += ["--mesh-insecure", "--bootstrap-timeout-ms", "300"]
            if peers:
                cmd += ["--peers", ",".join(peers)]
        cmd += list(extra)
        logf = open(self.log, "ab")
        self.t_spawn = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        logf.close()
        register(self.proc)
        return self

    def wait_ready(self, timeout=30.0, poll=0.001):
        """Seconds from spawn until /readyz answered 200."""
        deadline = time.perf_counter() + timeout
        while True:
            if readyz_fast(self.admin):
                return time.perf_counter() - self.t_spawn
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n{tail(self.log)}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; log:\n{tail(self.log)}")
            time.sleep(poll)

    def conn(self):
        return Conn(self.port)

    def cmd(self, *args):
        c = self.conn()
        try:
            return c.call(*args)
        finally:
            c.close()

    def dbsize(self):
        return self.cmd("DBSIZE")

    def digest(self):
        return self.cmd("SYNCMESH.DIGEST")

    def info_mesh(self):
        text = self.cmd("INFO", "mesh").decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def metrics(self):
        return metrics(self.admin)

    def status(self):
        return status_json(self.admin)

    def stop(self):
        if self.proc:
            stop([self.proc])


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


def start_mesh(n, prefix="r", extra=(), connect_timeout=30.0):
    """n replicas, each seeded with every mesh address (as the project's tests do); waits for
    /readyz on all and for mesh_peers_connected == n-1 everywhere. Returns (replicas, seconds to
    full connectivity, problems)."""
    rs = [Replica(f"{prefix}{i}") for i in range(n)]
    seeds = [r.mesh_addr for r in rs]
    t0 = time.perf_counter()
    for r in rs:
        r.spawn(peers=seeds, extra=extra)
    for r in rs:
        r.wait_ready()
    problems = []
    deadline = time.perf_counter() + connect_timeout
    while True:
        counts = [int(r.info_mesh().get("mesh_peers_connected", -1)) for r in rs]
        if all(c == n - 1 for c in counts):
            break
        if time.perf_counter() > deadline:
            problems.append(f"{n}-replica mesh: mesh_peers_connected = {counts} after "
                            f"{connect_timeout:.0f} s (expected {n - 1} everywhere)")
            break
        time.sleep(0.02)
    return rs, time.perf_counter() - t0, problems


def converged(rs):
    """(all digests equal, all version vectors equal, digests, dbsizes)"""
    digests = [r.digest() for r in rs]
    vvs = [r.status().get("version_vector") for r in rs]
    return (all(d == digests[0] for d in digests), all(v == vvs[0] for v in vvs), digests,
            [r.dbsize() for r in rs])


def wait_converged(rs, timeout=30.0, poll=0.005):
    """Seconds until every replica shows the same version vector (every replica applied what
    every other applied), confirmed by equal SYNCMESH.DIGESTs; None on timeout. The clock stops
    when the version vectors first agree (the digest is a full scan, checked afterwards)."""
    t0 = time.perf_counter()
    while True:
        vvs = [r.status().get("version_vector") for r in rs]
        now = time.perf_counter()
        if all(v == vvs[0] for v in vvs):
            digests = [r.digest() for r in rs]
            if all(d == digests[0] for d in digests):
                return now - t0
        if now - t0 > timeout:
            return None
        time.sleep(poll)


def log_problems(rs, max_lines=5):
    """WARN/ERROR/panic lines of the replicas' logs, apart from the expected --mesh-insecure
    warning. Returns a list of strings."""
    out = []
    for r in rs:
        try:
            with open(r.log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        bad = [l for l in lines
               if any(w in l for w in ("WARN", "ERROR", "panicked", "error"))
               and "WITHOUT TLS" not in l]
        if bad:
            out.append(f"{r.name}: {len(bad)} warning/error lines, e.g.:")
            out.extend("    " + l.strip()[:300] for l in bad[:max_lines])
        if r.proc is not None and r.proc.poll() not in (None, 0, -signal.SIGTERM):
            out.append(f"{r.name}: exited with status {r.proc.returncode}")
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)
