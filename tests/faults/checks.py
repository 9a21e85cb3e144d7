"""What a healed mesh must show, given the history of the run.

Which acknowledged writes must survive:
- A write acknowledged by a replica that was never destroyed afterwards. A replica is destroyed
  when it is killed without a data directory (it comes back as a new, empty member) or leaves
  the mesh; a durable replica (data directory) that is killed and restarted is not destroyed.
- A write confirmed by a `WAIT` that replied n >= 1 (n peers had applied it) before its replica
  was destroyed, provided at most n of the replica processes that were running at the
  confirmation were destroyed after the write: it had n + 1 holders (the origin and n peers),
  and losing it takes destroying all of them. "After the write", not "after the confirmation":
  WAIT counts every member whose last acknowledgement covers the write, also one that has died
  since (it stays a member until retired).
Every other acknowledged write is "at risk" and counts like an indeterminate one: it may or may
not be there. So:

    counter / hash counter   required sum <= value <= required sum + every possibly applied one
    set member               added (required) and never a removal attempted: present;
                             removed (SREM replied 1, required): absent; never added: absent
    hash field (HSET)        required: present with its value; never written: absent
    list element             pushed (required), never returned by a pop: present, except that
                             each indeterminate RPOP of the list may have taken one of them;
                             popped (required): absent; never pushed: absent
    stream entry             required XADD id: present with its value, unless another XADD got
                             the same id (documented: one version shows); never added: absent

Every live replica is checked; lost acknowledged writes are the required writes the mesh does not
show (summed over the replicas that miss them); the run fails when there
is any, and on any other violation above.
"""

from collections import defaultdict

from workload import KEYS_PER_TYPE, OK, HASH_INCR_FIELDS


class Destructions:
    """When replica incarnations were destroyed (times in run seconds)."""

    def __init__(self):
        # (t, replica, incarnation or None for every incarnation, when that process started)
        self.events = []

    def add(self, t, replica, incarnation, born):
        self.events.append((t, replica, incarnation, born))

    def destroyed_after(self, op):
        return any(t >= op.t0 and r == op.replica and inc in (None, op.incarnation)
                   for t, r, inc, _ in self.events)

    def holders_lost(self, op, confirmed_at):
        """Destructions, after the write, of processes that were running at its confirmation."""
        return sum(1 for t, _, _, born in self.events if t > op.t0 and born <= confirmed_at)


def required(op, destructions):
    if op.status != OK:
        return False
    if not destructions.destroyed_after(op):
        return True
    return any(destructions.holders_lost(op, t) <= n for n, t in op.confirmations.items())


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def read_state(replica):
    """Every key the workload writes, as this replica shows it."""
    q = replica.query
    state = {}
    for k in range(KEYS_PER_TYPE):
        v = q("GET", f"ctr:{k}")
        state[f"ctr:{k}"] = None if v is None else int(v)
        state[f"set:{k}"] = {_s(m) for m in q("SMEMBERS", f"set:{k}")}
        state[f"h:{k}"] = {_s(f): _s(v) for f, v in _pairs(q("HGETALL", f"h:{k}"))}
        state[f"hc:{k}"] = {_s(f): int(v) for f, v in _pairs(q("HGETALL", f"hc:{k}"))}
        state[f"l:{k}"] = [_s(e) for e in q("LRANGE", f"l:{k}", 0, -1)]
        state[f"st:{k}"] = {_s(i): {_s(f): _s(v) for f, v in _pairs(fields)}
                            for i, fields in q("XRANGE", f"st:{k}", "-", "+")}
    return state


def _pairs(flat):
    if isinstance(flat, dict):
        return list(flat.items())
    return list(zip(flat[0::2], flat[1::2]))


class Report:
    def __init__(self):
        self.lost = 0  # required acknowledged writes the mesh does not show
        self.violations = []
        self.checked = defaultdict(int)  # what was verified, by category
        self.collisions = 0
        self.at_risk = 0
        self.counting = True
        self.confirmed_then_destroyed = 0

    def count(self, category, n):
        """What was verified, counted on the first replica only (the others show the same)."""
        if self.counting:
            self.checked[category] += n

    def count_collision(self):
        if self.counting:
            self.collisions += 1

    def fail(self, msg, lost=0):
        self.lost += lost
        if len(self.violations) < 50:
            self.violations.append(msg)
        elif len(self.violations) == 50:
            self.violations.append("… (more violations not shown)")


def check(ops, destructions, states, report=None):
    """Checks the state every live replica shows (`states`: name -> read_state) against `ops`."""
    report = report or Report()
    req = {id(op): required(op, destructions) for op in ops}
    report.at_risk = sum(1 for op in ops if op.status == OK and not req[id(op)])
    # Required only because a WAIT confirmed them: their replica was destroyed afterwards.
    report.confirmed_then_destroyed = sum(1 for op in ops if req[id(op)]
                                          and destructions.destroyed_after(op))
    by_key = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    for i, (name, state) in enumerate(states.items()):
        report.counting = i == 0
        _check_counters(name, state, by_key, req, destructions, report)
        _check_sets(name, state, by_key, req, report)
        _check_hashes(name, state, by_key, req, report)
        _check_lists(name, state, by_key, req, report)
        _check_streams(name, state, by_key, req, report)
    return report


def _range(ops, req, amount):
    lo = sum(amount(op) for op in ops if req[id(op)])
    hi = sum(amount(op) for op in ops)  # every op may have applied, acknowledged or not
    return lo, hi


