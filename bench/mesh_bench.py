#!/usr/bin/env python3
"""Replication benchmarks of syncmesh-replica meshes (run by bench/mesh.sh, which sets up the
work directory and kills leftovers; see bench/README.md, "mesh.sh — replication").

Parts (MESH_BENCH_PARTS, comma-separated, default all):
  delay       replication delay A -> B (p50/p99), 3 and 10 replicas, idle and under ~10k SET/s
  throughput  redis-benchmark SET -P 16 on one replica of a 3-replica mesh vs a standalone one,
              and how long the other replicas take to catch up
  bootstrap   time to ready of a replica joining a 2-replica mesh that holds 1,000,000 keys
  wire        mesh bytes sent per replicated SET (12-byte keys, 16-byte values), 2 replicas
"""

import csv
import io
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mesh_cluster as mc  # noqa: E402


def env_int(name, default):
    return int(os.environ.get(name, default))


PARTS = [p.strip() for p in os.environ.get("MESH_BENCH_PARTS", "delay,throughput,bootstrap,wire").split(",")]
SAMPLES = env_int("MESH_BENCH_SAMPLES", 500)
IDLE_SAMPLES = env_int("MESH_BENCH_IDLE_SAMPLES", 200)
LOAD_RATE = env_int("MESH_BENCH_LOAD_RATE", 10000)
SIZES = [int(x) for x in os.environ.get("MESH_BENCH_SIZES", "3 10").split()]
BENCH_N = env_int("MESH_BENCH_N", 200000)
BENCH_ROUNDS = env_int("MESH_BENCH_ROUNDS", 2)
BENCH_KEYSPACE = env_int("MESH_BENCH_KEYSPACE", 1000000)
BOOT_KEYS = env_int("MESH_BENCH_BOOT_KEYS", 1000000)
WIRE_N = env_int("MESH_BENCH_WIRE_N", 100000)
POLL_TIMEOUT = float(os.environ.get("MESH_BENCH_POLL_TIMEOUT", "2.0"))

HERE = os.path.dirname(os.path.abspath(__file__))
results = {}     # key -> value for the summary
problems = []    # suspicious observations, printed at the end


def say(*a):
    print(*a, flush=True)


def note(msg):
    problems.append(msg)
    say(f"  !! {msg}")


def fmt(v, spec=".2f", unit=""):
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:{spec}}{unit}"


# ---------------------------------------------------------------- 1. replication delay


def probe(a, b, samples, tag):
    """SET a unique key on `a`, then GET it on `b` in a tight loop; delay = from sending the SET
    to receiving the first GET reply that has the value. Returns (delays ms, set-ack ms, lost)."""
    ca, cb = a.conn(), b.conn()
    delays, acks, lost, wrong = [], [], 0, 0
    try:
        for i in range(samples):
            key = b"probe:%s:%06d" % (tag.encode(), i)
            val = b"v%015d" % random.randrange(10**15)
            set_cmd = mc.encode(b"SET", key, val)
            get_cmd = mc.encode(b"GET", key)
            t0 = time.perf_counter()
            ca.sock.sendall(set_cmd)
            r = ca.reply()
            t_ack = time.perf_counter()
            if r != b"OK":
                raise RuntimeError(f"SET on {a.name} answered {r!r}")
            acks.append((t_ack - t0) * 1000)
            while True:
                cb.sock.sendall(get_cmd)
                r = cb.reply()
                t = time.perf_counter()
                if r is not None:
                    if r != val:
                        wrong += 1
                    delays.append((t - t0) * 1000)
                    break
                if t - t0 > POLL_TIMEOUT:
                    lost += 1
                    break
            time.sleep(random.uniform(0.002, 0.008))  # do not stay in phase with the load's ticks
    finally:
        ca.close()
        cb.close()
    if wrong:
        note(f"{tag}: {wrong} probes read a value other than the one written")
    return delays, acks, lost


