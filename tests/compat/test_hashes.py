"""Hashes: HSET HSETNX HMSET HGET HMGET HDEL HEXISTS HLEN HKEYS HVALS HGETALL HINCRBY HINCRBYFLOAT
HSTRLEN HRANDFIELD HSCAN.

Redis does not define the order of HKEYS/HVALS/HGETALL, so those are compared unordered.
"""

import pytest

from harness import Err, call


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


HASH_SCENARIOS = [
    scenario(("HSET", "h", "a", "1"), ("HSET", "h", "a", "2", "b", "3"), ("HGET", "h", "a"), ("HLEN", "h")),
    scenario(("HSET", "h", "a", "1", "a", "2"), ("HGET", "h", "a"), ("HLEN", "h")),
    scenario(("HSET", "h", "a")),
    scenario(("HSET", "h", "a", "1", "b")),
    scenario(("HSET", "h")),
    scenario(("HSET", "h", "", ""), ("HGET", "h", ""), ("HLEN", "h"), ("HSTRLEN", "h", "")),
    scenario(("HSETNX", "h", "a", "1"), ("HSETNX", "h", "a", "2"), ("HGET", "h", "a")),
    scenario(("HSETNX", "h", "a")),
    scenario(("HMSET", "h", "a", "1", "b", "2"), ("HMGET", "h", "a", "b", "c"), ("HMSET", "h", "a", "x"),
             ("HGET", "h", "a")),
    scenario(("HMSET", "h", "a")),
    scenario(("HMSET", "h", "a", "1", "b")),
    scenario(("HGET", "nokey", "f"), ("HMGET", "nokey", "a", "b"), ("HLEN", "nokey"), ("HEXISTS", "nokey", "f"),
             ("HKEYS", "nokey"), ("HVALS", "nokey"), ("HGETALL", "nokey"), ("HSTRLEN", "nokey", "f"),
             ("HDEL", "nokey", "f")),
    scenario(("HSET", "h", "a", "1"), ("HGET", "h", "zz"), ("HEXISTS", "h", "a"), ("HEXISTS", "h", "zz")),
    scenario(("HSET", "h", "a", "1", "b", "2", "c", "3"), ("HDEL", "h", "a", "zz", "b", "a"), ("HLEN", "h"),
             ("HDEL", "h", "c"), ("EXISTS", "h"), ("TYPE", "h")),
    scenario(("HDEL", "h")),
    scenario(("HGET", "h")),
    scenario(("HMGET", "h")),
    scenario(("HSET", "h", "f", "hello"), ("HSTRLEN", "h", "f"), ("HSTRLEN", "h", "nofield")),
    scenario(("HSET", "h", "f", "12345"), ("HSTRLEN", "h", "f"), ("HINCRBY", "h", "f", "1"), ("HSTRLEN", "h", "f")),
    scenario(("HSET", "h", "f", "v", "EX", "10"), ("HGET", "h", "EX")),
]


@pytest.mark.parametrize("cmds", HASH_SCENARIOS)
def test_hash_basics(both, cmds):
    both.seq(*cmds)


def test_hash_getall_keys_vals(both):
    both("HSET", "h", "name", "ann", "age", "42", "city", "x y", "empty", "", "bin", b"\x00\xff")
    assert both.pairs("HGETALL", "h") == sorted([(b"name", b"ann"), (b"age", b"42"), (b"city", b"x y"),
                                                 (b"empty", b""), (b"bin", b"\x00\xff")], key=repr)
    both.unordered("HKEYS", "h")
    both.unordered("HVALS", "h")
    assert both("HLEN", "h") == 5


def test_hash_large(both):
    args = []
    for i in range(1000):
        args += [f"field:{i}", f"value:{i}" * (i % 7)]
    assert both("HSET", "h", *args) == 1000
    assert both("HLEN", "h") == 1000
    both.pairs("HGETALL", "h")
    both("HMGET", "h", *[f"field:{i}" for i in range(0, 1100, 11)])
    both("HDEL", "h", *[f"field:{i}" for i in range(0, 1000, 2)])
    assert both("HLEN", "h") == 500
    both.unordered("HKEYS", "h")
    both("HSET", "h", "big", "x" * 100_000)
    assert both("HSTRLEN", "h", "big") == 100_000


