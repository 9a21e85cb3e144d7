"""The workload: clients on every replica, and the history of what they were told.

Each client is a thread that enters its replica's network namespace and talks to the replica on
127.0.0.1, as an application container talks to its sidecar. It runs a random mix of writes on a
small set of shared keys, so replicas write the same keys concurrently:

    INCRBY ctr:<k>          SADD/SREM set:<k>      HSET h:<k>      HINCRBY hc:<k> <field>
    LPUSH/RPOP l:<k>        XADD st:<k> *

Every element, field and stream value written is unique in the run, so the checker can tell
exactly which write put it there. Each op is recorded with its outcome: "ok" (a reply came and
was not an error: acknowledged) or "indeterminate" (an error reply, a timeout or a broken
connection: it may or may not have taken effect). Every few writes a client runs
`WAIT 3 <ms>`; a reply n >= 1 means n peers have applied every write this replica incarnation
made up to the last one of this connection, and the client's acknowledged ops record the
confirmation: for each n, the latest time a WAIT replied n. The latest matters: a write held by
n peers at time t survives any n destructions after t. A client keeps confirming its last 2000
acknowledged ops of the current replica process.
"""

import random
import threading
import time

import redis

from network import enter_netns
from replicas import command, connect

# (kind, weight). The kinds are also the names used in the summary.
MIX = [("incrby", 18), ("sadd", 14), ("srem", 6), ("hset", 10), ("hincrby", 10),
       ("lpush", 14), ("rpop", 8), ("xadd", 12)]
KEYS_PER_TYPE = 3
HASH_INCR_FIELDS = 4
# Kinds whose acknowledged op always writes (so a WAIT after it has something to count).
ALWAYS_WRITES = {"incrby", "sadd", "hset", "hincrby", "lpush", "xadd"}

OK = "ok"
INDETERMINATE = "indeterminate"


class Op:
    __slots__ = ("kind", "key", "args", "replica", "incarnation", "client", "status", "result",
                 "t0", "t1", "confirmations")

    def __init__(self, kind, key, args, replica, incarnation, client):
        self.kind = kind
        self.key = key
        self.args = args
        self.replica = replica
        self.incarnation = incarnation
        self.client = client
        self.status = None
        self.result = None
        self.t0 = self.t1 = None
        self.confirmations = {}  # peers -> latest time a WAIT reported that many had it

    def command(self):
        return {
            "incrby": lambda: ["INCRBY", self.key, self.args[0]],
            "sadd": lambda: ["SADD", self.key, self.args[0]],
            "srem": lambda: ["SREM", self.key, self.args[0]],
            "hset": lambda: ["HSET", self.key, self.args[0], self.args[1]],
            "hincrby": lambda: ["HINCRBY", self.key, self.args[0], self.args[1]],
            "lpush": lambda: ["LPUSH", self.key, self.args[0]],
            "rpop": lambda: ["RPOP", self.key],
            "xadd": lambda: ["XADD", self.key, "*", "v", self.args[0]],
        }[self.kind]()

    def record(self):
        return {"kind": self.kind, "key": self.key, "args": list(self.args),
                "replica": self.replica, "incarnation": self.incarnation, "client": self.client,
                "status": self.status, "result": _text(self.result), "t0": round(self.t0, 4),
                "t1": round(self.t1, 4),
                "confirmations": [(round(t, 4), n) for n, t in self.confirmations.items()]}


