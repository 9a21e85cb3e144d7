"""The checker on made-up histories: it must see lost writes, and only those.

    python3 -m pytest -q tests/faults/test_checks.py      (no root, no replica needed)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import Destructions, check  # noqa: E402
from workload import INDETERMINATE, KEYS_PER_TYPE, OK, Op  # noqa: E402


def op(kind, key, args, status=OK, result=None, replica="r1", inc=1, t=1.0, confirmations=()):
    o = Op(kind, key, tuple(args), replica, inc, client=1)
    o.status, o.result, o.t0, o.t1 = status, result, t, t + 0.001
    o.confirmations = {n: at for at, n in confirmations}
    return o


def empty_state(**keys):
    state = {}
    for k in range(KEYS_PER_TYPE):
        state.update({f"ctr:{k}": None, f"set:{k}": set(), f"h:{k}": {}, f"hc:{k}": {},
                      f"l:{k}": [], f"st:{k}": {}})
    state.update(keys)
    return state


def run(ops, state, destructions=None):
    return check(ops, destructions or Destructions(), {"r1": state, "r2": state})


def test_counter_within_acknowledged_and_attempted():
    ops = [op("incrby", "ctr:0", [5]), op("incrby", "ctr:0", [3], status=INDETERMINATE)]
    assert run(ops, empty_state(**{"ctr:0": 5})).lost == 0
    assert run(ops, empty_state(**{"ctr:0": 8})).lost == 0
    r = run(ops, empty_state(**{"ctr:0": 4}))
    assert r.lost == 2 and r.violations  # one per replica
    assert run(ops, empty_state(**{"ctr:0": 9})).violations  # more than was ever attempted


def test_a_destroyed_replica_may_lose_unconfirmed_writes_only():
    d = Destructions()
    d.add(2.0, "r1", 1, born=0.0)  # r1#1 killed without a data directory after the writes
    unconfirmed = op("sadd", "set:0", ["a"])
    confirmed = op("sadd", "set:0", ["b"], confirmations=[(1.5, 1)])
    r = run([unconfirmed, confirmed], empty_state(**{"set:0": {"b"}}), d)
    assert r.lost == 0 and not r.violations
    r = run([unconfirmed, confirmed], empty_state(**{"set:0": set()}), d)
    assert r.lost == 2  # b was confirmed by a peer: it must survive r1's death


def test_a_peer_that_died_before_the_confirmation_still_counts_as_destroyed():
    # WAIT counts a dead member whose last ack covered the write: it is a holder that is gone.
    d = Destructions()
    d.add(1.2, "r2", 1, born=0.0)  # died between the write (1.0) and the WAIT (1.5)
    d.add(2.0, "r1", 1, born=0.0)  # then the origin
    w = op("sadd", "set:2", ["c"], confirmations=[(1.5, 1)])
    assert run([w], empty_state(**{"set:2": set()}), d).lost == 0  # at risk, not required


def test_a_confirmation_by_n_peers_covers_n_destructions_of_processes_alive_then():
    d = Destructions()
    d.add(2.0, "r1", 1, born=0.0)
    d.add(3.0, "r2", 1, born=0.0)  # possibly the one peer that had it
    d.add(4.0, "r3", 2, born=2.5)  # started after the confirmation: cannot have been a holder
    by_one = op("hset", "h:0", ["f1", "v1"], confirmations=[(1.5, 1)])
    by_two = op("hset", "h:0", ["f2", "v2"], confirmations=[(1.5, 2)])
    r = run([by_one, by_two], empty_state(**{"h:0": {}}), d)
    assert r.lost == 2  # f2 only, on both replicas; f1 may be gone


def test_set_removal_and_phantoms():
    ops = [op("sadd", "set:1", ["a"]), op("srem", "set:1", ["a"], result=1),
           op("sadd", "set:1", ["b"]), op("srem", "set:1", ["b"], result=0)]
    assert not run(ops, empty_state(**{"set:1": {"b"}})).violations
    assert run(ops, empty_state(**{"set:1": {"a", "b"}})).violations  # removed a came back
    assert run(ops, empty_state(**{"set:1": set()})).lost == 2  # b: SREM removed nothing
    assert run(ops, empty_state(**{"set:1": {"b", "zz"}})).violations  # never added


def test_list_elements_each_indeterminate_pop_may_take_one():
    ops = [op("lpush", "l:0", ["x"]), op("lpush", "l:0", ["y"]), op("lpush", "l:0", ["z"]),
           op("rpop", "l:0", [], result=b"x"), op("rpop", "l:0", [], status=INDETERMINATE)]
    assert not run(ops, empty_state(**{"l:0": ["z", "y"]})).violations
    assert not run(ops, empty_state(**{"l:0": ["z"]})).violations  # the unknown pop took y
    assert run(ops, empty_state(**{"l:0": []})).lost == 2  # one more than pops could take
    assert run(ops, empty_state(**{"l:0": ["z", "y", "x"]})).violations  # popped x is back


def test_stream_entries_and_same_id_collisions():
    a = op("xadd", "st:0", ["va"], result=b"5-0", replica="r1")
    b = op("xadd", "st:0", ["vb"], result=b"5-0", replica="r2")
    c = op("xadd", "st:0", ["vc"], result=b"6-0")
    state = empty_state(**{"st:0": {"5-0": {"v": "vb"}, "6-0": {"v": "vc"}}})
    r = run([a, b, c], state)
    assert not r.violations and r.collisions == 1  # documented: one version of 5-0 shows
    r = run([a, b, c], empty_state(**{"st:0": {"5-0": {"v": "vb"}}}))
    assert r.lost == 2  # 6-0 missing on both replicas
