"""Sets: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER SINTERCARD
SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN.

Set replies have no defined order: they are compared as sorted lists.
"""

import pytest

from harness import call


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


SET_SCENARIOS = [
    scenario(("SADD", "s", "a", "b", "c"), ("SADD", "s", "a", "d"), ("SCARD", "s"), ("SMEMBERS", "s")),
    scenario(("SADD", "s", "a", "a", "a"), ("SCARD", "s")),
    scenario(("SADD", "s", "3", "1", "2"), ("SMEMBERS", "s"), ("SADD", "s", "x"), ("SMEMBERS", "s")),
    scenario(("SADD", "s", "-1", "0", "9223372036854775807", "-9223372036854775808"), ("SMEMBERS", "s"),
             ("SISMEMBER", "s", "0"), ("SISMEMBER", "s", "00")),
    scenario(("SADD", "s", "")),
    scenario(("SADD", "s")),
    scenario(("SADD", "s", "a", "b"), ("SREM", "s", "a", "z", "a"), ("SMEMBERS", "s"), ("SREM", "s", "b"),
             ("EXISTS", "s"), ("SREM", "s", "b")),
    scenario(("SREM", "nokey", "a")),
    scenario(("SREM", "s")),
    scenario(("SMEMBERS", "nokey"), ("SCARD", "nokey"), ("SISMEMBER", "nokey", "a"),
             ("SMISMEMBER", "nokey", "a", "b")),
    scenario(("SADD", "s", "a", "b"), ("SISMEMBER", "s", "a"), ("SISMEMBER", "s", "z"),
             ("SMISMEMBER", "s", "a", "z", "b", "a")),
    scenario(("SMISMEMBER", "s")),
    scenario(("SISMEMBER", "s")),
    scenario(("SADD", "s", "1", "2", "3"), ("SADD", "s", "1.5"), ("SISMEMBER", "s", "1.5"), ("SCARD", "s")),
]


@pytest.mark.parametrize("cmds", SET_SCENARIOS)
def test_set_basics(both, cmds):
    for c in cmds:
        both.auto(*c)


def test_set_large(both):
    members = [f"m{i}" for i in range(2000)]
    assert both("SADD", "s", *members) == 2000
    assert both("SCARD", "s") == 2000
    both.unordered("SMEMBERS", "s")
    assert both("SREM", "s", *members[::3]) == 667
    both.unordered("SMEMBERS", "s")
    ints = [str(i) for i in range(0, 3000, 7)]
    both("SADD", "ints", *ints)
    both.unordered("SMEMBERS", "ints")


# ---------------------------------------------------------------- SPOP / SRANDMEMBER


def test_spop(both):
    members = {f"m{i}".encode() for i in range(20)}
    both("SADD", "s", *members)
    t = both.target
    popped = set()
    x = call(t, "SPOP", "s")
    assert x in members
    popped.add(x)
    r = call(t, "SPOP", "s", "5")
    assert isinstance(r, list) and len(r) == 5 and len(set(r)) == 5
    popped |= set(r)
    assert len(popped) == 6 and popped <= members
    rest = set(call(t, "SMEMBERS", "s"))
    assert rest == members - popped
    r = call(t, "SPOP", "s", "100")
    assert set(r) == rest and len(r) == len(rest)
    assert call(t, "EXISTS", "s") == 0


def test_spop_edges(both):
    assert both("SPOP", "nokey") is None
    assert both("SPOP", "nokey", "3") == []
    both("SADD", "s", "a")
    assert both("SPOP", "s", "0") == []
    assert both("SCARD", "s") == 1
    both.err("SPOP", "s", "-1", prefix="ERR value is out of range, must be positive")
    both.err("SPOP", "s", "x", prefix="ERR value is out of range, must be positive")
    both.err("SPOP", "s", "1", "2", prefix="ERR syntax error")
    assert both("SPOP", "s") == b"a"
    assert both("EXISTS", "s") == 0
    both("SADD", "s", "a", "b")
    assert both.unordered("SPOP", "s", "2") == [b"a", b"b"]
    assert both("EXISTS", "s") == 0


def test_srandmember(both):
    members = {f"m{i}".encode() for i in range(10)}
    both("SADD", "s", *members)
    t = both.target
    for _ in range(10):
        assert call(t, "SRANDMEMBER", "s") in members
    r = call(t, "SRANDMEMBER", "s", "4")
    assert len(r) == 4 and len(set(r)) == 4 and set(r) <= members
    r = call(t, "SRANDMEMBER", "s", "50")
    assert sorted(r) == sorted(members)
    r = call(t, "SRANDMEMBER", "s", "-30")
    assert len(r) == 30 and set(r) <= members
    assert call(t, "SCARD", "s") == 10          # nothing removed
    seen = {call(t, "SRANDMEMBER", "s") for _ in range(100)}
    assert len(seen) >= 3, "SRANDMEMBER does not look random"