def _text(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    return v


class History:
    def __init__(self, clock):
        self.clock = clock  # seconds since the run started
        self.ops = []
        self.waits = {"confirmed": 0, "short": 0, "failed": 0}
        self._lock = threading.Lock()

    def add(self, op):
        with self._lock:
            self.ops.append(op)

    def count_wait(self, outcome):
        with self._lock:
            self.waits[outcome] += 1


class Client(threading.Thread):
    def __init__(self, cid, replica, history, seed, wait_every=8, wait_peers=3, wait_ms=250,
                 pace=0.003):
        super().__init__(name=f"client-{cid}", daemon=True)
        self.cid = cid
        self.replica = replica
        self.history = history
        self.rng = random.Random(seed)
        self.wait_every = wait_every
        self.wait_peers = wait_peers
        self.wait_ms = wait_ms
        self.pace = pace
        self._halt = threading.Event()
        self._drain = False
        self.error = None
        self.n = 0
        self.added = {}  # set key -> members this client added (candidates for SREM)

    def stop(self, drain=False):
        """Stops the client; with drain, it first waits (up to 3 s) until a peer has its writes."""
        self._drain = drain
        self._halt.set()

    def run(self):
        try:
            enter_netns(self.replica.host.ns)
            self._loop()
        except Exception as e:  # a harness bug: reported by the run, never swallowed
            self.error = e

    def _loop(self):
        conn, inc, wrote, since_wait = None, None, False, 0
        pending = []  # acknowledged ops not yet confirmed by a WAIT
        while not self._halt.is_set():
            if not self.replica.up:
                conn = _drop(conn)
                time.sleep(0.05)
                continue
            if conn is None:
                inc = self.replica.incarnation
                conn = connect()
                try:
                    conn.connect()
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    conn = _drop(conn)
                    time.sleep(0.05)
                    continue
                if not self.replica.up or self.replica.incarnation != inc:
                    conn = _drop(conn)  # a process that is being replaced
                    continue
                wrote = False
            op = self._next_op(inc)
            conn = self._execute(conn, op)
            if op.status == OK:
                pending.append(op)
                if op.kind in ALWAYS_WRITES:
                    wrote = True
                since_wait += 1
            if conn is not None and wrote and since_wait >= self.wait_every:
                since_wait = 0
                conn = self._confirm(conn, inc, pending, self.wait_ms)
            time.sleep(self.pace)
        if self._drain and conn is not None and wrote:
            self._confirm(conn, inc, pending, 3000)
        _drop(conn)

    def _confirm(self, conn, inc, pending, wait_ms):
        try:
            n = command(conn, "WAIT", self.wait_peers, wait_ms)
        except (redis.RedisError, OSError):
            self.history.count_wait("failed")
            return _drop(conn)
        if n >= 1:
            now = self.history.clock()
            # Ops of an earlier process can no longer be confirmed; the rest is bounded.
            pending[:] = [op for op in pending[-2000:] if op.incarnation == inc]
            for op in pending:
                op.confirmations[n] = now
            self.history.count_wait("confirmed")
        else:
            self.history.count_wait("short")
        return conn

    def _execute(self, conn, op):
        op.t0 = self.history.clock()
        try:
            op.result = command(conn, *op.command())
            op.status = OK
        except redis.ResponseError as e:
            op.status, op.result = INDETERMINATE, f"error: {e}"
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            op.status, op.result = INDETERMINATE, f"{type(e).__name__}: {e}"
            conn = _drop(conn)
        op.t1 = self.history.clock()
        if op.status == OK and op.kind == "sadd":
            self.added.setdefault(op.key, []).append(op.args[0])
        self.history.add(op)
        return conn

    def _next_op(self, inc):
        rng = self.rng
        self.n += 1
        unique = f"{self.replica.name}.{self.cid}.{self.n}"
        kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        k = rng.randrange(KEYS_PER_TYPE)
        if kind == "srem":
            key = f"set:{k}"
            candidates = self.added.get(key)
            if not candidates:
                kind = "sadd"
            else:
                member = candidates.pop(rng.randrange(len(candidates)))
                return Op("srem", key, (member,), self.replica.name, inc, self.cid)
        args = {
            "incrby": lambda: (rng.randint(1, 10),),
            "sadd": lambda: (unique,),
            "hset": lambda: (unique, f"v{self.n}"),
            "hincrby": lambda: (f"f{rng.randrange(HASH_INCR_FIELDS)}", rng.randint(1, 5)),
            "lpush": lambda: (unique,),
            "rpop": lambda: (),
            "xadd": lambda: (unique,),
        }[kind]()
        prefix = {"incrby": "ctr", "sadd": "set", "hset": "h", "hincrby": "hc", "lpush": "l",
                  "rpop": "l", "xadd": "st"}[kind]
        return Op(kind, f"{prefix}:{k}", args, self.replica.name, inc, self.cid)


def _drop(conn):
    if conn is not None:
        try:
            conn.disconnect()
        except Exception:
            pass
    return None
