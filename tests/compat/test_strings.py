"""Strings: GET SET (EX PX EXAT PXAT NX XX KEEPTTL GET) SETNX SETEX PSETEX GETSET GETDEL GETEX
MGET MSET MSETNX APPEND STRLEN GETRANGE SETRANGE INCR INCRBY DECR DECRBY INCRBYFLOAT."""

import time

import pytest

from harness import Err, call

FAR = 33177117420
FAR_MS = FAR * 1000


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


# ---------------------------------------------------------------- SET / GET

SET_SCENARIOS = [
    scenario(("SET", "k", "v"), ("GET", "k")),
    scenario(("SET", "k", ""), ("GET", "k"), ("STRLEN", "k")),
    scenario(("SET", "k", "v1"), ("SET", "k", "v2"), ("GET", "k")),
    scenario(("SET", "k", "v", "NX"), ("SET", "k", "w", "NX"), ("GET", "k")),
    scenario(("SET", "k", "v", "XX"), ("GET", "k"), ("SET", "k", "v"), ("SET", "k", "w", "XX"), ("GET", "k")),
    scenario(("SET", "k", "v", "EX", "100"), ("TTL", "k")),
    scenario(("SET", "k", "v", "PX", "100000"), ("TTL", "k")),
    scenario(("SET", "k", "v", "EXAT", str(FAR)), ("EXPIRETIME", "k"), ("PEXPIRETIME", "k")),
    scenario(("SET", "k", "v", "PXAT", str(FAR_MS + 7)), ("PEXPIRETIME", "k")),
    scenario(("SET", "k", "v", "EX", "100"), ("SET", "k", "w", "KEEPTTL"), ("TTL", "k"), ("GET", "k")),
    scenario(("SET", "k", "v", "EX", "100"), ("SET", "k", "w"), ("TTL", "k")),
    scenario(("SET", "k", "v", "KEEPTTL"), ("TTL", "k")),
    scenario(("SET", "k", "old"), ("SET", "k", "new", "GET"), ("GET", "k")),
    scenario(("SET", "k", "new", "GET"), ("GET", "k")),
    scenario(("SET", "k", "old"), ("SET", "k", "new", "NX", "GET"), ("GET", "k")),
    scenario(("SET", "k", "new", "NX", "GET"), ("GET", "k")),
    scenario(("SET", "k", "new", "XX", "GET"), ("EXISTS", "k")),
    scenario(("SET", "k", "old", "EX", "100"), ("SET", "k", "new", "XX", "GET", "KEEPTTL"), ("TTL", "k")),
    scenario(("SET", "k", "v", "ex", "100", "nx"), ("TTL", "k")),
    scenario(("SET", "k", "v", "PX", "100000", "XX"), ("EXISTS", "k")),
    scenario(("SET", "k", "v", "GET", "EX", "10"), ("TTL", "k")),
    scenario(("SADD", "k", "m"), ("SET", "k", "v"), ("TYPE", "k"), ("GET", "k")),
    scenario(("SADD", "k", "m"), ("SET", "k", "v", "GET"), ("TYPE", "k")),
    scenario(("SADD", "k", "m"), ("SET", "k", "v", "NX"), ("TYPE", "k")),
    scenario(("SADD", "k", "m"), ("SET", "k", "v", "XX"), ("TYPE", "k")),
    scenario(("SET", "k", "v", "EX", "0")),
    scenario(("SET", "k", "v", "EX", "-1")),
    scenario(("SET", "k", "v", "PX", "0")),
    scenario(("SET", "k", "v", "EXAT", "0")),
    scenario(("SET", "k", "v", "PXAT", "-5")),
    scenario(("SET", "k", "v", "EX", "abc")),
    scenario(("SET", "k", "v", "EX", "1.5")),
    scenario(("SET", "k", "v", "EX")),
    scenario(("SET", "k", "v", "EX", "9223372036854775807")),
    scenario(("SET", "k", "v", "PX", "9223372036854775807")),
    scenario(("SET", "k", "v", "EX", "10", "PX", "100")),
    scenario(("SET", "k", "v", "EX", "10", "EX", "10")),
    scenario(("SET", "k", "v", "NX", "XX")),
    scenario(("SET", "k", "v", "KEEPTTL", "EX", "10")),
    scenario(("SET", "k", "v", "EXAT", "10", "PXAT", "10")),
    scenario(("SET", "k", "v", "FOO")),
    scenario(("SET", "k", "v", "GET", "GET")),
    scenario(("SET", "k")),
    scenario(("SET",)),
    scenario(("GET",)),
    scenario(("GET", "a", "b")),
    scenario(("GET", "nokey")),
    scenario(("HSET", "k", "f", "v"), ("GET", "k")),
    scenario(("SET", "k", "v", "PX", "100"), ("EXISTS", "k")),
]