# ---------------------------------------------------------------- HINCRBY / HINCRBYFLOAT

INCR_SCENARIOS = [
    scenario(("HINCRBY", "h", "n", "5"), ("HINCRBY", "h", "n", "-2"), ("HGET", "h", "n")),
    scenario(("HSET", "h", "n", "10"), ("HINCRBY", "h", "n", "0"), ("HGET", "h", "n")),
    scenario(("HSET", "h", "n", "9223372036854775806"), ("HINCRBY", "h", "n", "1"), ("HINCRBY", "h", "n", "1")),
    scenario(("HSET", "h", "n", "-9223372036854775807"), ("HINCRBY", "h", "n", "-1"), ("HINCRBY", "h", "n", "-1")),
    scenario(("HSET", "h", "n", "abc"), ("HINCRBY", "h", "n", "1")),
    scenario(("HSET", "h", "n", "1.5"), ("HINCRBY", "h", "n", "1")),
    scenario(("HSET", "h", "n", " 1"), ("HINCRBY", "h", "n", "1")),
    scenario(("HSET", "h", "n", ""), ("HINCRBY", "h", "n", "1")),
    scenario(("HINCRBY", "h", "n", "abc")),
    scenario(("HINCRBY", "h", "n", "1.5")),
    scenario(("HINCRBY", "h", "n", "9223372036854775808")),
    scenario(("HINCRBY", "h", "n")),
    scenario(("HINCRBYFLOAT", "h", "f", "10.5"), ("HINCRBYFLOAT", "h", "f", "0.1"), ("HGET", "h", "f")),
    scenario(("HINCRBYFLOAT", "h", "f", "0.1"), ("HINCRBYFLOAT", "h", "f", "0.2")),
    scenario(("HSET", "h", "f", "5.0e3"), ("HINCRBYFLOAT", "h", "f", "2.0e2"), ("HGET", "h", "f")),
    scenario(("HSET", "h", "f", "3"), ("HINCRBYFLOAT", "h", "f", "1"), ("HINCRBY", "h", "f", "1")),
    scenario(("HINCRBYFLOAT", "h", "f", "1e308"), ("HINCRBYFLOAT", "h", "f", "1e308")),
    scenario(("HINCRBYFLOAT", "h", "f", "inf")),
    scenario(("HINCRBYFLOAT", "h", "f", "nan")),
    scenario(("HINCRBYFLOAT", "h", "f", "abc")),
    scenario(("HSET", "h", "f", "abc"), ("HINCRBYFLOAT", "h", "f", "1")),
    scenario(("HSET", "h", "f", "1.5"), ("HINCRBYFLOAT", "h", "f", "-1.5"), ("HGET", "h", "f")),
    scenario(("HINCRBYFLOAT", "h", "f", "-3.3333333333333333")),
    scenario(("HINCRBYFLOAT", "h", "f")),
]


@pytest.mark.parametrize("cmds", INCR_SCENARIOS)
def test_hash_increments(both, cmds):
    both.seq(*cmds)


# ---------------------------------------------------------------- HRANDFIELD


def test_hrandfield(both):
    fields = {f"f{i}".encode(): f"v{i}".encode() for i in range(10)}
    both("HSET", "h", *[x for kv in fields.items() for x in kv])
    t = both.target
    for _ in range(20):
        assert call(t, "HRANDFIELD", "h") in fields
    r = call(t, "HRANDFIELD", "h", "5")
    assert len(r) == 5 and len(set(r)) == 5 and set(r) <= set(fields)
    r = call(t, "HRANDFIELD", "h", "20")
    assert sorted(r) == sorted(fields)                  # count > size: every field once
    r = call(t, "HRANDFIELD", "h", "-20")
    assert len(r) == 20 and set(r) <= set(fields)       # negative: repeats allowed
    r = call(t, "HRANDFIELD", "h", "3", "WITHVALUES")
    assert len(r) == 6
    for k, v in zip(r[0::2], r[1::2]):
        assert fields[k] == v
    r = call(t, "HRANDFIELD", "h", "-7", "WITHVALUES")
    assert len(r) == 14
    for k, v in zip(r[0::2], r[1::2]):
        assert fields[k] == v
    seen = {call(t, "HRANDFIELD", "h") for _ in range(100)}
    assert len(seen) >= 3, "HRANDFIELD does not look random"


