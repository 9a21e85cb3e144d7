"""The write path as sidecars run it, against redis-server as people run it, side by side.

    python3 bench/mesh_write.py                      # every part
    python3 bench/mesh_write.py throughput three     # some parts
    BENCH_ROUNDS=3 BENCH_N=200000 python3 bench/mesh_write.py throughput

Parts (each prints a table; ratios are replica / redis-server measured in this run):

- throughput: a two-replica mesh (redis-benchmark writes to r0 while r1 applies what r0
  streams) against redis-server with one replica attached (`replicaof`), `-c 50`, `-P 1` and
  `-P 16`, for SET GET INCR(one hot key) HSET LPUSH RPOP SADD ZADD XADD. Runs alternate
  (redis, mesh, redis, mesh, ...); each mesh run waits until r1 holds everything, and that
  catch-up time is printed too. Goal: >= 0.9.
- three: three replicas written at once (one redis-benchmark per replica), per replica, against
  the two-replica figure of the same run. Goal: >= 0.8.
- hot-incr: INCR of one key with a peer attached, ops/s per million increments. Goal: flat.
  (BENCH_HOT_MILLIONS, default 10.)
- wire: bytes on the wire per replicated SET of a 16-byte value (the mesh's
  syncmesh_mesh_bytes_sent) against redis-server's replication stream (master_repl_offset
  growth). Goal: <= 1.2.
- memory: RSS per key with 1M keys (12-byte keys, 16-byte values) on r0 of a two-replica mesh
  against redis-server with a replica. Goal: <= 1.5.
- delay: replication delay (SET on r0, until the value is readable on r1) p50/p99 while
  redis-benchmark writes to r0 at half of the throughput part's SET -P 1 rate. Goal: p99 < 1 ms.

Needs redis-server, redis-benchmark, redis-cli and a release build of the replica
(SYNCMESH_REPLICA_BIN, default target/release/syncmesh-replica).
"""

import hashlib
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mesh_cluster as mc  # noqa: E402

N = int(os.environ.get("BENCH_N", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "50"))
REDIS = os.environ.get("REDIS_SERVER", "redis-server")

# name -> redis-benchmark arguments after the common ones
TESTS = {
    "SET": ["-r", "100000", "-t", "set"],
    "GET": ["-r", "100000", "-t", "get"],
    "INCR": ["INCR", "counter"],
    "HSET": ["-r", "100000", "-t", "hset"],
    "LPUSH": ["-t", "lpush"],
    "RPOP": ["-t", "rpop"],
    "SADD": ["-r", "100000", "-t", "sadd"],
    "ZADD": ["-r", "100000", "-t", "zadd"],
    "XADD": ["XADD", "s", "*", "f", "v"],
}

# Issue 12's rate limiter, loaded on both sides before the throughput part.
RATE_LIMITER = ("local n = redis.call('INCR', KEYS[1]) "
                "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n")
TESTS["EVALSHA"] = ["-r", "100000", "EVALSHA", hashlib.sha1(RATE_LIMITER.encode()).hexdigest(), "1",
                    "rl:__rand_int__", "60000"]


class RedisPair:
    """redis-server with one replica attached."""

    def __init__(self):
        self.procs = []
        self.port = self._start()
        self.replica_port = self._start("--replicaof", "127.0.0.1", str(self.port))
        deadline = time.monotonic() + 10
        while b"master_link_status:up" not in self.info("replication", self.replica_port):
            if time.monotonic() > deadline:
                raise RuntimeError("the redis replica did not attach")
            time.sleep(0.05)

    def _start(self, *extra):
        port = mc.free_port()
        p = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", mc.WORKDIR, "--logfile", "", *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mc.register(p)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while True:
            try:
                mc.Conn(port).call("PING")
                return port
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def info(self, section, port=None):
        return mc.Conn(port or self.port).call("INFO", section)

    def offset(self):
        m = re.search(rb"master_repl_offset:(\d+)", self.info("replication"))
        return int(m.group(1))

    def caught_up(self):
        text = self.info("replication")
        m = re.search(rb"slave0:.*offset=(\d+)", text)
        return m is not None and int(m.group(1)) >= self.offset()

    def flush(self):
        mc.Conn(self.port).call("FLUSHALL")

    def rss(self):
        return rss_of(self.procs[0].pid)

    def stop(self):
        mc.stop(self.procs)