@pytest.mark.parametrize("cmds", SET_SCENARIOS)
def test_set_get(both, cmds):
    both.seq(*cmds)


def test_set_binary_and_large(both):
    val = bytes(range(256)) * 40
    assert both("SET", "bin", val) == b"OK"
    assert both("GET", "bin") == val
    assert both("STRLEN", "bin") == len(val)
    big = b"x" * 1_000_000
    assert both("SET", "big", big) == b"OK"
    assert both("GET", "big") == big


def test_set_integer_like_values_roundtrip(both):
    for v in ["0", "-0", "007", "12345678901234567890", "-9223372036854775808", "9223372036854775807",
              "1e5", "+1", " 1", "1.0", "0x10", "-", "3.14159"]:
        both("SET", "k", v)
        assert both("GET", "k") == v.encode()
        both("STRLEN", "k")
        both("APPEND", "k", "1")
        both("GET", "k")


def test_set_px_expires(both):
    both("SET", "k", "v", "PX", "100")
    time.sleep(0.2)
    assert both("GET", "k") is None


# ---------------------------------------------------------------- SETNX SETEX PSETEX GETSET GETDEL GETEX

OTHER_SET_SCENARIOS = [
    scenario(("SETNX", "k", "v"), ("SETNX", "k", "w"), ("GET", "k")),
    scenario(("SADD", "k", "m"), ("SETNX", "k", "v")),
    scenario(("SETNX", "k")),
    scenario(("SETEX", "k", "100", "v"), ("GET", "k"), ("TTL", "k")),
    scenario(("SETEX", "k", "0", "v")),
    scenario(("SETEX", "k", "-10", "v")),
    scenario(("SETEX", "k", "abc", "v")),
    scenario(("SETEX", "k", "9223372036854775807", "v")),
    scenario(("SETEX", "k", "10")),
    scenario(("SADD", "k", "m"), ("SETEX", "k", "10", "v"), ("TYPE", "k")),
    scenario(("PSETEX", "k", "100000", "v"), ("GET", "k"), ("TTL", "k")),
    scenario(("PSETEX", "k", "0", "v")),
    scenario(("PSETEX", "k", "x", "v")),
    scenario(("GETSET", "k", "v1"), ("GETSET", "k", "v2"), ("GET", "k")),
    scenario(("SET", "k", "v", "EX", "100"), ("GETSET", "k", "w"), ("TTL", "k")),
    scenario(("SADD", "k", "m"), ("GETSET", "k", "v")),
    scenario(("GETSET", "k")),
    scenario(("SET", "k", "v"), ("GETDEL", "k"), ("GETDEL", "k"), ("EXISTS", "k")),
    scenario(("SADD", "k", "m"), ("GETDEL", "k"), ("EXISTS", "k")),
    scenario(("GETDEL", "k", "x")),
    scenario(("SET", "k", "v"), ("GETEX", "k"), ("TTL", "k")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX", "100"), ("TTL", "k")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "PX", "100000"), ("TTL", "k")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EXAT", str(FAR)), ("EXPIRETIME", "k")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "PXAT", str(FAR_MS + 5)), ("PEXPIRETIME", "k")),
    scenario(("SET", "k", "v", "EX", "100"), ("GETEX", "k", "PERSIST"), ("TTL", "k")),
    scenario(("SET", "k", "v", "EX", "100"), ("GETEX", "k"), ("TTL", "k")),
    scenario(("GETEX", "nokey", "EX", "10"), ("EXISTS", "nokey")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX", "0"), ("EXISTS", "k")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX", "-1")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX", "10", "PX", "100")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "PERSIST", "EX", "10")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "FOO")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX", "abc")),
    scenario(("SET", "k", "v"), ("GETEX", "k", "EX", "9223372036854775807")),
    scenario(("SADD", "k", "m"), ("GETEX", "k")),
    scenario(("GETEX",)),
]