def stats(values):
    s = sorted(values)
    return {"n": len(s), "p50": mc.percentile(s, 50), "p99": mc.percentile(s, 99),
            "max": s[-1] if s else float("nan")}


def part_delay(n):
    say(f"\n== replication delay, {n} replicas (write on r0, read on r{n - 1}) ==")
    rs, t_conn, probs = mc.start_mesh(n, prefix=f"delay{n}-r")
    for p in probs:
        note(p)
    say(f"  mesh of {n} up and fully connected in {t_conn:.2f} s")
    a, b = rs[0], rs[-1]
    loader = None
    try:
        d, k, lost = probe(a, b, IDLE_SAMPLES, f"idle{n}")
        s = stats(d)
        say(f"  idle:    {s['n']} samples  p50 {s['p50']:.3f} ms  p99 {s['p99']:.3f} ms  max {s['max']:.3f} ms"
            f"  (SET ack p50 {stats(k)['p50']:.3f} ms)  not seen within {POLL_TIMEOUT:.0f} s: {lost}")
        results[f"delay{n}_idle"] = s
        if lost:
            note(f"{n} replicas, idle: {lost} of {IDLE_SAMPLES} writes not visible on r{n - 1} within {POLL_TIMEOUT} s")

        loader = subprocess.Popen([sys.executable, os.path.join(HERE, "mesh_load.py"), "--port", str(a.port),
                                   "--rate", str(LOAD_RATE), "--seconds", "120"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        mc.register(loader)
        time.sleep(1.0)  # let the load reach its steady state
        m0 = [r.metrics() for r in rs]
        d, k, lost = probe(a, b, SAMPLES, f"load{n}")
        m1 = [r.metrics() for r in rs]
        loader.terminate()
        out, err = loader.communicate(timeout=10)
        try:
            load = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            load = {"rate": float("nan"), "errors": "?", "seconds": 0}
            note(f"background loader gave no result: {err.decode()[-300:]}")
        s = stats(d)
        sk = stats(k)
        say(f"  loaded:  {s['n']} samples  p50 {s['p50']:.3f} ms  p99 {s['p99']:.3f} ms  max {s['max']:.3f} ms"
            f"  (SET ack p50 {sk['p50']:.3f} ms, p99 {sk['p99']:.3f} ms)  not seen within {POLL_TIMEOUT:.0f} s: {lost}")
        say(f"  background load on r0: {load['rate']:.0f} SET/s achieved over {load['seconds']:.1f} s "
            f"(target {LOAD_RATE}/s; errors {load['errors']}, largest catch-up batch {load.get('max_batch')})")
        def delta(name, i):
            return m1[i].get(name, 0) - m0[i].get(name, 0)
        upd = delta("syncmesh_mesh_updates_sent", 0)
        byt = delta("syncmesh_mesh_bytes_sent", 0)
        upd_others = sum(delta("syncmesh_mesh_updates_sent", i) for i in range(1, n))
        byt_others = sum(delta("syncmesh_mesh_bytes_sent", i) for i in range(1, n))
        say(f"  during the probes r0 streamed {upd:.0f} updates / {byt / 1e6:.2f} MB to its {n - 1} peers; "
            f"the other {n - 1} replicas (which write nothing) sent {upd_others:.0f} updates / "
            f"{byt_others / 1e6:.2f} MB")
        results[f"delay{n}_echo"] = (upd, upd_others)
        if upd_others > 0.05 * upd:
            note(f"{n} replicas: replicas that receive but do not write sent {upd_others:.0f} updates while the "
                 f"writer sent {upd:.0f} (ratio {upd_others / max(upd, 1):.2f}): updates are relayed/echoed "
                 f"in a full mesh")
        results[f"delay{n}_load"] = s
        results[f"delay{n}_rate"] = load["rate"]
        if lost:
            note(f"{n} replicas, loaded: {lost} of {SAMPLES} writes not visible on r{n - 1} within {POLL_TIMEOUT} s")
        if load.get("errors"):
            note(f"background load got {load['errors']} error replies")
        t = mc.wait_converged(rs, timeout=30)
        if t is None:
            _, _, digests, sizes = mc.converged(rs)
            note(f"{n} replicas did not converge within 30 s after the load (DBSIZE {sizes})")
        else:
            say(f"  all {n} replicas converged (digest and version vector) {t * 1000:.0f} ms after the load stopped")
    finally:
        if loader and loader.poll() is None:
            loader.kill()
        for line in mc.log_problems(rs):
            note(line) if not line.startswith("    ") else say(line)
        mc.stop([r.proc for r in rs])


# ---------------------------------------------------------------- 2. throughput


def redis_benchmark(port):
    cmd = ["redis-benchmark", "-q", "-c", "50", "-n", str(BENCH_N), "-t", "set", "-P", "16",
           "-p", str(port), "--csv"]
    if BENCH_KEYSPACE > 0:
        cmd[-1:-1] = ["-r", str(BENCH_KEYSPACE)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, timeout=180)
    wall = time.perf_counter() - t0
    rps = None
    for row in csv.reader(io.StringIO(p.stdout.decode())):
        if row and row[0] == "SET":
            rps = float(row[1])
    if rps is None:
        note(f"redis-benchmark on port {port} gave no result: {p.stdout.decode()[-200:]} {p.stderr.decode()[-200:]}")
    return rps, wall, " ".join(cmd)


def part_throughput():
    say("\n== SET throughput: one replica of a 3-replica mesh vs a standalone replica ==")
    solo = mc.Replica("tp-solo", mesh=False).spawn()
    solo.wait_ready()
    rs, _, probs = mc.start_mesh(3, prefix="tp-r")
    for p in probs:
        note(p)
    runs = {"solo": [], "mesh": []}
    catchups = []
    try:
        for rnd in range(BENCH_ROUNDS):
            for kind in ("solo", "mesh"):
                target = solo if kind == "solo" else rs[0]
                rps, wall, cmd = redis_benchmark(target.port)
                if rnd == 0 and kind == "solo":
                    say(f"  command: {cmd}")
                line = f"  round {rnd + 1} {kind:<4}: {fmt(rps, '.0f')} SET/s (client-side; {wall:.2f} s wall)"
                if kind == "mesh":
                    t_end = time.perf_counter()
                    c = mc.wait_converged(rs, timeout=60)
                    if c is None:
                        _, _, _, sizes = mc.converged(rs)
                        note(f"throughput round {rnd + 1}: the 3 replicas did not converge within 60 s (DBSIZE {sizes})")
                    else:
                        c = time.perf_counter() - t_end
                        catchups.append(c)
                        line += f"; others caught up {c * 1000:.0f} ms later"
                        line += f" -> {BENCH_N / (wall + c):.0f} SET/s applied on all 3"
                    runs["mesh"].append((rps, wall, c))
                else:
                    runs["solo"].append((rps, wall, 0.0))
                say(line)
        _, _, _, sizes = mc.converged(rs)
        say(f"  DBSIZE of the mesh replicas: {sizes}; standalone: {solo.dbsize()}")
        if len(set(sizes)) != 1:
            note(f"mesh replicas hold different DBSIZEs at the end: {sizes}")

        def avg(xs):
            xs = [x for x in xs if x is not None]
            return sum(xs) / len(xs) if xs else None
        solo_rps = avg([r[0] for r in runs["solo"]])
        mesh_rps = avg([r[0] for r in runs["mesh"]])
        mesh_all = avg([BENCH_N / (w + c) for (_, w, c) in runs["mesh"] if c is not None])
        solo_wall = avg([BENCH_N / w for (_, w, _) in runs["solo"]])
        results["tp_solo"] = solo_rps
        results["tp_mesh"] = mesh_rps
        results["tp_ratio"] = mesh_rps / solo_rps if solo_rps and mesh_rps else None
        results["tp_mesh_all"] = mesh_all
        results["tp_ratio_all"] = mesh_all / solo_wall if mesh_all and solo_wall else None
        results["tp_catchup_ms"] = avg(catchups) * 1000 if catchups else None
        say(f"  average: standalone {fmt(solo_rps, '.0f')} SET/s, mesh {fmt(mesh_rps, '.0f')} SET/s "
            f"(ratio {fmt(results['tp_ratio'])}); applied on all 3 incl. catch-up {fmt(mesh_all, '.0f')} SET/s "
            f"vs standalone {fmt(solo_wall, '.0f')} by wall clock (ratio {fmt(results['tp_ratio_all'])})")
    finally:
        for line in mc.log_problems(rs + [solo]):
            note(line) if not line.startswith("    ") else say(line)
        mc.stop([r.proc for r in rs] + [solo.proc])


# ---------------------------------------------------------------- 3. bootstrap


def gen_proto(path, n, prefix=b"key:", valprefix=b"val:"):
    """SET key:NNNNNNNN val:NNNNNNNNNNNN (12-byte keys, 16-byte values) as RESP."""
    with open(path, "wb", buffering=1 << 20) as f:
        chunk = []
        for i in range(n):
            chunk.append(b"*3\r\n$3\r\nSET\r\n$12\r\n%s%08d\r\n$16\r\n%s%012d\r\n" % (prefix, i, valprefix, i))
            if len(chunk) == 10000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


class Pinger:
    """PINGs a replica every millisecond from a thread; the longest round trip shows how long
    the replica stalled its clients (e.g. while taking or installing a snapshot)."""

    def __init__(self, replica):
        import threading
        self.replica, self.lat, self.stop_flag = replica, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c = self.replica.conn()
        try:
            while not self.stop_flag:
                t = time.perf_counter()
                c.call("PING")
                self.lat.append((time.perf_counter() - t) * 1000)
                time.sleep(0.001)
        finally:
            c.close()

    def stop(self):
        self.stop_flag = True
        self.thread.join(timeout=5)
        return (max(self.lat) if self.lat else float("nan")), sum(x > 50 for x in self.lat), len(self.lat)


def snapshot_counts(rs):
    return [int(r.metrics().get("syncmesh_mesh_snapshots_sent", 0)) for r in rs]


def installs(r):
    """'installed a snapshot' lines in a replica's log."""
    try:
        with open(r.log, "rb") as f:
            return [l for l in f.read().decode(errors="replace").splitlines() if "installed a snapshot" in l]
    except OSError:
        return []


def part_bootstrap():
    say(f"\n== bootstrap: a 3rd replica joins a 2-replica mesh holding {BOOT_KEYS} keys ==")
    proto = os.path.join(mc.WORKDIR, "boot.resp")
    gen_proto(proto, BOOT_KEYS)
    rs, _, probs = mc.start_mesh(2, prefix="boot-r")
    for p in probs:
        note(p)
    new = None
    pingers = []
    try:
        t0 = time.perf_counter()
        with open(proto, "rb") as f:
            p = subprocess.run(["redis-cli", "-p", str(rs[0].port), "--pipe"], stdin=f, capture_output=True,
                               timeout=180)
        t_load = time.perf_counter() - t0
        out = p.stdout.decode()
        if f"errors: 0, replies: {BOOT_KEYS}" not in out:
            note(f"redis-cli --pipe: {out.strip()[-200:]} {p.stderr.decode()[-200:]}")
        c = mc.wait_converged(rs, timeout=120)
        if c is None:
            note("the 2 seed replicas did not converge within 120 s after the load")
        sizes = [r.dbsize() for r in rs]
        say(f"  loaded into r0 with redis-cli --pipe in {t_load:.2f} s; r1 caught up "
            f"{fmt(c and c * 1000, '.0f')} ms later; DBSIZE {sizes}")
        time.sleep(1.5)  # anything still on the move after convergence?
        snaps_load = snapshot_counts(rs)
        logn = [int(r.metrics().get("syncmesh_replication_log_entries", 0)) for r in rs]
        say(f"  during/after the load: snapshots sent r0 {snaps_load[0]}, r1 {snaps_load[1]}; "
            f"r0 installed {len(installs(rs[0]))} snapshots; replication log entries now {logn}")
        if snaps_load[1] or installs(rs[0]):
            note(f"loading {BOOT_KEYS} keys into r0 of a 2-replica mesh: r1, which wrote nothing, sent "
                 f"{snaps_load[1]} full snapshot(s) and r0 (the writer) installed {len(installs(rs[0]))} "
                 f"snapshot(s) of its own data back (likely: r1 streams r0's own updates back to r0, see the echo "
                 f"note, and falls back to a snapshot once its capped replication log no longer holds them)")

        pingers = [Pinger(r) for r in rs]
        new = mc.Replica("boot-new")
        new.spawn(peers=[r.mesh_addr for r in rs])
        ready = new.wait_ready(timeout=120, poll=0.001)
        n_at_ready = new.dbsize()
        say(f"  newcomer ready (/readyz 200) {ready * 1000:.0f} ms after spawn; DBSIZE then {n_at_ready}")
        results["boot_ready_s"] = ready
        results["boot_dbsize"] = n_at_ready
        if n_at_ready != BOOT_KEYS:
            note(f"newcomer was ready with DBSIZE {n_at_ready}, expected {BOOT_KEYS}")
        c = mc.wait_converged(rs + [new], timeout=60)
        time.sleep(2.5)  # late snapshots
        stalls = [pg.stop() for pg in pingers]
        pingers = []
        snaps = snapshot_counts(rs + [new])
        sent = [s1 - s0 for s1, s0 in zip(snaps, snaps_load + [0])]
        say(f"  all 3 converged (digest, version vector) {fmt(c and c * 1000, '.0f')} ms after ready")
        say(f"  snapshots sent after the join: r0 {sent[0]}, r1 {sent[1]}, newcomer {sent[2]}; "
            f"installed by the newcomer: {len(installs(new))}")
        for i, (mx, slow, n) in enumerate(stalls):
            say(f"  seed r{i} PING every 1 ms during the join: longest {mx:.1f} ms, {slow} of {n} over 50 ms")
        results["boot_stall_ms"] = max(s[0] for s in stalls)
        if c is None:
            note("the newcomer did not converge with the seeds within 60 s of being ready")
        if len(installs(new)) > 1:
            note(f"the newcomer installed {len(installs(new))} full snapshots of {BOOT_KEYS} keys (one from each "
                 f"seed), the later one after it was already ready")
        if results["boot_stall_ms"] > 50:
            note(f"seeds stalled clients for up to {results['boot_stall_ms']:.0f} ms while serving the newcomer's "
                 f"snapshot (PING round trip)")
    finally:
        for pg in pingers:
            pg.stop()
        for line in mc.log_problems(rs + ([new] if new else [])):
            note(line) if not line.startswith("    ") else say(line)
        mc.stop([r.proc for r in rs] + ([new.proc] if new and new.proc else []))
        os.unlink(proto)


# ---------------------------------------------------------------- 4. bytes on the wire


def part_wire():
    say(f"\n== mesh bytes per replicated SET, 2 replicas, {WIRE_N} SETs (12-byte keys, 16-byte values) ==")
    rs, _, probs = mc.start_mesh(2, prefix="wire-r")
    for p in probs:
        note(p)
    a, b = rs
    try:
        time.sleep(0.5)
        i0 = [r.metrics() for r in rs]
        t0 = time.perf_counter()
        time.sleep(2.0)
        i1 = [r.metrics() for r in rs]
        idle_secs = time.perf_counter() - t0
        idle_rate = [(y["syncmesh_mesh_bytes_sent"] - x["syncmesh_mesh_bytes_sent"]) / idle_secs for x, y in zip(i0, i1)]

        m0 = [r.metrics() for r in rs]
        t0 = time.perf_counter()
        c = a.conn()
        batch = 1000
        for start in range(0, WIRE_N, batch):
            n = min(batch, WIRE_N - start)
            c.sock.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$12\r\nkey:%08d\r\n$16\r\nval:%012d\r\n" % (i, i)
                                    for i in range(start, start + n)))
            for _ in range(n):
                r = c.reply()
                if r != b"OK":
                    raise RuntimeError(f"SET answered {r!r}")
        c.close()
        t_write = time.perf_counter() - t0
        conv = mc.wait_converged(rs, timeout=60)
        if conv is None:
            note("the 2 replicas did not converge within 60 s after the writes")
        time.sleep(0.5)  # the last acks (sent every 100 ms)
        m1 = [r.metrics() for r in rs]
        secs = time.perf_counter() - t0
        d = [y["syncmesh_mesh_bytes_sent"] - x["syncmesh_mesh_bytes_sent"] for x, y in zip(m0, m1)]
        upd = m1[0]["syncmesh_mesh_updates_sent"] - m0[0]["syncmesh_mesh_updates_sent"]
        upd_b = m1[1]["syncmesh_mesh_updates_sent"] - m0[1]["syncmesh_mesh_updates_sent"]
        recv = m1[1].get("syncmesh_mesh_bytes_received", 0) - m0[1].get("syncmesh_mesh_bytes_received", 0)
        size_b = b.dbsize()
        say(f"  written in {t_write:.2f} s; peer caught up {fmt(conv and conv * 1000, '.0f')} ms later; "
            f"peer DBSIZE {size_b}; measured over {secs:.2f} s")
        say(f"  idle traffic before the writes: r0 {idle_rate[0]:.0f} B/s, r1 {idle_rate[1]:.0f} B/s")
        say(f"  writer r0: {d[0]:.0f} bytes sent, {upd:.0f} updates sent -> {d[0] / WIRE_N:.1f} bytes/SET "
            f"({(d[0] - idle_rate[0] * secs) / WIRE_N:.1f} without idle traffic); r1 received {recv:.0f} bytes")
        say(f"  peer r1 (acks): {d[1]:.0f} bytes sent -> {d[1] / WIRE_N:.2f} bytes/SET; "
            f"r1 also sent {upd_b:.0f} updates (it writes nothing: anything but 0 is r0's updates sent back)")
        results["wire_echo"] = upd_b
        if upd_b > 0:
            note(f"2 replicas: the peer that writes nothing sent {upd_b:.0f} updates back to the writer for "
                 f"{WIRE_N} SETs (updates echoed to their origin); its {d[1] / WIRE_N:.1f} bytes/SET are not "
                 f"just acks")
        say(f"  both directions: {(d[0] + d[1]) / WIRE_N:.1f} bytes per replicated SET "
            f"(SET payload: 12-byte key + 16-byte value = 28 bytes; RESP of the SET = 55 bytes)")
        snaps = snapshot_counts(rs)
        if any(snaps):
            note(f"wire test: snapshots sent {snaps} (none expected); the byte counts include them")
        results["wire_writer"] = d[0] / WIRE_N
        results["wire_acks"] = d[1] / WIRE_N
        results["wire_acks_total"] = d[1]
        results["wire_updates"] = upd
        if upd != WIRE_N:
            note(f"updates_sent delta is {upd:.0f} for {WIRE_N} SETs (batched or merged updates?)")
        if size_b != WIRE_N:
            note(f"peer DBSIZE {size_b} after {WIRE_N} SETs")
    finally:
        for line in mc.log_problems(rs):
            note(line) if not line.startswith("    ") else say(line)
        mc.stop([r.proc for r in rs])


