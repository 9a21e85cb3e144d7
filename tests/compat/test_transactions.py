"""Transactions: MULTI EXEC DISCARD WATCH UNWATCH."""

import pytest

from harness import Err, call, exchange


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:30] for c in cmds[-3:]))


TX_SCENARIOS = [
    scenario(("MULTI",), ("SET", "a", "1"), ("INCR", "a"), ("GET", "a"), ("EXEC",), ("GET", "a")),
    scenario(("MULTI",), ("EXEC",)),
    scenario(("MULTI",), ("SET", "a", "1"), ("DISCARD",), ("GET", "a")),
    scenario(("MULTI",), ("MULTI",), ("SET", "a", "1"), ("EXEC",), ("GET", "a")),
    scenario(("EXEC",)),
    scenario(("DISCARD",)),
    scenario(("MULTI",), ("WATCH", "a"), ("SET", "a", "1"), ("EXEC",)),
    scenario(("MULTI",), ("UNWATCH",), ("EXEC",)),
    # queueing-time errors abort the whole transaction
    scenario(("MULTI",), ("SET", "a", "1"), ("SET", "b"), ("EXEC",), ("GET", "a")),
    scenario(("MULTI",), ("SET", "a", "1"), ("NOSUCHCOMMAND", "x"), ("EXEC",), ("GET", "a")),
    scenario(("MULTI",), ("INCR",), ("SET", "a", "1"), ("EXEC",), ("EXISTS", "a")),
    scenario(("MULTI",), ("GET",), ("DISCARD",), ("GET", "a")),
    scenario(("MULTI",), ("SET", "a", "1"), ("SET", "b"), ("EXEC",), ("EXEC",)),
    # run-time errors do not stop the other commands
    scenario(("SET", "s", "text"), ("MULTI",), ("SET", "a", "1"), ("INCR", "s"), ("SADD", "s", "m"), ("INCR", "a"),
             ("EXEC",), ("GET", "a")),
    scenario(("MULTI",), ("SET", "a", "x"), ("LPUSH_NOT_A_COMMAND",), ("EXEC",)),
    scenario(("MULTI",), ("HSET", "h", "f", "1"), ("HINCRBY", "h", "f", "x"), ("HINCRBY", "h", "f", "2"), ("EXEC",)),
    scenario(("MULTI",), ("ZADD", "z", "1", "a"), ("ZADD", "z", "x", "b"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
             ("EXEC",)),
    # all types inside one transaction
    scenario(("MULTI",), ("SET", "s", "v", "EX", "100"), ("HSET", "h", "a", "1"), ("SADD", "st", "x"),
             ("ZADD", "z", "2.5", "m"), ("PFADD", "p", "x"), ("TTL", "s"), ("ZSCORE", "z", "m"), ("PFCOUNT", "p"),
             ("EXEC",), ("DBSIZE",)),
    scenario(("MULTI",), ("SELECT", "1"), ("SET", "a", "1"), ("EXEC",), ("GET", "a"), ("SELECT", "0"), ("GET", "a")),
    scenario(("SET", "a", "1"), ("MULTI",), ("GET", "a"), ("DEL", "a"), ("GET", "a"), ("EXEC",)),
    scenario(("MULTI",), ("FLUSHALL",), ("SET", "a", "1"), ("DBSIZE",), ("EXEC",)),
    scenario(("MULTI",), ("PING",), ("ECHO", "x"), ("EXEC",)),
    scenario(("MULTI",), ("EXEC", "x")),
    scenario(("MULTI", "x")),
    scenario(("MULTI",), ("DISCARD", "x"), ("EXEC",)),
    scenario(("WATCH",)),
    scenario(("UNWATCH", "x")),
    scenario(("UNWATCH",)),
]


@pytest.mark.parametrize("cmds", TX_SCENARIOS)
def test_transaction(both, cmds):
    both.seq(*cmds)


@pytest.mark.parametrize("cmds", TX_SCENARIOS)
def test_transaction_wire_bytes(servers, cmds):
    """The same exchange, pipelined on a raw socket: the replies must be byte-identical."""
    oracle, target = servers
    a = exchange(oracle.port, cmds)
    b = exchange(target.port, cmds)
    assert a == b


def test_exec_replies_are_arrays_of_each_reply(both):
    both("MULTI")
    both("SET", "a", "1")
    both("INCRBYFLOAT", "a", "1.5")
    both("GET", "nokey")
    both("HSET", "h", "f", "v")
    both("HGETALL", "h")
    assert both("EXEC") == [b"OK", b"2.5", None, 1, [b"f", b"v"]]


# ---------------------------------------------------------------- WATCH


def _other(both):
    return both.new()


@pytest.mark.parametrize("change", [
    ("SET", "w", "2"), ("DEL", "w"), ("EXPIRE", "w", "100"), ("INCR", "w"), ("APPEND", "w", "x"),
    ("RENAME", "w", "w2"), ("FLUSHALL",), ("FLUSHDB",), ("SET", "w", "1"), ("GETSET", "w", "1"),
    ("SETRANGE", "w", "0", "1"), ("PERSIST", "w"), ("COPY", "other", "w", "REPLACE"), ("MSET", "w", "1"),
])
def test_watch_aborts_on_change(both, change):
    both.seq(("SET", "w", "1", "EX", "500"), ("SET", "other", "o"))
    assert both("WATCH", "w") == b"OK"
    _other(both)(*change)
    assert both("MULTI") == b"OK"
    assert both("SET", "result", "committed") == b"QUEUED"
    assert both("EXEC") is None
    assert both("GET", "result") is None


@pytest.mark.parametrize("setup,change", [
    (("HSET", "w", "f", "1"), ("HSET", "w", "f", "2")),
    (("HSET", "w", "f", "1"), ("HDEL", "w", "f")),
    (("HSET", "w", "f", "1"), ("HINCRBY", "w", "f", "1")),
    (("SADD", "w", "a"), ("SADD", "w", "b")),
    (("SADD", "w", "a"), ("SREM", "w", "a")),
    (("SADD", "w", "a", "b"), ("SPOP", "w")),
    (("ZADD", "w", "1", "a"), ("ZADD", "w", "2", "a")),
    (("ZADD", "w", "1", "a"), ("ZINCRBY", "w", "1", "a")),
    (("ZADD", "w", "1", "a", "2", "b"), ("ZPOPMIN", "w")),
    (("PFADD", "w", "a"), ("PFADD", "w", "b")),
    (("SADD", "src", "a"), ("SMOVE", "src", "w", "a")),
])
def test_watch_container_changes(both, setup, change):
    both(*setup)
    both("WATCH", "w")
    _other(both).run(*change)
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") is None
    assert both("GET", "result") is None


def test_watch_missing_key_then_created(both):
    both("WATCH", "w")
    _other(both)("SET", "w", "new")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") is None
    assert both("GET", "result") is None


def test_watch_unrelated_change_commits(both):
    both.seq(("SET", "w", "1"), ("WATCH", "w"))
    _other(both)("SET", "unrelated", "1")
    both("MULTI")
    both("INCR", "w")
    assert both("EXEC") == [2]


def test_watch_noop_changes(both):
    """Commands that change nothing do not abort (Redis signals only real modifications)."""
    both.seq(("SET", "w", "1"), ("SADD", "s", "a"), ("WATCH", "w", "s"))
    other = _other(both)
    other("GET", "w")
    other("SADD", "s", "a")      # already a member: no change
    other("SREM", "s", "zz")     # not a member: no change
    other("EXPIRE", "nosuch", "10")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") == [b"OK"]


def test_watch_own_change_before_multi_aborts(both):
    both.seq(("SET", "w", "1"), ("WATCH", "w"), ("SET", "w", "2"), ("MULTI",), ("SET", "result", "x"))
    assert both("EXEC") is None


def test_watch_multiple_keys(both):
    both.seq(("SET", "a", "1"), ("SET", "b", "1"), ("WATCH", "a", "b", "nokey"))
    _other(both)("SET", "b", "2")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") is None


def test_watch_across_several_calls(both):
    both.seq(("SET", "a", "1"), ("WATCH", "a"), ("WATCH", "b"))
    _other(both)("SET", "b", "1")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") is None


def test_unwatch(both):
    both.seq(("SET", "w", "1"), ("WATCH", "w"), ("UNWATCH",))
    _other(both)("SET", "w", "2")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") == [b"OK"]


def test_exec_clears_watch(both):
    both.seq(("SET", "w", "1"), ("WATCH", "w"), ("MULTI",), ("PING",), ("EXEC",))
    _other(both)("SET", "w", "2")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") == [b"OK"]


def test_discard_clears_watch(both):
    both.seq(("SET", "w", "1"), ("WATCH", "w"), ("MULTI",), ("DISCARD",))
    _other(both)("SET", "w", "2")
    both("MULTI")
    both("SET", "result", "x")
    assert both("EXEC") == [b"OK"]


def test_aborted_exec_clears_watch(both):
    both.seq(("SET", "w", "1"), ("WATCH", "w"))
    other = _other(both)
    other("SET", "w", "2")
    both.seq(("MULTI",), ("PING",))
    assert both("EXEC") is None
    other("SET", "w", "3")
    both.seq(("MULTI",), ("PING",))
    assert both("EXEC") == [b"PONG"]


def test_watch_key_in_other_db(both):
    both.seq(("SELECT", "1"), ("SET", "w", "1"), ("WATCH", "w"), ("SELECT", "0"))
    other = _other(both)
    other("SET", "w", "changed-in-db0")
    both.seq(("MULTI",), ("PING",))
    assert both("EXEC") == [b"PONG"]      # db0's w is a different key
    both.seq(("SELECT", "1"), ("WATCH", "w"))
    other.seq(("SELECT", "1"), ("SET", "w", "2"))
    both.seq(("MULTI",), ("PING",))
    assert both("EXEC") is None


def test_transaction_isolation_from_other_clients(both):
    """Commands queued in MULTI are not visible to others before EXEC."""
    other = _other(both)
    both.seq(("MULTI",), ("SET", "a", "1"), ("INCR", "a"))
    assert other("GET", "a") is None
    assert both("EXEC") == [b"OK", 2]
    assert other("GET", "a") == b"2"


def test_counter_transaction_under_contention(cluster):
    """Optimistic locking with WATCH: 2 clients x 30 increments never lose an update."""
    t = cluster.target
    a, b = t.client(), t.client()
    try:
        call(a, "SET", "ctr", "0")
        done = {id(a): 0, id(b): 0}
        rounds = 0
        while min(done.values()) < 30 and rounds < 1000:
            rounds += 1
            for c in (a, b):
                if done[id(c)] >= 30:
                    continue
                call(c, "WATCH", "ctr")
                v = int(call(c, "GET", "ctr"))
                other = b if c is a else a
                if rounds % 3 == 0 and done[id(other)] < 30:
                    call(other, "INCR", "ctr")   # interfering write: must abort c's EXEC
                    done[id(other)] += 1
                call(c, "MULTI")
                call(c, "SET", "ctr", str(v + 1))
                if call(c, "EXEC") is not None:
                    done[id(c)] += 1
        assert int(call(a, "GET", "ctr")) == done[id(a)] + done[id(b)]
    finally:
        a.close()
        b.close()