@pytest.mark.parametrize("cmds", OTHER_SET_SCENARIOS)
def test_set_variants(both, cmds):
    both.seq(*cmds)


def test_getex_px_expires(both):
    both("SET", "k", "v")
    assert both("GETEX", "k", "PX", "100") == b"v"
    time.sleep(0.2)
    assert both("GET", "k") is None


# ---------------------------------------------------------------- MGET MSET MSETNX

MULTI_SCENARIOS = [
    scenario(("MSET", "a", "1", "b", "2", "c", "3"), ("MGET", "a", "b", "c", "d")),
    scenario(("MSET", "a", "1", "a", "2"), ("GET", "a")),
    scenario(("MSET", "a", "1", "b")),
    scenario(("MSET", "a")),
    scenario(("MSET",)),
    scenario(("SADD", "s", "m"), ("MSET", "s", "x"), ("TYPE", "s")),
    scenario(("SET", "a", "1"), ("SADD", "s", "m"), ("MGET", "a", "s", "nokey", "a")),
    scenario(("MGET",)),
    scenario(("MGET", "nokey")),
    scenario(("MSETNX", "a", "1", "b", "2"), ("MGET", "a", "b")),
    scenario(("SET", "b", "x"), ("MSETNX", "a", "1", "b", "2"), ("MGET", "a", "b")),
    scenario(("MSETNX", "a", "1", "a", "2"), ("GET", "a")),
    scenario(("MSETNX", "a", "1", "b")),
    scenario(("SADD", "s", "m"), ("MSETNX", "s", "1"), ("TYPE", "s")),
]


@pytest.mark.parametrize("cmds", MULTI_SCENARIOS)
def test_multi_key(both, cmds):
    both.seq(*cmds)


def test_mset_many(both):
    args = []
    for i in range(500):
        args += [f"key:{i}", f"val:{i}"]
    assert both("MSET", *args) == b"OK"
    assert both("DBSIZE") == 500
    both("MGET", *[f"key:{i}" for i in range(0, 600, 3)])


# ---------------------------------------------------------------- APPEND STRLEN GETRANGE SETRANGE