class MeshPair:
    """n replicas of one database on loopback."""

    def __init__(self, n=2):
        self.rs, _, problems = mc.start_mesh(n)
        if problems:
            raise RuntimeError("; ".join(problems))
        self.port = self.rs[0].port

    def caught_up(self):
        vvs = [r.status().get("version_vector") for r in self.rs]
        return all(v == vvs[0] for v in vvs)

    def wait(self, timeout=120.0):
        t0 = time.perf_counter()
        while not self.caught_up():
            if time.perf_counter() - t0 > timeout:
                return None
            time.sleep(0.005)
        return time.perf_counter() - t0

    def flush(self):
        self.rs[0].cmd("FLUSHALL")
        self.wait()

    def rss(self):
        return rss_of(self.rs[0].proc.pid)

    def stop(self):
        for r in self.rs:
            r.stop()


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def benchmark(port, args, pipeline, n=N, clients=CLIENTS):
    """ops/s of one redis-benchmark run (CSV output)."""
    cmd = ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(n), "-P", str(pipeline),
           "--csv", "-q", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    rates = []
    for line in out.stdout.splitlines():
        parts = [p.strip('"') for p in line.split(",")]
        if len(parts) >= 2 and parts[0] != "test":
            try:
                rates.append(float(parts[1]))
            except ValueError:
                pass
    if not rates or "ERR" in out.stdout or "ERR" in out.stderr:
        raise RuntimeError(f"redis-benchmark {' '.join(args)} failed: {out.stdout[-300:]} {out.stderr[-300:]}")
    return rates[0]


def part_throughput(redis, mesh):
    print(f"\n## throughput: two-replica mesh vs redis-server + replica (-c {CLIENTS}, -n {N}, "
          f"{ROUNDS} rounds, alternating)")
    print(f"| command | -P | redis ops/s | mesh ops/s | ratio | mesh catch-up s |")
    print("| --- | --: | --: | --: | --: | --: |")
    results = {}
    for port in (redis.port, mesh.port):
        mc.Conn(port).call("SCRIPT", "LOAD", RATE_LIMITER)
    for pipeline in (1, 16):
        for name, args in TESTS.items():
            r_rates, m_rates, catch = [], [], []
            for _ in range(ROUNDS):
                if name == "RPOP":  # something to pop on both
                    benchmark(redis.port, TESTS["LPUSH"], 16)
                    benchmark(mesh.port, TESTS["LPUSH"], 16)
                r_rates.append(benchmark(redis.port, args, pipeline))
                m_rates.append(benchmark(mesh.port, args, pipeline))
                catch.append(mesh.wait() or float("nan"))
            r, m = sum(r_rates) / len(r_rates), sum(m_rates) / len(m_rates)
            results[(name, pipeline)] = (r, m)
            print(f"| {name} | {pipeline} | {r:,.0f} | {m:,.0f} | {m / r:.2f} | {max(catch):.2f} |", flush=True)
    return results


def part_three(redis, mesh2, two):
    print("\n## three: three replicas written at once, per replica, vs the two-replica mesh")
    mesh3 = MeshPair(3)
    try:
        print("| command | -P | 2-replica ops/s | 3 writers, per replica | ratio |")
        print("| --- | --: | --: | --: | --: |")
        for pipeline in (1, 16):
            for name in ("SET", "INCR", "HSET", "XADD"):
                rates = []
                threads = [threading.Thread(target=lambda r=r: rates.append(
                    benchmark(r.port, TESTS[name], pipeline))) for r in mesh3.rs]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                mesh3.wait()
                per = sum(rates) / len(rates)
                base = two.get((name, pipeline), (None, None))[1] or benchmark(mesh2.port, TESTS[name], pipeline)
                print(f"| {name} | {pipeline} | {base:,.0f} | {per:,.0f} | {per / base:.2f} |", flush=True)
    finally:
        mesh3.stop()


def part_hot_incr(mesh):
    millions = int(os.environ.get("BENCH_HOT_MILLIONS", "10"))
    print(f"\n## hot-incr: INCR of one key on r0 of a two-replica mesh, {millions}M increments")
    print("| million | ops/s |")
    print("| --: | --: |")
    mesh.rs[0].cmd("DEL", "hot")
    for i in range(millions):
        rate = benchmark(mesh.port, ["INCR", "hot"], 16, n=1_000_000)
        print(f"| {i + 1} | {rate:,.0f} |", flush=True)
    mesh.wait()
    print(f"value on r1: {mesh.rs[1].cmd('GET', 'hot').decode()}")


