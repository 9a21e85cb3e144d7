"""Fault-injection runs against a mesh of syncmesh-replica processes, one host each.

One run (one seed): build the hosts (network.py), start the replicas (replicas.py), run clients
on every replica (workload.py) while the faults of the seed's schedule (schedule.py) are
injected, stop the clients, heal everything, wait until every replica shows the same
SYNCMESH.DIGEST, then check what the replicas show against what the clients were told
(checks.py). See docs/faults.md.

    tests/faults/run.sh --runs 3 --duration 25      three runs with random seeds
    tests/faults/run.sh --seed 1234                  replay one seed
"""

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from checks import Destructions, Report, check, read_state  # noqa: E402
from network import Network, leftover_namespaces  # noqa: E402
from replicas import MESH_PORT, Replica, data_dir_supported  # noqa: E402
from schedule import make_schedule  # noqa: E402
from workload import MIX, OK, Client, History  # noqa: E402


class Run:
    def __init__(self, seed, opts, prefix, durable_supported):
        self.seed = seed
        self.opts = opts
        self.prefix = prefix
        self.run_dir = tempfile.mkdtemp(prefix=f"syncmesh-faults-{seed}-")
        self.net = Network(prefix)
        self.replicas = {}
        self.clients = defaultdict(list)
        self.durable_supported = durable_supported
        self.destructions = Destructions()
        self.faults = Counter()
        self.skipped = Counter()
        self.fault_log = []
        self.background = []
        self.errors = []
        self.identity_changes = []
        self.t_start = time.monotonic()
        self.history = History(self.clock)
        self.next_client = 0
        self.converge_s = None
        self.report = None
        self.lies = []  # (target, what each step of the lying member observed, problems)
        self.liar_key = f"liar:{seed}"

    def clock(self):
        return time.monotonic() - self.t_start

    def log(self, msg):
        line = f"{self.clock():7.2f}s {msg}"
        self.fault_log.append(line)
        if self.opts.verbose:
            print("   ", line, flush=True)

    # --- setup ------------------------------------------------------------------------------

    def setup(self):
        o = self.opts
        self.initial = [f"r{i}" for i in range(1, o.replicas + 1)]
        self.joiner = f"r{o.replicas + 1}"
        self.net.create()
        for name in self.initial + [self.joiner]:
            self.net.add_host(name)
        self.net.probe_netem()
        self.skew, self.events = make_schedule(self.seed, o.duration, self.initial, self.joiner,
                                               o.max_fault)
        seeds = [f"{h.ip}:{MESH_PORT}" for h in self.net.hosts.values()]
        persistence = o.persistence == "on" or (o.persistence == "auto" and self.durable_supported)
        # Every other replica is durable (as the operator's durable replicas would be).
        self.durable = set(self.initial[0::2]) if persistence else set()
        for name in self.initial + [self.joiner]:
            self.replicas[name] = Replica(
                name, self.net.hosts[name], o.binary, self.run_dir, seeds, o.retire_after,
                clock_offset_ms=self.skew.get(name, 0),
                data_dir=os.path.join(self.run_dir, f"{name}.data") if name in self.durable else None,
                appendfsync=o.appendfsync)
        for name in self.initial:
            self.replicas[name].born = 0.0
            self.replicas[name].launch()
        for name in self.initial:
            self.replicas[name].wait_ready(30)
            self.replicas[name].up = True
            self.replicas[name].ident = self.replicas[name].identity()

    def start_clients(self, name):
        for _ in range(self.opts.clients):
            self.next_client += 1
            c = Client(self.next_client, self.replicas[name], self.history,
                       seed=self.seed * 1000 + self.next_client)
            self.clients[name].append(c)
            c.start()

    # --- faults -----------------------------------------------------------------------------

    def in_background(self, what, fn):
        def run():
            try:
                fn()
            except Exception as e:
                self.errors.append(f"{what}: {e}")
                self.log(f"{what} FAILED: {e}")
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.background.append(t)

    def apply(self, ev):
        p = ev.params
        a = ev.action
        if a == "skew":
            self.faults["clock-skew"] += 1
            self.log(f"clock skew: {p['name']} runs {p['offset_ms']:+d} ms off")
        elif a == "partition":
            for src, dst in p["drops"]:
                self.net.drop(p["fid"], src, dst)
            self.faults[p["kind"]] += 1
            self.log(f"fault {p['fid']}: {p['kind']} {p['label']}")
        elif a == "loss":
            self.net.loss(p["fid"], p["name"], p["probability"])
            self.faults["loss"] += 1
            self.log(f"fault {p['fid']}: {p['name']} loses {p['probability']:.0%} of its input")
        elif a == "slow":
            what = self.net.slow(p["fid"], p["name"], p["delay_ms"])
            if what is None:
                self.skipped["slow-link"] += 1
                return
            self.faults["slow-link"] += 1
            self.log(f"fault {p['fid']}: {p['name']} slow link ({what})")
        elif a == "heal":
            self.net.heal(p["fid"])
            self.log(f"heal {p['fid']}")
        elif a == "kill":
            r = self.replicas[p["name"]]
            with r.lock:
                if not r.up or r.gone:
                    self.skipped["kill-restart"] += 1
                    self.log(f"kill {r.name}: skipped (not up)")
                    return
                r.kill()
                if r.data_dir is None:  # recorded after the kill: covers every op it took
                    self.destructions.add(self.clock(), r.name, r.incarnation, r.born)
            self.faults["kill-restart"] += 1
            if r.data_dir:
                self.faults["kill-restart of a durable replica"] += 1
            self.log(f"kill -9 {r.name}#{r.incarnation}"
                     + (" (durable: data dir kept)" if r.data_dir else " (memory only)"))
        elif a == "restart":
            self.restart(p["name"])
        elif a == "join":
            def join():
                r = self.replicas[p["name"]]
                with r.lock:
                    r.born = self.clock()
                    r.launch()
                    r.wait_ready(30)
                    r.up = True
                self.start_clients(r.name)
                self.log(f"{r.name} joined")
            self.faults["join"] += 1
            self.log(f"{p['name']} joins")
            self.in_background("join", join)
        elif a == "lie":
            self.log(f"a lying member connects to {p['name']}")
            self.in_background("lying member", lambda: self.lie(p["name"]))
        elif a == "leave":
            def leave():
                r = self.replicas[p["name"]]
                for c in self.clients[r.name]:
                    c.stop(drain=True)
                for c in self.clients[r.name]:
                    c.join()
                with r.lock:
                    self.destructions.add(self.clock(), r.name, None, r.born)
                    r.gone = True
                    r.stop()
                self.log(f"{r.name} left for good")
            self.faults["leave"] += 1
            self.log(f"{p['name']} leaves (drains its clients first)")
            self.in_background("leave", leave)

    def lie(self, name):
        """Runs the lying member against `name` and records what it saw and what went wrong."""
        r = self.replicas[name]
        deadline = time.monotonic() + 5  # a target being restarted is waited for
        while (not r.up or not r.alive()) and not r.gone and time.monotonic() < deadline:
            time.sleep(0.1)
        incarnation = r.incarnation
        if not r.up or r.gone or not r.alive():
            self.skipped["lying-member"] += 1
            self.log(f"lying member against {name}: skipped (not up)")
            return
        result = r.lie_to(self.opts.liar, self.liar_key)
        self.faults["lying-member"] += 1
        self.log(f"lying member against {name}: {result}")
        if r.incarnation != incarnation or not r.up:
            self.log(f"lying member against {name}: the target was killed meanwhile, not checked")
            return
        problems = []
        if not r.alive():
            problems.append(f"{name} exited after the lying member")
        expected = {
            "forged-hello": lambda v: v.startswith("refused") and "of this replica" in v,
            "far-ahead": lambda v: v == "accepted",
            "duplicates": lambda v: v.startswith("accepted"),
            "forged-writes": lambda v: v.startswith("closed"),
        }
        for step, ok in expected.items():
            if not ok(result.get(step, "")):
                problems.append(f"lying member {step} against {name}: {result.get(step)!r}")
        if r.alive():
            info = r.query("INFO", "mesh").decode()
            quarantined = next((int(line.split(":")[1]) for line in info.splitlines()
                                if line.startswith("mesh_quarantined_peers:")), 0)
            if quarantined < 2:
                problems.append(f"{name} quarantined {quarantined} members, not the 2 liars")
        self.lies.append((name, result, problems))

    def restart(self, name):
        def restart():
            r = self.replicas[name]
            with r.lock:
                if r.gone or r.alive():
                    return
                r.born = self.clock()
                r.launch()
                r.wait_ready(30)
                r.up = True
                if r.data_dir:
                    ident = r.identity()
                    if ident != r.ident:
                        # The data directory's contract: a process kill loses nothing.
                        self.identity_changes.append(
                            f"{name} restarted on its data directory as {ident}, not {r.ident}")
            self.log(f"{name}#{r.incarnation} restarted and ready")
        self.in_background(f"restart {name}", restart)

    # --- the run ----------------------------------------------------------------------------

    def execute(self):
        self.setup()
        self.t_start = time.monotonic()
        for name in self.initial:
            self.start_clients(name)
        for ev in self.events:
            if ev.t > self.opts.duration:
                break  # the final heal undoes what is still in force
            delay = ev.t - self.clock()
            if delay > 0:
                time.sleep(delay)
            self.apply(ev)
            self._raise_client_errors()
        time.sleep(max(0.0, self.opts.duration - self.clock()))
        # Stop the workload, heal everything, bring every member back, and wait.
        for cs in self.clients.values():
            for c in cs:
                c.stop()
        for cs in self.clients.values():
            for c in cs:
                c.join()
        self._raise_client_errors()
        for t in self.background:
            t.join()
        t_heal = self.clock()  # time to converge counts from here: the heal itself takes time
        self.net.heal_all()
        self.log("healed the network")
        for r in self.replicas.values():
            if r.incarnation > 0 and not r.gone and not r.alive():
                self.restart(r.name)
        for t in self.background:
            t.join()
        if self.errors:
            raise RuntimeError("; ".join(self.errors))
        live = [r for r in self.replicas.values() if r.incarnation > 0 and not r.gone]
        deadline = t_heal + self.opts.converge_timeout
        digests = {}
        while self.clock() < deadline:
            digests = {r.name: r.query("SYNCMESH.DIGEST") for r in live}
            if len(set(digests.values())) == 1:
                self.converge_s = self.clock() - t_heal
                break
            time.sleep(0.1)
        self.log(f"converged after {self.converge_s:.2f}s" if self.converge_s is not None
                 else "did not converge")
        states = {r.name: read_state(r) for r in live}
        self.report = check(self.history.ops, self.destructions, states, Report())
        for change in self.identity_changes:
            self.report.fail(change)
        for _, _, problems in self.lies:
            for problem in problems:
                self.report.fail(problem)
        forged = f"{self.liar_key}:forged"
        for r in live:
            if r.query("EXISTS", forged) != 0:
                self.report.fail(f"{r.name} holds {forged}, a write forged under another replica's id")
        if self.converge_s is None:
            self.report.fail(f"the replicas did not converge within {self.opts.converge_timeout}s "
                             f"of the heal: digests {digests}")
            for r in live:
                self.report.violations.append(f"{r.name} SYNCMESH.PEERS: {r.query('SYNCMESH.PEERS')}")
        self.live = [r.name for r in live]

    def _raise_client_errors(self):
        for cs in self.clients.values():
            for c in cs:
                if c.error is not None:
                    raise RuntimeError(f"client {c.cid} on {c.replica.name}: {c.error!r}")

    def teardown(self):
        for cs in self.clients.values():
            for c in cs:
                c.stop()
        for r in self.replicas.values():
            r.kill()
            r.close()
        self.net.destroy()
        left = leftover_namespaces(self.prefix)
        if left:
            print(f"warning: namespaces left behind: {left}", file=sys.stderr)

    def save(self, passed):
        with open(os.path.join(self.run_dir, "history.jsonl"), "w") as f:
            for op in self.history.ops:
                f.write(json.dumps(op.record()) + "\n")
        with open(os.path.join(self.run_dir, "faults.log"), "w") as f:
            f.write("\n".join(self.fault_log) + "\n")
        with open(os.path.join(self.run_dir, "summary.json"), "w") as f:
            json.dump(self.summary(passed), f, indent=2)

    def summary(self, passed):
        ops = defaultdict(Counter)
        for op in self.history.ops:
            ops[op.kind]["acked" if op.status == OK else "indeterminate"] += 1
        r = self.report
        return {
            "seed": self.seed, "passed": passed, "duration_s": self.opts.duration,
            "replicas": self.initial, "joined": self.joiner,
            "durable": sorted(self.durable), "netem": self.net.netem,
            "operations": {k: dict(v) for k, v in ops.items()},
            "wait": dict(self.history.waits),
            "faults": dict(self.faults), "faults_skipped": dict(self.skipped),
            "converge_s": None if self.converge_s is None else round(self.converge_s, 2),
            "checked": dict(r.checked) if r else {},
            "stream_id_collisions": r.collisions if r else 0,
            "acked_at_risk": r.at_risk if r else 0,
            "confirmed_then_destroyed": r.confirmed_then_destroyed if r else 0,
            "lost": r.lost if r else None,
            "violations": r.violations if r else [],
        }