def test_hrandfield_edges(both):
    assert both("HRANDFIELD", "nokey") is None
    assert both("HRANDFIELD", "nokey", "5") == []
    assert both("HRANDFIELD", "nokey", "5", "WITHVALUES") == []
    both("HSET", "h", "a", "1")
    assert both("HRANDFIELD", "h", "0") == []
    assert both("HRANDFIELD", "h") == b"a"
    assert both("HRANDFIELD", "h", "1", "WITHVALUES") == [b"a", b"1"]
    assert both("HRANDFIELD", "h", "-3") == [b"a", b"a", b"a"]
    both.err("HRANDFIELD", "h", "x", prefix="ERR value is not an integer or out of range")
    both.err("HRANDFIELD", "h", "1", "FOO", prefix="ERR syntax error")
    both.err("HRANDFIELD", "h", "1", "WITHVALUES", "x", prefix="ERR syntax error")
    both.err("HRANDFIELD", prefix="ERR wrong number of arguments for 'hrandfield' command")


# ---------------------------------------------------------------- HSCAN


def hscan_all(client, key, *args):
    cursor, out = b"0", []
    for _ in range(10000):
        cursor, batch = call(client, "HSCAN", key, cursor, *args)
        assert len(batch) % 2 == 0
        out.extend(zip(batch[0::2], batch[1::2]))
        if cursor == b"0":
            return out
    raise AssertionError("HSCAN did not terminate")


@pytest.mark.parametrize("size", [5, 300])
@pytest.mark.parametrize("args", [(), ("COUNT", "3"), ("MATCH", "f1*"), ("MATCH", "*9", "COUNT", "1000"),
                                  ("MATCH", "nomatch")])
def test_hscan(both, size, args):
    kv = []
    for i in range(size):
        kv += [f"f{i}", f"v{i}"]
    both("HSET", "h", *kv)
    a = hscan_all(both.oracle, "h", *args)
    b = hscan_all(both.target, "h", *args)
    assert sorted(set(a)) == sorted(set(b))


def test_hscan_edges(both):
    assert both("HSCAN", "nokey", "0") == [b"0", []]
    both("HSET", "h", "a", "1")
    assert both("HSCAN", "h", "0") == [b"0", [b"a", b"1"]]
    both.err("HSCAN", "h", "abc", prefix="ERR invalid cursor")
    both.err("HSCAN", "h", "0", "COUNT", "0", prefix="ERR syntax error")
    both.err("HSCAN", "h", "0", "FOO", prefix="ERR syntax error")
    both.err("HSCAN", "h", prefix="ERR wrong number of arguments for 'hscan' command")


# ---------------------------------------------------------------- wrong type


@pytest.mark.parametrize("cmd", [
    ("HSET", "k", "f", "v"), ("HSETNX", "k", "f", "v"), ("HMSET", "k", "f", "v"), ("HGET", "k", "f"),
    ("HMGET", "k", "f"), ("HDEL", "k", "f"), ("HEXISTS", "k", "f"), ("HLEN", "k"), ("HKEYS", "k"), ("HVALS", "k"),
    ("HGETALL", "k"), ("HINCRBY", "k", "f", "1"), ("HINCRBYFLOAT", "k", "f", "1"), ("HSTRLEN", "k", "f"),
    ("HRANDFIELD", "k"), ("HSCAN", "k", "0"),
])
@pytest.mark.parametrize("other", [("SET", "k", "v"), ("SADD", "k", "m"), ("ZADD", "k", "1", "m")])
def test_hash_wrongtype(both, cmd, other):
    both(*other)
    both.err(*cmd, prefix="WRONGTYPE Operation against a key holding the wrong kind of value")