def part_wire(redis, mesh):
    n = 100_000
    print(f"\n## wire: bytes per replicated SET (12-byte keys, 16-byte values), {n} SETs")
    before = redis.offset()
    benchmark(redis.port, ["-r", "1000000", "-d", "16", "-t", "set"], 16, n=n)
    redis_bytes = (redis.offset() - before) / n
    m = mesh.rs[0].metrics()
    sent0 = m.get("syncmesh_mesh_bytes_sent", 0)
    benchmark(mesh.port, ["-r", "1000000", "-d", "16", "-t", "set"], 16, n=n)
    mesh.wait()
    mesh_bytes = (mesh.rs[0].metrics().get("syncmesh_mesh_bytes_sent", 0) - sent0) / n
    print("| redis-server replication stream | mesh | ratio |")
    print("| --: | --: | --: |")
    print(f"| {redis_bytes:.1f} B/SET | {mesh_bytes:.1f} B/SET | {mesh_bytes / redis_bytes:.2f} |")


def load_keys(port, n):
    lines = [mc.encode("SET", b"key:%08d" % i, b"v" * 16) for i in range(n)]
    c = mc.Conn(port, timeout=120)
    batch = 10_000
    for i in range(0, n, batch):
        c.sock.sendall(b"".join(lines[i:i + batch]))
        for _ in range(min(batch, n - i)):
            c.reply()
    c.close()


def part_memory(redis, mesh):
    n = 1_000_000
    print(f"\n## memory: RSS per key, {n:,} keys (12-byte keys, 16-byte values)")
    redis.flush()
    mesh.flush()
    time.sleep(1)
    r0, m0 = redis.rss(), mesh.rss()
    load_keys(redis.port, n)
    load_keys(mesh.port, n)
    mesh.wait()
    time.sleep(2)  # a stability pass or two: log entries and metadata collected
    r1, m1 = redis.rss(), mesh.rss()
    rk, mk = (r1 - r0) / n, (m1 - m0) / n
    print("| redis-server (with a replica) | mesh r0 (with a peer) | ratio |")
    print("| --: | --: | --: |")
    print(f"| {rk:.1f} B/key | {mk:.1f} B/key | {mk / rk:.2f} |")
    redis.flush()
    mesh.flush()


def part_delay(mesh, set_rate):
    target = set_rate / 2
    print(f"\n## delay: SET on r0 until readable on r1, while r0 takes ~{target:,.0f} SET/s")
    stop = threading.Event()

    def load():
        c = mc.Conn(mesh.port)
        per_batch = 100
        i = 0
        t0 = time.perf_counter()
        while not stop.is_set():
            c.sock.sendall(b"".join(mc.encode("SET", b"load:%d" % ((i + k) % 100000), b"x" * 16)
                                    for k in range(per_batch)))
            for _ in range(per_batch):
                c.reply()
            i += per_batch
            ahead = i / target - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)

    threads = [threading.Thread(target=load) for _ in range(2)]
    target /= 2
    for t in threads:
        t.start()
    w, r = mc.Conn(mesh.rs[0].port), mc.Conn(mesh.rs[1].port)
    samples = []
    try:
        for i in range(500):
            key = b"delay:%d" % i
            t0 = time.perf_counter()
            w.call("SET", key, b"1")
            while r.call("GET", key) is None:
                pass
            samples.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.002)
    finally:
        stop.set()
        for t in threads:
            t.join()
    samples.sort()
    print("| p50 ms | p99 ms | max ms |")
    print("| --: | --: | --: |")
    print(f"| {mc.percentile(samples, 50):.3f} | {mc.percentile(samples, 99):.3f} | {samples[-1]:.3f} |")


def main():
    mc.install_signal_handlers()
    parts = sys.argv[1:] or ["throughput", "three", "hot-incr", "wire", "memory", "delay"]
    print(f"# mesh write path vs redis-server, {time.strftime('%Y-%m-%d %H:%M')}, replica {mc.REPLICA_BIN}")
    redis, mesh = RedisPair(), MeshPair(2)
    two = {}
    try:
        if "throughput" in parts:
            two = part_throughput(redis, mesh)
        if "three" in parts:
            part_three(redis, mesh, two)
        if "hot-incr" in parts:
            part_hot_incr(mesh)
        if "wire" in parts:
            part_wire(redis, mesh)
        if "memory" in parts:
            part_memory(redis, mesh)
        if "delay" in parts:
            rate = two.get(("SET", 1), (None, None))[1] or benchmark(mesh.port, TESTS["SET"], 1)
            part_delay(mesh, rate)
    finally:
        redis.stop()
        mesh.stop()
        mc.stop_all()


if __name__ == "__main__":
    main()