def print_summary(s, run_dir, opts, passed, error=None):
    status = "PASS" if passed else "FAIL"
    print(f"--- seed {s['seed']}: {status}", flush=True)
    print(f"  replicas: {' '.join(s['replicas'])}, {s['joined']} joins during the run; "
          f"durable (--data-dir): {' '.join(s['durable']) or 'none'}"
          + ("" if s["durable"] or opts.persistence == "off"
             else " (the binary does not implement --data-dir yet)")
          + (f"; checked at the end: {' '.join(s['live'])}" if s.get("live") else ""))
    total = Counter()
    parts = []
    for kind, _ in MIX:
        c = s["operations"].get(kind, {})
        total.update(c)
        parts.append(f"{kind} {c.get('acked', 0)}/{c.get('indeterminate', 0)}")
    print(f"  operations (acked/indeterminate): {total['acked']}/{total['indeterminate']}: "
          + ", ".join(parts))
    w = s["wait"]
    print(f"  WAIT: {w['confirmed']} confirmed by >= 1 peer, {w['short']} by none, "
          f"{w['failed']} failed")
    faults = ", ".join(f"{k} {v}" for k, v in sorted(s["faults"].items()))
    print(f"  faults: {faults}" + ("" if s["netem"] else
                                   "  (slow-link by tbf: this kernel has no sch_netem)"))
    if s["converge_s"] is not None:
        print(f"  converged {s['converge_s']:.2f}s after the heal")
    if s["checked"]:
        print("  checked: " + ", ".join(f"{k} {v}" for k, v in sorted(s["checked"].items()))
              + f"; stream id collisions {s['stream_id_collisions']}")
        print(f"  acknowledged writes of destroyed replicas: {s['confirmed_then_destroyed']} "
              f"confirmed by WAIT (must survive), {s['acked_at_risk']} unconfirmed (may be lost)")
    print(f"  acknowledged writes lost: {s['lost']}")
    for v in s["violations"]:
        print(f"  VIOLATION {v}")
    if error:
        print(f"  ERROR {error}")
    if not passed:
        print(f"  replay: tests/faults/run.sh --seed {s['seed']} --duration {opts.duration}"
              f" --replicas {opts.replicas} --clients {opts.clients} --max-fault {opts.max_fault}"
              f" --retire-after {opts.retire_after} --persistence {opts.persistence}")
    print(f"  logs: {run_dir}" + ("" if not passed and not opts.keep else
                                 (" (kept)" if opts.keep else " (removed: passed)")), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    ap.add_argument("--runs", type=int, default=1, help="runs with random seeds (without --seed)")
    ap.add_argument("--duration", type=float, default=25.0, help="seconds of workload and faults")
    ap.add_argument("--replicas", type=int, default=4, help="replicas at the start (one joins)")
    ap.add_argument("--clients", type=int, default=2, help="clients per replica")
    ap.add_argument("--persistence", choices=["auto", "on", "off"], default="auto",
                    help="give every other replica a --data-dir (auto: if the binary has it)")
    ap.add_argument("--appendfsync", default="always")
    ap.add_argument("--max-fault", type=float, default=5.0,
                    help="longest partition, loss or slow link, in seconds")
    ap.add_argument("--retire-after", type=int, default=20,
                    help="the replicas' --retire-after-secs")
    ap.add_argument("--converge-timeout", type=float, default=60.0)
    ap.add_argument("--binary", default=os.environ.get("SYNCMESH_REPLICA_BIN"))
    ap.add_argument("--liar", default=os.environ.get("SYNCMESH_LIAR_BIN"),
                    help="the lying member (cargo's examples/lying_member next to --binary)")
    ap.add_argument("--run-id", default=None, help="namespace prefix (unique per run)")
    ap.add_argument("--keep", action="store_true", help="keep the logs of passing runs")
    ap.add_argument("-v", "--verbose", action="store_true", help="print faults as they happen")
    opts = ap.parse_args()
    if not opts.binary or not os.access(opts.binary, os.X_OK):
        sys.exit(f"replica binary not found: {opts.binary!r} (set SYNCMESH_REPLICA_BIN)")
    opts.liar = opts.liar or os.path.join(os.path.dirname(opts.binary), "examples", "lying_member")
    if not os.access(opts.liar, os.X_OK):
        sys.exit(f"lying member not found: {opts.liar!r} (cargo build --example lying_member)")
    if os.geteuid() != 0:
        sys.exit("the fault harness needs root (network namespaces, iptables)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seeds = opts.seed or [random.SystemRandom().randrange(1, 10**6) for _ in range(opts.runs)]
    run_id = opts.run_id or f"smf{secrets.token_hex(3)}"
    durable_supported = data_dir_supported(opts.binary)
    failed = []
    for i, seed in enumerate(seeds):
        run = Run(seed, opts, f"{run_id}-{i}", durable_supported)
        passed, error = False, None
        try:
            run.execute()
            passed = run.report.lost == 0 and not run.report.violations
        except BaseException as e:
            error = f"{type(e).__name__}: {e}"
            if not isinstance(e, Exception):
                raise  # interrupted: the finally clause still tears the run down
            traceback.print_exc()
        finally:
            run.teardown()
        run.save(passed)
        s = run.summary(passed)
        s["live"] = getattr(run, "live", [])
        print_summary(s, run.run_dir, opts, passed, error)
        if passed and not opts.keep:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        if not passed:
            failed.append(seed)
    print(f"fault runs: {len(seeds) - len(failed)} passed, {len(failed)} failed"
          + (f" (seeds {' '.join(map(str, failed))})" if failed else ""), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