RANGE_SCENARIOS = [
    scenario(("APPEND", "k", "hello"), ("APPEND", "k", " world"), ("GET", "k"), ("STRLEN", "k")),
    scenario(("APPEND", "k", ""), ("EXISTS", "k"), ("GET", "k")),
    scenario(("SET", "k", "10"), ("APPEND", "k", "5"), ("INCR", "k")),
    scenario(("SADD", "k", "m"), ("APPEND", "k", "x")),
    scenario(("APPEND", "k")),
    scenario(("STRLEN", "nokey")),
    scenario(("SET", "k", "12345"), ("STRLEN", "k")),
    scenario(("HSET", "k", "f", "v"), ("STRLEN", "k")),
    scenario(("STRLEN",)),
    scenario(("SET", "k", "Hello World"), ("GETRANGE", "k", "0", "4"), ("GETRANGE", "k", "-5", "-1"),
             ("GETRANGE", "k", "0", "-1"), ("GETRANGE", "k", "0", "100"), ("GETRANGE", "k", "5", "3"),
             ("GETRANGE", "k", "-100", "2"), ("GETRANGE", "k", "100", "200"), ("GETRANGE", "k", "-1", "-5"),
             ("GETRANGE", "k", "3", "3"), ("GETRANGE", "k", "-1", "-1"), ("GETRANGE", "k", "-100", "-50"),
             ("GETRANGE", "k", "0", "-100"), ("GETRANGE", "k", "10", "10"), ("GETRANGE", "k", "11", "11")),
    scenario(("GETRANGE", "nokey", "0", "-1")),
    scenario(("SET", "k", ""), ("GETRANGE", "k", "0", "-1"), ("GETRANGE", "k", "-1", "0")),
    scenario(("SET", "k", "12345"), ("GETRANGE", "k", "1", "2")),
    scenario(("SET", "k", "v"), ("GETRANGE", "k", "a", "1")),
    scenario(("SET", "k", "v"), ("GETRANGE", "k", "0", "1.5")),
    scenario(("SET", "k", "v"), ("GETRANGE", "k", "0")),
    scenario(("SADD", "k", "m"), ("GETRANGE", "k", "0", "1")),
    scenario(("SET", "k", "Hello World"), ("GETRANGE", "k", "0", "9223372036854775807"),
             ("GETRANGE", "k", "-9223372036854775808", "3")),
    scenario(("SET", "k", "Hello World"), ("SETRANGE", "k", "6", "Redis"), ("GET", "k")),
    scenario(("SETRANGE", "k", "5", "x"), ("GET", "k"), ("STRLEN", "k")),
    scenario(("SET", "k", "abc"), ("SETRANGE", "k", "10", "x"), ("GET", "k")),
    scenario(("SET", "k", "abc"), ("SETRANGE", "k", "1", ""), ("GET", "k")),
    scenario(("SETRANGE", "k", "0", ""), ("EXISTS", "k")),
    scenario(("SETRANGE", "k", "10", ""), ("EXISTS", "k")),
    scenario(("SET", "k", "abc"), ("SETRANGE", "k", "0", "xyzw"), ("GET", "k")),
    scenario(("SET", "k", "123"), ("SETRANGE", "k", "1", "9"), ("INCR", "k")),
    scenario(("SETRANGE", "k", "-1", "x")),
    scenario(("SETRANGE", "k", "abc", "x")),
    scenario(("SETRANGE", "k", "536870912", "x")),
    scenario(("SETRANGE", "k", "536870911", "")),
    scenario(("SADD", "k", "m"), ("SETRANGE", "k", "0", "x")),
    scenario(("SETRANGE", "k", "0")),
]


@pytest.mark.parametrize("cmds", RANGE_SCENARIOS)
def test_ranges(both, cmds):
    both.seq(*cmds)


# ---------------------------------------------------------------- INCR family

COUNTER_SCENARIOS = [
    scenario(("INCR", "n"), ("INCR", "n"), ("GET", "n")),
    scenario(("DECR", "n"), ("DECR", "n"), ("GET", "n")),
    scenario(("INCRBY", "n", "10"), ("INCRBY", "n", "-3"), ("GET", "n")),
    scenario(("DECRBY", "n", "10"), ("DECRBY", "n", "-25"), ("GET", "n")),
    scenario(("SET", "n", "100"), ("INCR", "n"), ("TYPE", "n"), ("STRLEN", "n")),
    scenario(("SET", "n", "-5"), ("INCRBY", "n", "5"), ("GET", "n")),
    scenario(("SET", "n", "9223372036854775806"), ("INCR", "n"), ("INCR", "n"), ("GET", "n")),
    scenario(("SET", "n", "-9223372036854775807"), ("DECR", "n"), ("DECR", "n"), ("GET", "n")),
    scenario(("SET", "n", "9223372036854775807"), ("INCRBY", "n", "-9223372036854775808"), ("GET", "n")),
    scenario(("SET", "n", "1"), ("INCRBY", "n", "9223372036854775807")),
    scenario(("SET", "n", "-1"), ("DECRBY", "n", "9223372036854775807"), ("DECRBY", "n", "1"), ("GET", "n")),
    scenario(("SET", "n", "0"), ("DECRBY", "n", "-9223372036854775808"), ("GET", "n")),
    scenario(("INCRBY", "n", "9223372036854775808")),
    scenario(("INCRBY", "n", "-9223372036854775809")),
    scenario(("INCRBY", "n", "abc")),
    scenario(("INCRBY", "n", "1.5")),
    scenario(("INCRBY", "n", "")),
    scenario(("INCRBY", "n", " 1")),
    scenario(("INCRBY", "n", "+1")),
    scenario(("INCRBY", "n", "-0")),
    scenario(("INCRBY", "n", "01")),
    scenario(("DECRBY", "n", "x")),
    scenario(("INCR", "n", "x")),
    scenario(("INCRBY", "n")),
    scenario(("SADD", "n", "m"), ("INCR", "n")),
    scenario(("HSET", "n", "f", "1"), ("DECRBY", "n", "1")),
]