def test_srandmember_edges(both):
    assert both("SRANDMEMBER", "nokey") is None
    assert both("SRANDMEMBER", "nokey", "3") == []
    assert both("SRANDMEMBER", "nokey", "-3") == []
    both("SADD", "s", "a")
    assert both("SRANDMEMBER", "s", "0") == []
    assert both("SRANDMEMBER", "s", "-3") == [b"a", b"a", b"a"]
    assert both("SRANDMEMBER", "s", "3") == [b"a"]
    both.err("SRANDMEMBER", "s", "x", prefix="ERR value is not an integer or out of range")
    both.err("SRANDMEMBER", "s", "-9223372036854775808", prefix="ERR value is out of range")
    both.err("SRANDMEMBER", "s", "1", "2", prefix="ERR syntax error")


# ---------------------------------------------------------------- SMOVE

SMOVE_SCENARIOS = [
    scenario(("SADD", "a", "x", "y"), ("SMOVE", "a", "b", "x"), ("SMEMBERS", "a"), ("SMEMBERS", "b")),
    scenario(("SADD", "a", "x"), ("SMOVE", "a", "b", "x"), ("EXISTS", "a"), ("SMEMBERS", "b")),
    scenario(("SADD", "a", "x"), ("SMOVE", "a", "b", "zz"), ("EXISTS", "b")),
    scenario(("SMOVE", "nokey", "b", "x"), ("EXISTS", "b")),
    scenario(("SADD", "a", "x"), ("SADD", "b", "x"), ("SMOVE", "a", "b", "x"), ("SMEMBERS", "a"),
             ("SMEMBERS", "b")),
    scenario(("SADD", "a", "x"), ("SMOVE", "a", "a", "x"), ("SMEMBERS", "a")),
    scenario(("SADD", "a", "x"), ("SMOVE", "a", "a", "zz")),
    scenario(("SADD", "a", "x"), ("SET", "b", "v"), ("SMOVE", "a", "b", "x"), ("SMEMBERS", "a")),
    scenario(("SADD", "a", "x"), ("SET", "b", "v"), ("SMOVE", "a", "b", "zz")),
    scenario(("SET", "a", "v"), ("SMOVE", "a", "b", "x")),
    scenario(("SMOVE", "a", "b")),
]


@pytest.mark.parametrize("cmds", SMOVE_SCENARIOS)
def test_smove(both, cmds):
    for c in cmds:
        both.auto(*c)


# ---------------------------------------------------------------- algebra


def _algebra_setup(both):
    both.seq(("SADD", "s1", "a", "b", "c", "d", "1", "2"), ("SADD", "s2", "c", "d", "e", "2", "3"),
             ("SADD", "s3", "a", "c", "e", "f", "2"), ("SADD", "ints1", "1", "2", "3", "4"),
             ("SADD", "ints2", "3", "4", "5"), ("SET", "str", "v"), ("SADD", "empty", "x"),
             ("SREM", "empty", "x"))


ALGEBRA = [
    ("SINTER", "s1"), ("SINTER", "s1", "s2"), ("SINTER", "s1", "s2", "s3"), ("SINTER", "s1", "nokey"),
    ("SINTER", "nokey", "s1"), ("SINTER", "ints1", "ints2"), ("SINTER", "s1", "ints1"), ("SINTER", "s1", "s1"),
    ("SUNION", "s1"), ("SUNION", "s1", "s2"), ("SUNION", "s1", "s2", "s3"), ("SUNION", "s1", "nokey"),
    ("SUNION", "nokey", "nokey2"), ("SUNION", "ints1", "ints2"), ("SUNION", "ints1", "s3"),
    ("SDIFF", "s1"), ("SDIFF", "s1", "s2"), ("SDIFF", "s1", "s2", "s3"), ("SDIFF", "s2", "s1"),
    ("SDIFF", "s1", "nokey"), ("SDIFF", "nokey", "s1"), ("SDIFF", "ints1", "ints2"), ("SDIFF", "s1", "s1"),
    ("SINTER", "s1", "str"), ("SUNION", "s1", "str"), ("SDIFF", "s1", "str"), ("SDIFF", "str", "s1"),
    ("SINTER", "nokey", "str"), ("SDIFF", "nokey", "str"), ("SINTER",), ("SUNION",), ("SDIFF",),
]


@pytest.mark.parametrize("cmd", ALGEBRA, ids=lambda c: " ".join(c))
def test_set_algebra(both, cmd):
    _algebra_setup(both)
    both.unordered(*cmd)


