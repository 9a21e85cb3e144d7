"""The fault schedule of a run: a pure function of the seed, the duration and the member names.

A replayed seed therefore injects the same faults at the same moments; the interleaving of the
clients' operations with them is up to the machine's timing.

Kinds (as counted in the summary):
    partition-halves     the hosts split in two groups, no traffic between them (symmetric)
    partition-one-way    packets from one host to another are dropped, the reverse path works
    partition-isolate    one host cut from all others (symmetric)
    partition-long       one host cut from all others for the last 11-14 s of the run, longer
                         than the replicas' --peer-timeout-ms (10 s): healed by the final heal
    loss                 one host drops a random fraction of the packets it receives
    slow-link            one host's outgoing link delayed (netem) or rate-limited (tbf)
    kill-restart         kill -9 of a replica, restarted after a pause
    clock-skew           one replica runs with --clock-offset-ms for the whole run
    join                 a new member joins the mesh during the run
    leave                a member drains its clients and leaves the mesh for good
    lying-member         a process that knows the mesh secret tries a forged Hello, a vector
                         far ahead, duplicated updates and writes under the target's id against
                         one replica (`sidecar/examples/lying_member.rs`)
"""

import random


class Event:
    def __init__(self, t, action, **params):
        self.t = t
        self.action = action
        self.params = params

    def __repr__(self):
        args = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.t:6.2f}s {self.action} {args}"


def make_schedule(seed, duration, initial, joiner, max_fault=5.0):
    """Returns (clock skew {name: offset_ms}, events sorted by time). Events after `duration`
    (heals, restarts) are what the final heal does."""
    rng = random.Random(seed)
    events = []
    skewed = rng.choice(initial)
    skew = {skewed: rng.choice([-1, 1]) * rng.randint(1000, 4000)}
    events.append(Event(0.0, "skew", name=skewed, offset_ms=skew[skewed]))

    t_join = rng.uniform(0.2, 0.4) * duration
    t_leave = rng.uniform(0.55, 0.75) * duration
    # The leaver is not the joiner and not a replica with a pending restart at that time.
    busy_until = {}  # name -> time its kill-restart ends
    events.append(Event(t_join, "join", name=joiner))

    def members(t):
        names = list(initial) + ([joiner] if t > t_join + 1.0 else [])
        return [n for n in names if busy_until.get(n, 0) < t]

    leaver = None
    fid = 0
    t = 1.5
    end = duration - 1.0
    kinds = [("partition-halves", 3), ("partition-one-way", 3), ("partition-isolate", 2),
             ("loss", 2), ("slow-link", 2), ("kill-restart", 3)]
    while t < end:
        if leaver is None and t >= t_leave:
            candidates = [n for n in members(t) if n != joiner]
            leaver = rng.choice(candidates)
            events.append(Event(t, "leave", name=leaver))
            t += rng.uniform(0.5, 1.5)
            continue
        live = [n for n in members(t) if n != leaver]
        everyone = sorted(set(initial) | {joiner})
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        fid += 1
        length = rng.uniform(1.5, max(1.5, max_fault))
        if kind == "partition-halves":
            hosts = everyone[:]
            rng.shuffle(hosts)
            cut = rng.randint(1, len(hosts) - 1)
            a, b = sorted(hosts[:cut]), sorted(hosts[cut:])
            drops = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
            events.append(Event(t, "partition", fid=fid, kind=kind, drops=drops,
                                label=f"{a} | {b}"))
        elif kind == "partition-one-way":
            src, dst = rng.sample(everyone, 2)
            events.append(Event(t, "partition", fid=fid, kind=kind, drops=[(src, dst)],
                                label=f"{src} -> {dst}"))
        elif kind == "partition-isolate":
            x = rng.choice(everyone)
            drops = [(x, y) for y in everyone if y != x] + [(y, x) for y in everyone if y != x]
            events.append(Event(t, "partition", fid=fid, kind=kind, drops=drops, label=x))
        elif kind == "loss":
            x = rng.choice(everyone)
            p = round(rng.uniform(0.1, 0.4), 2)
            events.append(Event(t, "loss", fid=fid, kind=kind, name=x, probability=p))
        elif kind == "slow-link":
            x = rng.choice(everyone)
            events.append(Event(t, "slow", fid=fid, kind=kind, name=x,
                                delay_ms=rng.choice([50, 100, 200, 400])))
        else:
            if len(live) < 3:
                t += 0.5
                continue
            x = rng.choice(live)
            down = rng.uniform(0.3, 2.5)
            busy_until[x] = t + down + 3.0  # restart, then a few seconds to bootstrap
            events.append(Event(t, "kill", kind=kind, name=x))
            events.append(Event(t + down, "restart", name=x))
            length = 0
        if length:
            # A heal past the end is left to the final heal: some faults last until then.
            events.append(Event(t + length, "heal", fid=fid))
        t += rng.uniform(1.0, 3.0)
    if duration >= 20:
        fid += 1
        x = rng.choice(sorted(set(initial) | {joiner}))
        everyone = sorted(set(initial) | {joiner})
        drops = [(x, y) for y in everyone if y != x] + [(y, x) for y in everyone if y != x]
        events.append(Event(duration - rng.uniform(11, 14), "partition", fid=fid,
                            kind="partition-long", drops=drops, label=x))
        events.append(Event(duration + 1, "heal", fid=fid))
    # The lying member draws from a stream of its own, so that it does not move other faults.
    liar = random.Random(seed * 7919 + 17)
    events.append(Event(liar.uniform(0.3, 0.7) * duration, "lie", kind="lying-member",
                        name=liar.choice(initial)))
    events.sort(key=lambda e: e.t)
    return skew, events
