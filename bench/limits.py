#!/usr/bin/env python3
"""Request limits and large values: redis-server vs syncmesh-replica, side by side, same run.

    bench/limits.py                       # every scenario
    bench/limits.py drip bigvalue         # some of them
    BENCH_BIG_MB=100 bench/limits.py bigvalue

Scenarios (each starts fresh servers, so peak figures are per scenario):

  drip      CPU time each server spends on one RPUSH of 100k and of 400k arguments sent in 4 KiB
            pieces, 1 ms apart (so each piece is a read of its own). utime+stime from
            /proc/PID/stat. Goal: replica <= 2x redis for 400k; replica's 400k/100k near 4 (linear).
  bigvalue  Peak RSS (VmHWM) after SET of a BENCH_BIG_MB (default 500) MB value followed by GET of
            it. Goal: replica <= 1.2x redis.
  idle      RSS of 10 clients that each SET a 20 MB value and then stay connected, idle, for 5 s
            (read buffers given back while idle).
  del       The longest a PING from another client waits while a 1M-element list is deleted:
            DEL (lazyfree-lazy-user-del no, Redis's default), UNLINK, and DEL with
            lazyfree-lazy-user-del yes. Goal: a few ms with UNLINK.
  unauth    With --requirepass: RSS after an unauthenticated client announces a 300 MB argument and
            sends it. Redis 7.0 refuses it at the header (16 KiB limit before AUTH).

Environment: SYNCMESH_REPLICA_BIN (default target/release/syncmesh-replica), REDIS_SERVER
(default redis-server), SYNCMESH_BENCH_TARGET=redis runs a second redis-server in the replica's
place (to try the script), BENCH_BIG_MB.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPLICA_BIN = os.environ.get("SYNCMESH_REPLICA_BIN", str(REPO / "target/release/syncmesh-replica"))
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")
TARGET = os.environ.get("SYNCMESH_BENCH_TARGET", "replica")
BIG_MB = int(os.environ.get("BENCH_BIG_MB", "500"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kind: str, extra=()):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="syncmesh-limits-")
        if kind == "redis":
            cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self.dir]
            cmd += [a for pair in extra for a in (f"--{pair[0]}", pair[1])]
        else:
            cmd = [REPLICA_BIN, "--bind", "127.0.0.1", "--port", str(self.port),
                   "--admin-port", str(free_port()), "--admin-bind", "127.0.0.1",
                   "--mesh-port", str(free_port()), "--mesh-bind", "127.0.0.1", "--mesh-insecure"]
            cmd += [a for pair in extra for a in (f"--{pair[0]}", pair[1])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.password = dict(extra).get("requirepass")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(100):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{kind} did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def connect(self) -> "Conn":
        c = Conn(self.port)
        if self.password:
            assert c.cmd("AUTH", self.password) == b"+OK\r\n"
        return c


def encode(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self) -> bytes:
        """One reply (simple types and bulk strings; a bulk's payload is skipped, not kept)."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, rest = self.buf.partition(b"\r\n")
        if line[:1] == b"$" and int(line[1:]) >= 0:
            need = int(line[1:]) + 2
            self.buf = rest
            while need > 0:
                if not self.buf:
                    self._fill()
                take = min(need, len(self.buf))
                self.buf = self.buf[take:]
                need -= take
            return line + b"\r\n"
        self.buf = rest
        return line + b"\r\n"

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def cmd(self, *args) -> bytes:
        self.sock.sendall(encode(*args))
        return self.reply()

    def close(self):
        self.sock.close()


def servers():
    return [("redis", "redis"), (TARGET if TARGET == "redis" else "replica", TARGET)]


def ratio(a, b):
    return f"{b / a:.2f}" if a else "n/a"


# ------------------------------------------------------------------ scenarios

def drip():
    print("drip: CPU seconds for one RPUSH sent in 4 KiB pieces, 1 ms apart")
    results = {}
    for n in (100_000, 400_000):
        request = encode("RPUSH", "drip", *(f"element:{i:08d}" for i in range(n)))
        for label, kind in servers():
            with Server(kind) as s:
                c = s.connect()
                before = s.cpu()
                for at in range(0, len(request), 4096):
                    c.sock.sendall(request[at:at + 4096])
                    time.sleep(0.001)
                assert c.reply() == b":%d\r\n" % n
                results[(label, n)] = s.cpu() - before
                c.close()
        r, t = results[("redis", n)], results[(servers()[1][0], n)]
        print(f"  {n:>7} args ({len(request) / 1e6:.1f} MB): redis {r:.2f} s, replica {t:.2f} s, "
              f"ratio {ratio(r, t)}")
    t1, t4 = results[(servers()[1][0], 100_000)], results[(servers()[1][0], 400_000)]
    print(f"  replica 400k/100k: {ratio(t1, t4)} (4 = linear)")


def bigvalue():
    size = BIG_MB << 20
    print(f"bigvalue: peak RSS (VmHWM) around SET and GET of a {BIG_MB} MB value")
    piece = b"v" * (1 << 20)
    peaks = {}
    for label, kind in servers():
        with Server(kind) as s:
            base = s.status("VmRSS")
            c = s.connect()
            c.sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % size)
            for _ in range(BIG_MB):
                c.sock.sendall(piece)
            c.sock.sendall(b"\r\n")
            assert c.reply() == b"+OK\r\n"
            after_set = s.status("VmHWM")
            assert c.cmd("GET", "big") == b"$%d\r\n" % size
            peak = s.status("VmHWM")
            peaks[label] = peak
            print(f"  {label:8} start {base / 2**20:7.1f} MB, peak after SET {after_set / 2**20:7.1f} MB, "
                  f"after GET {peak / 2**20:7.1f} MB")
            c.close()
    print(f"  ratio replica/redis (peak): {ratio(peaks['redis'], peaks[servers()[1][0]])}")