@pytest.mark.parametrize("cmd", ALGEBRA, ids=lambda c: " ".join(c))
def test_set_algebra_store(both, cmd):
    _algebra_setup(both)
    if len(cmd) == 1:
        both(cmd[0] + "STORE", "dst")
        both(cmd[0] + "STORE")
        return
    both("SADD", "dst", "old")
    both("EXPIRE", "dst", "100")
    both(cmd[0] + "STORE", "dst", *cmd[1:])
    both.unordered("SMEMBERS", "dst")
    both("EXISTS", "dst")
    both("TTL", "dst")
    both("TYPE", "dst")


def test_store_into_source_and_wrongtype_dest(both):
    _algebra_setup(both)
    assert both("SUNIONSTORE", "s1", "s1", "s2") == 8
    both.unordered("SMEMBERS", "s1")
    assert both("SINTERSTORE", "str", "s1", "s2") == 5      # overwrites a string destination
    assert both("TYPE", "str") == b"set"
    assert both("SDIFFSTORE", "s2", "s2", "s2") == 0
    assert both("EXISTS", "s2") == 0


SINTERCARD = [
    ("SINTERCARD", "1", "s1"), ("SINTERCARD", "2", "s1", "s2"), ("SINTERCARD", "3", "s1", "s2", "s3"),
    ("SINTERCARD", "2", "s1", "s2", "LIMIT", "1"), ("SINTERCARD", "2", "s1", "s2", "LIMIT", "0"),
    ("SINTERCARD", "2", "s1", "s2", "LIMIT", "100"), ("SINTERCARD", "2", "s1", "nokey"),
    ("SINTERCARD", "2", "ints1", "ints2"), ("SINTERCARD", "0", "s1"), ("SINTERCARD", "-1", "s1"),
    ("SINTERCARD", "3", "s1", "s2"), ("SINTERCARD", "x", "s1"), ("SINTERCARD", "1", "s1", "LIMIT", "-1"),
    ("SINTERCARD", "1", "s1", "LIMIT", "x"), ("SINTERCARD", "1", "s1", "FOO", "1"),
    ("SINTERCARD", "1", "s1", "LIMIT"), ("SINTERCARD", "2", "s1", "str"), ("SINTERCARD", "1"),
    ("SINTERCARD", "1", "s1", "s2"),
]


@pytest.mark.parametrize("cmd", SINTERCARD, ids=lambda c: " ".join(c))
def test_sintercard(both, cmd):
    _algebra_setup(both)
    both(*cmd)


# ---------------------------------------------------------------- SSCAN


def sscan_all(client, key, *args):
    cursor, out = b"0", []
    for _ in range(10000):
        cursor, batch = call(client, "SSCAN", key, cursor, *args)
        out.extend(batch)
        if cursor == b"0":
            return out
    raise AssertionError("SSCAN did not terminate")


@pytest.mark.parametrize("members", [["a", "b", "c"], [str(i) for i in range(50)], [f"m{i}" for i in range(500)]],
                         ids=["small", "intset", "large"])
@pytest.mark.parametrize("args", [(), ("COUNT", "2"), ("MATCH", "*1*"), ("MATCH", "m4?", "COUNT", "100")])
def test_sscan(both, members, args):
    both("SADD", "s", *members)
    a = sscan_all(both.oracle, "s", *args)
    b = sscan_all(both.target, "s", *args)
    assert sorted(set(a)) == sorted(set(b))


def test_sscan_edges(both):
    assert both("SSCAN", "nokey", "0") == [b"0", []]
    both("SADD", "s", "a")
    assert both("SSCAN", "s", "0") == [b"0", [b"a"]]
    both.err("SSCAN", "s", "x", prefix="ERR invalid cursor")
    both.err("SSCAN", "s", "0", "COUNT", "0", prefix="ERR syntax error")
    both.err("SSCAN", "s", "0", "MATCH", prefix="ERR syntax error")
    both.err("SSCAN", "s", prefix="ERR wrong number of arguments for 'sscan' command")


# ---------------------------------------------------------------- wrong type


@pytest.mark.parametrize("cmd", [
    ("SADD", "k", "m"), ("SREM", "k", "m"), ("SMEMBERS", "k"), ("SISMEMBER", "k", "m"), ("SMISMEMBER", "k", "m"),
    ("SCARD", "k"), ("SPOP", "k"), ("SPOP", "k", "2"), ("SRANDMEMBER", "k"), ("SRANDMEMBER", "k", "2"),
    ("SINTER", "k"), ("SUNION", "k"), ("SDIFF", "k"), ("SINTERCARD", "1", "k"), ("SSCAN", "k", "0"),
    ("SMOVE", "k", "x", "m"), ("SINTERSTORE", "d", "k"), ("SUNIONSTORE", "d", "k"), ("SDIFFSTORE", "d", "k"),
])
@pytest.mark.parametrize("other", [("SET", "k", "v"), ("HSET", "k", "f", "v"), ("ZADD", "k", "1", "m")])
def test_set_wrongtype(both, cmd, other):
    both(*other)
    both.err(*cmd, prefix="WRONGTYPE Operation against a key holding the wrong kind of value")