def _check_counters(name, state, by_key, req, destructions, report):
    for k in range(KEYS_PER_TYPE):
        key = f"ctr:{k}"
        ops = [op for op in by_key[key] if op.kind == "incrby"]
        lo, hi = _range(ops, req, lambda op: op.args[0])
        v = state[key] or 0
        report.count("counter increments (required)", sum(1 for op in ops if req[id(op)]))
        if not lo <= v <= hi:
            report.fail(f"{name}: {key} = {v}, expected within [{lo}, {hi}] (sum of required "
                        f"acknowledged increments, of all attempted)", lost=1 if v < lo else 0)
        key = f"hc:{k}"
        for j in range(HASH_INCR_FIELDS):
            field = f"f{j}"
            ops = [op for op in by_key[key] if op.args[0] == field]
            lo, hi = _range(ops, req, lambda op: op.args[1])
            v = state[key].get(field, 0)
            report.count("hash increments (required)", sum(1 for op in ops if req[id(op)]))
            if not lo <= v <= hi:
                report.fail(f"{name}: {key}.{field} = {v}, expected within [{lo}, {hi}]",
                            lost=1 if v < lo else 0)


def _check_sets(name, state, by_key, req, report):
    for k in range(KEYS_PER_TYPE):
        key = f"set:{k}"
        members = state[key]
        added, removal_tried, removed = {}, set(), set()
        for op in by_key[key]:
            m = op.args[0]
            if op.kind == "sadd":
                added[m] = op
            elif op.status != OK or op.result == 1:
                removal_tried.add(m)  # an SREM that may have removed it
                if req[id(op)] and op.result == 1:
                    removed.add(m)
        for m, op in added.items():
            if req[id(op)] and m not in removal_tried:
                report.count("set adds (required)", 1)
                if m not in members:
                    report.fail(f"{name}: {key} lacks {m} (SADD acknowledged by "
                                f"{op.replica}#{op.incarnation} at {op.t1:.2f}s)", lost=1)
        for m in removed:
            report.count("set removes (required)", 1)
            if m in members:
                report.fail(f"{name}: {key} still holds {m}, removed by an acknowledged SREM",
                            lost=1)
        for m in members - set(added):
            report.fail(f"{name}: {key} holds {m}, which no client added")


def _check_hashes(name, state, by_key, req, report):
    for k in range(KEYS_PER_TYPE):
        key = f"h:{k}"
        fields = state[key]
        written = {op.args[0]: op for op in by_key[key]}
        for f, op in written.items():
            if req[id(op)]:
                report.count("hash fields (required)", 1)
                if fields.get(f) != op.args[1]:
                    report.fail(f"{name}: {key}.{f} = {fields.get(f)!r}, expected "
                                f"{op.args[1]!r} (HSET acknowledged by {op.replica}"
                                f"#{op.incarnation} at {op.t1:.2f}s)", lost=1)
        for f in set(fields) - set(written):
            report.fail(f"{name}: {key} holds field {f}, which no client wrote")


def _check_lists(name, state, by_key, req, report):
    for k in range(KEYS_PER_TYPE):
        key = f"l:{k}"
        present = state[key]
        if len(present) != len(set(present)):
            report.fail(f"{name}: {key} holds an element twice: {present}")
        present = set(present)
        pushes = {op.args[0]: op for op in by_key[key] if op.kind == "lpush"}
        pops = [op for op in by_key[key] if op.kind == "rpop"]
        popped = {_s(op.result) for op in pops if op.status == OK and op.result is not None}
        popped_required = {_s(op.result) for op in pops
                           if req[id(op)] and op.result is not None}
        unknown_pops = sum(1 for op in pops if op.status != OK)
        missing = []
        for e, op in pushes.items():
            if req[id(op)] and e not in popped:
                report.count("list pushes (required)", 1)
                if e not in present:
                    missing.append(e)
        if len(missing) > unknown_pops:
            report.fail(f"{name}: {key} lacks {len(missing)} acknowledged pushes never returned "
                        f"by a pop, more than its {unknown_pops} indeterminate pops could take: "
                        f"{missing[:5]}", lost=len(missing) - unknown_pops)
        for e in popped_required:
            report.count("list pops (required)", 1)
            if e in present:
                report.fail(f"{name}: {key} still holds {e}, returned by an acknowledged RPOP")
        for e in present - set(pushes):
            report.fail(f"{name}: {key} holds {e}, which no client pushed")


def _check_streams(name, state, by_key, req, report):
    for k in range(KEYS_PER_TYPE):
        key = f"st:{k}"
        entries = state[key]
        adds = [op for op in by_key[key] if op.kind == "xadd"]
        owner = {op.args[0]: op for op in adds}
        for op in adds:
            if not req[id(op)]:
                continue
            i = _s(op.result)
            report.count("stream entries (required)", 1)
            got = entries.get(i)
            if got == {"v": op.args[0]}:
                continue
            other = owner.get((got or {}).get("v"))
            if other is not None and (other.status != OK or _s(other.result) == i):
                report.count_collision()  # two replicas picked one id: one version shows
                continue
            report.fail(f"{name}: {key} entry {i} is {got!r}, expected v={op.args[0]} (XADD "
                        f"acknowledged by {op.replica}#{op.incarnation} at {op.t1:.2f}s)", lost=1)
        values = {op.args[0] for op in adds}
        for i, fields in entries.items():
            if fields.get("v") not in values:
                report.fail(f"{name}: {key} entry {i} = {fields}, which no client added")