BAD_INTEGERS = ["abc", "", " 1", "1 ", "+1", "01", "-0", "1e3", "1.0", "0x1", "9223372036854775808",
                "-9223372036854775809", "1\x00", "12a", "--1", "-"]


@pytest.mark.parametrize("cmds", COUNTER_SCENARIOS)
def test_counters(both, cmds):
    both.seq(*cmds)


@pytest.mark.parametrize("value", BAD_INTEGERS)
def test_incr_on_non_integer_value(both, value):
    both("SET", "n", value)
    both.err("INCR", "n", prefix="ERR value is not an integer or out of range")
    both.err("DECRBY", "n", "1", prefix="ERR value is not an integer or out of range")
    assert both("GET", "n") == value.encode()


@pytest.mark.parametrize("value", ["0", "-1", "9223372036854775806", "-9223372036854775808", "42", "100000"])
def test_incr_valid_edges(both, value):
    both("SET", "n", value)
    both("INCR", "n")
    both("GET", "n")
    both("DECRBY", "n", "2")
    both("GET", "n")


def test_incr_after_set_with_ttl(both):
    both("SET", "n", "5", "EX", "100")
    assert both("INCRBY", "n", "5") == 10
    assert both("TTL", "n") == 100
    assert both("SET", "n", "1") == b"OK"
    assert both("INCR", "n") == 2
    assert both("TTL", "n") == -1


# ---------------------------------------------------------------- INCRBYFLOAT