def idle():
    print("idle: RSS with 10 idle clients that each SET a 20 MB value")
    value = b"i" * (20 << 20)
    for label, kind in servers():
        with Server(kind) as s:
            conns = []
            for i in range(10):
                c = s.connect()
                assert c.cmd("SET", f"idle:{i}", value) == b"+OK\r\n"
                conns.append(c)
            right_after = s.status("VmRSS")
            time.sleep(5)
            later = s.status("VmRSS")
            print(f"  {label:8} right after {right_after / 2**20:7.1f} MB, after 5 s idle {later / 2**20:7.1f} MB")
            for c in conns:
                c.close()


def fill_list(c: Conn, key: str, n: int):
    batch = 1000
    for start in range(0, n, batch):
        c.sock.sendall(encode("RPUSH", key, *(f"e{i}" for i in range(start, start + batch))))
    for _ in range(0, n, batch):
        c.reply()


def del_latency():
    print("del: longest PING wait (ms) of another client while a 1M-element list is deleted")
    import threading
    for label, kind in servers():
        with Server(kind) as s:
            rows = []
            for name, setup, command in [
                ("DEL", "no", "DEL"),
                ("UNLINK", "no", "UNLINK"),
                ("DEL lazyfree-lazy-user-del yes", "yes", "DEL"),
            ]:
                c = s.connect()
                assert c.cmd("CONFIG", "SET", "lazyfree-lazy-user-del", setup) == b"+OK\r\n"
                fill_list(c, "biglist", 1_000_000)
                pinger = s.connect()
                worst = [0.0]
                stop = threading.Event()

                def ping_loop():
                    while not stop.is_set():
                        t = time.perf_counter()
                        pinger.cmd("PING")
                        worst[0] = max(worst[0], time.perf_counter() - t)

                th = threading.Thread(target=ping_loop)
                th.start()
                time.sleep(0.2)
                worst[0] = 0.0
                t = time.perf_counter()
                assert c.cmd(command, "biglist") == b":1\r\n"
                took = time.perf_counter() - t
                time.sleep(0.3)
                stop.set()
                th.join()
                rows.append(f"{name}: command {took * 1000:.1f} ms, worst PING {worst[0] * 1000:.1f} ms")
                c.close()
                pinger.close()
            for r in rows:
                print(f"  {label:8} {r}")


def unauth():
    print("unauth: RSS after an unauthenticated client sends a 300 MB argument (--requirepass)")
    for label, kind in servers():
        with Server(kind, extra=[("requirepass", "secret")]) as s:
            before = s.status("VmRSS")
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (300 << 20))
            sent = 0
            piece = b"u" * (1 << 20)
            try:
                while sent < 300 << 20:
                    sock.sendall(piece)
                    sent += len(piece)
            except OSError:
                pass
            got = b""
            try:
                sock.settimeout(2)
                got = sock.recv(200)
            except OSError:
                pass
            after = s.status("VmRSS")
            print(f"  {label:8} sent {sent >> 20} MB before the server closed; reply {got[:60]!r}; "
                  f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MB")
            sock.close()


SCENARIOS = {"drip": drip, "bigvalue": bigvalue, "idle": idle, "del": del_latency, "unauth": unauth}

if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    for n in names:
        SCENARIOS[n]()