# ---------------------------------------------------------------- main


def summary():
    say("\n================ summary ================")
    rows = []

    def goal_mark(ok):
        return "ok" if ok else "MISSED"
    for n in SIZES:
        s = results.get(f"delay{n}_load")
        i = results.get(f"delay{n}_idle")
        rate = results.get(f"delay{n}_rate")
        if s:
            g = "< 5 ms p99" if n == 3 else "-"
            mark = goal_mark(s["p99"] < 5) if n == 3 else ""
            rows.append((f"delay p50/p99, {n} replicas, {fmt(rate, '.0f')} SET/s bg",
                         f"{s['p50']:.2f} / {s['p99']:.2f} ms", g, mark))
        if i:
            rows.append((f"delay p50/p99, {n} replicas, idle", f"{i['p50']:.2f} / {i['p99']:.2f} ms", "-", ""))
    if "tp_solo" in results:
        rows.append(("SET/s standalone (redis-benchmark -P 16)", fmt(results["tp_solo"], ".0f"), "-", ""))
        rows.append(("SET/s on r0 of 3-replica mesh", fmt(results["tp_mesh"], ".0f"), "-", ""))
        rows.append(("ratio mesh/standalone (client-side)", fmt(results["tp_ratio"]), "-", ""))
        rows.append(("catch-up of the other 2 after the run", fmt(results["tp_catchup_ms"], ".0f", " ms"), "-", ""))
        rows.append(("ratio applied-on-all-3/standalone (wall)", fmt(results["tp_ratio_all"]), "-", ""))
    if "boot_ready_s" in results:
        ok = results["boot_ready_s"] < 5 and results["boot_dbsize"] == BOOT_KEYS
        rows.append((f"bootstrap to ready, {BOOT_KEYS} keys", f"{results['boot_ready_s']:.2f} s "
                     f"(DBSIZE {results['boot_dbsize']})", "< 5 s, full DBSIZE", goal_mark(ok)))
        rows.append(("longest PING on a seed during the join", f"{results['boot_stall_ms']:.0f} ms", "-", ""))
    if "wire_writer" in results:
        rows.append(("mesh bytes sent per SET, writer (1 peer)", f"{results['wire_writer']:.1f} B", "-", ""))
        rows.append(("mesh bytes sent per SET, peer (acks+echo)", f"{results['wire_acks']:.2f} B", "-", ""))
        rows.append(("updates sent back by the non-writing peer", f"{results['wire_echo']:.0f} of {WIRE_N}",
                     "0 expected", goal_mark(results["wire_echo"] == 0)))
    w = max(len(r[0]) for r in rows) if rows else 10
    say(f"{'measure':<{w}}  {'result':>24}  {'goal':<18}")
    for name, val, goal, mark in rows:
        say(f"{name:<{w}}  {val:>24}  {goal:<18} {mark}")
    if problems:
        say("\nobservations:")
        for p in problems:
            say(f"  - {p}")
    else:
        say("\nno errors, warnings or convergence problems observed")


def main():
    mc.install_signal_handlers()
    say(f"replica binary: {mc.REPLICA_BIN}")
    say(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    t0 = time.perf_counter()
    try:
        parts = {"delay": lambda: [part_delay(n) for n in SIZES], "throughput": part_throughput,
                 "bootstrap": part_bootstrap, "wire": part_wire}
        for name in PARTS:
            if name not in parts:
                sys.exit(f"unknown part {name!r} (known: {', '.join(parts)})")
            try:
                parts[name]()
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one failing part does not hide the others' figures
                note(f"part {name} failed: {type(e).__name__}: {e}")
        summary()
        say(f"\ntotal {time.perf_counter() - t0:.0f} s")
    except KeyboardInterrupt as e:
        say(f"\ninterrupted ({e}); stopping replicas")
        summary()
        return 130
    finally:
        mc.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