FLOAT_SCENARIOS = [
    scenario(("SET", "f", "10.50"), ("INCRBYFLOAT", "f", "0.1"), ("GET", "f")),
    scenario(("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "0.2"), ("GET", "f")),
    scenario(("SET", "f", "5.0e3"), ("INCRBYFLOAT", "f", "2.0e2"), ("GET", "f")),
    scenario(("SET", "f", "3"), ("INCRBYFLOAT", "f", "1"), ("INCR", "f"), ("GET", "f")),
    scenario(("SET", "f", "1.5"), ("INCRBYFLOAT", "f", "-1.5"), ("GET", "f")),
    scenario(("INCRBYFLOAT", "f", "1e300"), ("INCRBYFLOAT", "f", "1e300")),
    scenario(("INCRBYFLOAT", "f", "1e308"), ("INCRBYFLOAT", "f", "1e308")),
    scenario(("INCRBYFLOAT", "f", "3.0e-5"), ("GET", "f")),
    scenario(("INCRBYFLOAT", "f", "-3.3333333333333333"), ("GET", "f")),
    scenario(("INCRBYFLOAT", "f", "123456789012345678")),
    scenario(("INCRBYFLOAT", "f", "0.0000001")),
    scenario(("INCRBYFLOAT", "f", "1.23456789012345678e20")),
    scenario(("INCRBYFLOAT", "f", "-0.0")),
    scenario(("INCRBYFLOAT", "f", "inf")),
    scenario(("INCRBYFLOAT", "f", "-inf")),
    scenario(("INCRBYFLOAT", "f", "nan")),
    scenario(("INCRBYFLOAT", "f", "abc")),
    scenario(("INCRBYFLOAT", "f", "")),
    scenario(("INCRBYFLOAT", "f", "1.5x")),
    scenario(("INCRBYFLOAT", "f", " 1.5")),
    scenario(("SET", "f", "abc"), ("INCRBYFLOAT", "f", "1")),
    scenario(("SET", "f", "1.5 "), ("INCRBYFLOAT", "f", "1")),
    scenario(("SET", "f", "inf"), ("INCRBYFLOAT", "f", "1")),
    scenario(("SET", "f", "1"), ("INCRBYFLOAT", "f", "0x10")),
    scenario(("SADD", "f", "m"), ("INCRBYFLOAT", "f", "1")),
    scenario(("INCRBYFLOAT", "f")),
    scenario(("SET", "f", "1.1"), ("INCR", "f")),
    scenario(("SET", "f", "10"), ("INCRBYFLOAT", "f", "5.0"), ("INCR", "f")),
    scenario(("INCRBYFLOAT", "f", "1.1"), ("INCRBYFLOAT", "f", "2.2"), ("INCRBYFLOAT", "f", "3.3")),
    scenario(("INCRBYFLOAT", "f", "0.1"), ("INCRBYFLOAT", "f", "0.7"), ("INCRBYFLOAT", "f", "-0.8")),
    scenario(("SET", "f", "1e2"), ("INCRBYFLOAT", "f", "1.25")),
    scenario(("SET", "f", "5"), ("INCRBYFLOAT", "f", "1E1")),
    scenario(("SET", "f", "9007199254740993"), ("INCRBYFLOAT", "f", "1")),
]


@pytest.mark.parametrize("cmds", FLOAT_SCENARIOS)
def test_incrbyfloat(both, cmds):
    both.seq(*cmds)


@pytest.mark.parametrize("steps", [["1.1"] * 25, ["0.1"] * 100, ["1e-5", "3.3", "-0.7", "1e10", "-1e10"] * 8])
def test_incrbyfloat_sequences_match_digit_for_digit(both, steps):
    """Redis re-parses its printed result at every step; so must the replica."""
    for by in steps:
        both("INCRBYFLOAT", "f", by)
        both("HINCRBYFLOAT", "h", "f", by)
    both("GET", "f")
    both("HGET", "h", "f")


def test_incrbyfloat_random_sequences(both):
    import random
    rng = random.Random(20261203)
    for _ in range(200):
        by = rng.choice([f"{rng.uniform(-100, 100):.{rng.randint(0, 6)}f}", f"{rng.uniform(0, 1):.3e}",
                         str(rng.randint(-1000, 1000))])
        both("INCRBYFLOAT", "r", by)
    both("GET", "r")


def test_incrbyfloat_keeps_ttl(both):
    both("SET", "f", "1", "EX", "100")
    both("INCRBYFLOAT", "f", "1.5")
    assert both("TTL", "f") == 100


# ---------------------------------------------------------------- wrong type


@pytest.mark.parametrize("cmd", [
    ("GET", "k"), ("GETSET", "k", "v"), ("GETDEL", "k"), ("GETEX", "k"), ("APPEND", "k", "v"), ("STRLEN", "k"),
    ("GETRANGE", "k", "0", "1"), ("SETRANGE", "k", "0", "v"), ("INCR", "k"), ("INCRBY", "k", "1"),
    ("DECR", "k"), ("DECRBY", "k", "1"), ("INCRBYFLOAT", "k", "1"), ("SET", "k", "v", "GET"),
])
@pytest.mark.parametrize("other", [("HSET", "k", "f", "v"), ("SADD", "k", "m"), ("ZADD", "k", "1", "m")])
def test_string_wrongtype(both, cmd, other):
    both(*other)
    both.err(*cmd, prefix="WRONGTYPE Operation against a key holding the wrong kind of value")
    assert both("TYPE", "k") == {"HSET": b"hash", "SADD": b"set", "ZADD": b"zset"}[other[0]]
