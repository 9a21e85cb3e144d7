"""Sorted sets: ZADD (NX XX GT LT CH INCR) ZREM ZSCORE ZMSCORE ZINCRBY ZCARD ZCOUNT ZLEXCOUNT
ZRANGE (BYSCORE BYLEX REV LIMIT WITHSCORES) ZRANGESTORE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX
ZREVRANGEBYLEX ZREVRANGE ZRANK ZREVRANK ZPOPMIN ZPOPMAX ZREMRANGEBYSCORE/BYRANK/BYLEX
ZUNIONSTORE ZINTERSTORE ZDIFFSTORE (WEIGHTS AGGREGATE) ZUNION ZINTER ZDIFF ZRANDMEMBER ZSCAN.

Sorted-set replies are ordered, so they are compared exactly, score formatting included.
"""

import random

import pytest

from harness import call


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


# ---------------------------------------------------------------- ZADD

ZADD_SCENARIOS = [
    scenario(("ZADD", "z", "1", "a", "2", "b"), ("ZADD", "z", "3", "a", "4", "c"), ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "1", "a"), ("ZADD", "z", "1", "a"), ("ZCARD", "z")),
    scenario(("ZADD", "z", "1", "a", "2", "a"), ("ZSCORE", "z", "a")),
    scenario(("ZADD", "z", "1", "a"), ("ZADD", "z", "NX", "5", "a", "2", "b"), ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "1", "a"), ("ZADD", "z", "XX", "5", "a", "2", "b"), ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "XX", "1", "a"), ("EXISTS", "z")),
    scenario(("ZADD", "z", "5", "a"), ("ZADD", "z", "GT", "3", "a", "1", "b"), ("ZADD", "z", "GT", "7", "a"),
             ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "5", "a"), ("ZADD", "z", "LT", "7", "a"), ("ZADD", "z", "LT", "2", "a", "9", "b"),
             ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "1", "a", "2", "b"), ("ZADD", "z", "CH", "1", "a", "5", "b", "3", "c"), ("ZCARD", "z")),
    scenario(("ZADD", "z", "1", "a"), ("ZADD", "z", "XX", "CH", "2", "a", "3", "b")),
    scenario(("ZADD", "z", "5", "a"), ("ZADD", "z", "GT", "CH", "6", "a", "1", "b"), ("ZADD", "z", "GT", "CH", "1", "a")),
    scenario(("ZADD", "z", "INCR", "2.5", "a"), ("ZADD", "z", "INCR", "-1", "a"), ("ZSCORE", "z", "a")),
    scenario(("ZADD", "z", "1", "a"), ("ZADD", "z", "NX", "INCR", "5", "a")),
    scenario(("ZADD", "z", "XX", "INCR", "5", "a"), ("EXISTS", "z")),
    scenario(("ZADD", "z", "5", "a"), ("ZADD", "z", "GT", "INCR", "-1", "a"), ("ZADD", "z", "GT", "INCR", "1", "a")),
    scenario(("ZADD", "z", "5", "a"), ("ZADD", "z", "LT", "INCR", "1", "a"), ("ZADD", "z", "LT", "INCR", "-1", "a")),
    scenario(("ZADD", "z", "INCR", "1", "a", "2", "b")),
    scenario(("ZADD", "z", "NX", "XX", "1", "a")),
    scenario(("ZADD", "z", "GT", "LT", "1", "a")),
    scenario(("ZADD", "z", "NX", "GT", "1", "a")),
    scenario(("ZADD", "z", "NX", "LT", "1", "a")),
    scenario(("ZADD", "z", "1")),
    scenario(("ZADD", "z", "1", "a", "2")),
    scenario(("ZADD", "z")),
    scenario(("ZADD", "z", "NX")),
    scenario(("ZADD", "z", "abc", "a")),
    scenario(("ZADD", "z", "1", "a", "x", "b"), ("EXISTS", "z")),
    scenario(("ZADD", "z", "nan", "a")),
    scenario(("ZADD", "z", "", "a")),
    scenario(("ZADD", "z", "1.5.5", "a")),
    scenario(("ZADD", "z", "FOO", "1", "a")),
    scenario(("ZADD", "z", "inf", "a", "-inf", "b", "+inf", "c"), ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "1e30", "a", "1.5", "b", "-0.0", "c", "0", "d", "1e-30", "e"),
             ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "123456789012345678", "a", "0.1", "b", "3.0", "c", "-2.50", "d", "1E3", "e"),
             ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "9007199254740993", "a", "1.7976931348623157e308", "b", "4.9e-324", "c"),
             ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "0x10", "a")),
    scenario(("ZADD", "z", " 1", "a")),
    scenario(("ZADD", "z", "1 ", "a")),
    scenario(("ZADD", "z", "1", "b", "1", "a", "1", "c", "1", "A", "1", ""), ("ZRANGE", "z", "0", "-1")),
    scenario(("SET", "z", "v"), ("ZADD", "z", "1", "a")),
]


@pytest.mark.parametrize("cmds", ZADD_SCENARIOS)
def test_zadd(both, cmds):
    both.seq(*cmds)


# ---------------------------------------------------------------- scores and formatting

SCORE_VALUES = ["1.5", "1e+30", "1e30", "0.1", "0.30000000000000004", "3", "3.0", "-0", "-0.0", "inf", "-inf",
                "+inf", "1e-5", "123456789", "1234567890123456789", "0.000001", "1.0000000000000002",
                "-1.5e-10", "2.2250738585072014e-308", "1e308", "100", "1e17", "1e16", "12345.678"]


@pytest.mark.parametrize("score", SCORE_VALUES)
def test_score_formatting(both, score):
    both("ZADD", "z", score, "m")
    both("ZSCORE", "z", "m")
    both("ZMSCORE", "z", "m", "nomember")
    both("ZRANGE", "z", "0", "-1", "WITHSCORES")
    both("ZINCRBY", "z", "0", "m")
    both("ZADD", "z", "INCR", "0", "m")


INCRBY_SCENARIOS = [
    scenario(("ZINCRBY", "z", "0.1", "m"), ("ZINCRBY", "z", "0.2", "m"), ("ZSCORE", "z", "m")),
    scenario(("ZINCRBY", "z", "5", "m"), ("ZINCRBY", "z", "-2.5", "m"), ("ZRANGE", "z", "0", "-1", "WITHSCORES")),
    scenario(("ZADD", "z", "inf", "m"), ("ZINCRBY", "z", "1", "m"), ("ZINCRBY", "z", "-inf", "m"), ("ZSCORE", "z", "m")),
    scenario(("ZADD", "z", "1e308", "m"), ("ZINCRBY", "z", "1e308", "m")),
    scenario(("ZINCRBY", "z", "abc", "m")),
    scenario(("ZINCRBY", "z", "nan", "m")),
    scenario(("ZINCRBY", "z", "1")),
    scenario(("ZADD", "z", "inf", "m"), ("ZADD", "z", "INCR", "-inf", "m")),
    scenario(("SET", "z", "v"), ("ZINCRBY", "z", "1", "m")),
]


@pytest.mark.parametrize("cmds", INCRBY_SCENARIOS)
def test_zincrby(both, cmds):
    both.seq(*cmds)


def test_zscore_zmscore(both):
    both("ZADD", "z", "1", "a", "2.5", "b")
    assert both("ZSCORE", "z", "a") == b"1"
    assert both("ZSCORE", "z", "b") == b"2.5"
    assert both("ZSCORE", "z", "zz") is None
    assert both("ZSCORE", "nokey", "a") is None
    assert both("ZMSCORE", "z", "a", "zz", "b") == [b"1", None, b"2.5"]
    assert both("ZMSCORE", "nokey", "a", "b") == [None, None]
    both.err("ZMSCORE", "z", prefix="ERR wrong number of arguments for 'zmscore' command")
    both.err("ZSCORE", "z", prefix="ERR wrong number of arguments for 'zscore' command")


def test_zrem_zcard(both):
    both("ZADD", "z", "1", "a", "2", "b", "3", "c")
    assert both("ZREM", "z", "a", "zz", "a") == 1
    assert both("ZCARD", "z") == 2
    assert both("ZREM", "z", "b", "c") == 2
    assert both("EXISTS", "z") == 0
    assert both("ZREM", "nokey", "a") == 0
    assert both("ZCARD", "nokey") == 0
    both.err("ZREM", "z", prefix="ERR wrong number of arguments for 'zrem' command")


# ---------------------------------------------------------------- ranges


def _range_setup(both):
    both("ZADD", "z", "-inf", "ninf", "1", "a", "2", "b", "2", "bb", "3", "c", "3.5", "d", "10", "e", "inf", "pinf")
    both("ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f", "0", "ga", "0", "gb", "0", "")


ZRANGE_CMDS = [
    # by index
    ("ZRANGE", "z", "0", "-1"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZRANGE", "z", "2", "4"),
    ("ZRANGE", "z", "-3", "-1"), ("ZRANGE", "z", "5", "2"), ("ZRANGE", "z", "100", "200"),
    ("ZRANGE", "z", "-100", "1"), ("ZRANGE", "z", "0", "100", "WITHSCORES"), ("ZRANGE", "z", "0", "0"),
    ("ZRANGE", "z", "0", "-1", "REV"), ("ZRANGE", "z", "0", "2", "REV", "WITHSCORES"),
    ("ZRANGE", "nokey", "0", "-1"), ("ZRANGE", "z", "a", "1"), ("ZRANGE", "z", "0", "1", "LIMIT", "0", "1"),
    ("ZRANGE", "z", "0"), ("ZRANGE", "z", "0", "1", "FOO"), ("ZRANGE", "z", "0", "1", "WITHSCORES", "WITHSCORES"),
    ("ZRANGE", "z", "-9223372036854775808", "9223372036854775807"),
    # by score
    ("ZRANGE", "z", "1", "3", "BYSCORE"), ("ZRANGE", "z", "(1", "3", "BYSCORE"), ("ZRANGE", "z", "1", "(3", "BYSCORE"),
    ("ZRANGE", "z", "(1", "(3", "BYSCORE", "WITHSCORES"), ("ZRANGE", "z", "-inf", "+inf", "BYSCORE"),
    ("ZRANGE", "z", "-inf", "inf", "BYSCORE", "WITHSCORES"), ("ZRANGE", "z", "(-inf", "(inf", "BYSCORE"),
    ("ZRANGE", "z", "3", "1", "BYSCORE"), ("ZRANGE", "z", "3", "1", "BYSCORE", "REV"),
    ("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "WITHSCORES"), ("ZRANGE", "z", "(3", "(1", "BYSCORE", "REV"),
    ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "3"),
    ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "2", "-1"),
    ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "3"),
    ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "0"),
    ("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "100", "3"),
    ("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2", "WITHSCORES"),
    ("ZRANGE", "z", "2", "2", "BYSCORE"), ("ZRANGE", "z", "(2", "2", "BYSCORE"), ("ZRANGE", "z", "2.0", "2e0", "BYSCORE"),
    ("ZRANGE", "z", "a", "3", "BYSCORE"), ("ZRANGE", "z", "((1", "3", "BYSCORE"), ("ZRANGE", "z", "nan", "3", "BYSCORE"),
    ("ZRANGE", "z", "[1", "3", "BYSCORE"), ("ZRANGE", "z", "1", "3", "BYSCORE", "LIMIT", "0"),
    ("ZRANGE", "z", "1", "3", "BYSCORE", "LIMIT", "x", "1"),
    ("ZRANGE", "z", "1", "3", "BYSCORE", "BYLEX"),
    # by lex
    ("ZRANGE", "lex", "-", "+", "BYLEX"), ("ZRANGE", "lex", "[b", "[e", "BYLEX"), ("ZRANGE", "lex", "(b", "(e", "BYLEX"),
    ("ZRANGE", "lex", "[g", "+", "BYLEX"), ("ZRANGE", "lex", "-", "(c", "BYLEX"), ("ZRANGE", "lex", "[", "[b", "BYLEX"),
    ("ZRANGE", "lex", "(", "[b", "BYLEX"), ("ZRANGE", "lex", "+", "-", "BYLEX"), ("ZRANGE", "lex", "+", "-", "BYLEX", "REV"),
    ("ZRANGE", "lex", "[e", "[b", "BYLEX", "REV"), ("ZRANGE", "lex", "-", "+", "BYLEX", "LIMIT", "2", "3"),
    ("ZRANGE", "lex", "+", "-", "BYLEX", "REV", "LIMIT", "1", "2"), ("ZRANGE", "lex", "b", "e", "BYLEX"),
    ("ZRANGE", "lex", "[b", "e", "BYLEX"), ("ZRANGE", "lex", "-", "+", "BYLEX", "WITHSCORES"),
    ("ZRANGE", "lex", "[gb", "[ga", "BYLEX"), ("ZRANGE", "lex", "[a", "[a", "BYLEX"), ("ZRANGE", "lex", "(a", "[a", "BYLEX"),
    ("ZRANGE", "lex", "-", "-", "BYLEX"), ("ZRANGE", "lex", "+", "+", "BYLEX"),
    # legacy range commands
    ("ZREVRANGE", "z", "0", "-1"), ("ZREVRANGE", "z", "0", "2", "WITHSCORES"), ("ZREVRANGE", "z", "-2", "-1"),
    ("ZREVRANGE", "z", "0", "1", "FOO"), ("ZREVRANGE", "nokey", "0", "-1"),
    ("ZRANGEBYSCORE", "z", "1", "3"), ("ZRANGEBYSCORE", "z", "(1", "3", "WITHSCORES"),
    ("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"), ("ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES", "LIMIT", "0", "3"),
    ("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "0", "3", "WITHSCORES"), ("ZRANGEBYSCORE", "z", "3", "1"),
    ("ZRANGEBYSCORE", "z", "x", "1"), ("ZRANGEBYSCORE", "z", "1", "3", "LIMIT", "1"), ("ZRANGEBYSCORE", "z", "1", "3", "FOO"),
    ("ZREVRANGEBYSCORE", "z", "3", "1"), ("ZREVRANGEBYSCORE", "z", "(3", "(1", "WITHSCORES"),
    ("ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "2", "2"), ("ZREVRANGEBYSCORE", "z", "1", "3"),
    ("ZRANGEBYLEX", "lex", "-", "+"), ("ZRANGEBYLEX", "lex", "[b", "(f"), ("ZRANGEBYLEX", "lex", "-", "+", "LIMIT", "1", "2"),
    ("ZRANGEBYLEX", "lex", "b", "f"), ("ZRANGEBYLEX", "lex", "-", "+", "WITHSCORES"),
    ("ZREVRANGEBYLEX", "lex", "+", "-"), ("ZREVRANGEBYLEX", "lex", "(f", "[b"),
    ("ZREVRANGEBYLEX", "lex", "+", "-", "LIMIT", "0", "2"), ("ZREVRANGEBYLEX", "lex", "-", "+"),
    ("ZRANGEBYSCORE", "z", "1"), ("ZRANGEBYLEX", "lex", "-"),
]


@pytest.mark.parametrize("cmd", ZRANGE_CMDS, ids=lambda c: " ".join(c))
def test_zrange_family(both, cmd):
    _range_setup(both)
    both(*cmd)


ZCOUNT_CMDS = [
    ("ZCOUNT", "z", "-inf", "+inf"), ("ZCOUNT", "z", "1", "3"), ("ZCOUNT", "z", "(1", "(3"), ("ZCOUNT", "z", "3", "1"),
    ("ZCOUNT", "z", "(2", "2"), ("ZCOUNT", "z", "x", "1"), ("ZCOUNT", "nokey", "-inf", "inf"), ("ZCOUNT", "z", "1"),
    ("ZLEXCOUNT", "lex", "-", "+"), ("ZLEXCOUNT", "lex", "[b", "[e"), ("ZLEXCOUNT", "lex", "(b", "(e"),
    ("ZLEXCOUNT", "lex", "+", "-"), ("ZLEXCOUNT", "lex", "b", "e"), ("ZLEXCOUNT", "nokey", "-", "+"),
    ("ZLEXCOUNT", "lex", "[", "+"),
]


@pytest.mark.parametrize("cmd", ZCOUNT_CMDS, ids=lambda c: " ".join(c))
def test_zcount_zlexcount(both, cmd):
    _range_setup(both)
    both(*cmd)


def test_zrange_random_against_redis(both):
    rnd = random.Random(5)
    args = []
    for i in range(200):
        args += [str(rnd.choice([rnd.randint(-50, 50), rnd.random() * 100 - 50, 0])), f"m{i:03d}"]
    both("ZADD", "z", *args)
    for _ in range(40):
        a, b = sorted([rnd.uniform(-60, 60), rnd.uniform(-60, 60)])
        lo, hi = f"{rnd.choice(['', '('])}{a:.3f}", f"{rnd.choice(['', '('])}{b:.3f}"
        both("ZRANGE", "z", lo, hi, "BYSCORE", "WITHSCORES")
        both("ZRANGE", "z", hi, lo, "BYSCORE", "REV", "LIMIT", str(rnd.randint(0, 5)), str(rnd.randint(-1, 10)))
        both("ZCOUNT", "z", lo, hi)
        i, j = rnd.randint(-210, 210), rnd.randint(-210, 210)
        both("ZRANGE", "z", i, j)
        both("ZREVRANGE", "z", i, j, "WITHSCORES")
        m = f"m{rnd.randint(0, 210):03d}"
        both("ZRANK", "z", m)
        both("ZREVRANK", "z", m)


# ---------------------------------------------------------------- ZRANGESTORE

ZRANGESTORE_CMDS = [
    ("ZRANGESTORE", "dst", "z", "0", "-1"), ("ZRANGESTORE", "dst", "z", "1", "3", "BYSCORE"),
    ("ZRANGESTORE", "dst", "z", "3", "1", "BYSCORE", "REV", "LIMIT", "0", "2"), ("ZRANGESTORE", "dst", "lex", "[b", "(e", "BYLEX"),
    ("ZRANGESTORE", "dst", "z", "5", "1"), ("ZRANGESTORE", "dst", "nokey", "0", "-1"),
    ("ZRANGESTORE", "dst", "z", "0", "-1", "WITHSCORES"), ("ZRANGESTORE", "dst", "z", "0"), ("ZRANGESTORE", "z", "z", "0", "1"),
]


@pytest.mark.parametrize("cmd", ZRANGESTORE_CMDS, ids=lambda c: " ".join(c))
def test_zrangestore(both, cmd):
    _range_setup(both)
    both("SET", "dst", "old")
    both(*cmd)
    both("TYPE", cmd[1])
    both("ZRANGE", cmd[1], "0", "-1", "WITHSCORES")


# ---------------------------------------------------------------- ranks and pops


def test_zrank(both):
    _range_setup(both)
    for m in ("ninf", "a", "b", "bb", "e", "pinf", "zz"):
        both("ZRANK", "z", m)
        both("ZREVRANK", "z", m)
    assert both("ZRANK", "nokey", "a") is None
    both.err("ZRANK", "z", prefix="ERR wrong number of arguments for 'zrank' command")


POP_CMDS = [
    ("ZPOPMIN", "z"), ("ZPOPMAX", "z"), ("ZPOPMIN", "z", "3"), ("ZPOPMAX", "z", "3"), ("ZPOPMIN", "z", "0"),
    ("ZPOPMIN", "z", "100"), ("ZPOPMAX", "z", "100"), ("ZPOPMIN", "nokey"), ("ZPOPMIN", "nokey", "2"),
    ("ZPOPMIN", "z", "-1"), ("ZPOPMAX", "z", "x"), ("ZPOPMIN", "z", "1", "2"), ("ZPOPMAX", "z", "1"),
]


@pytest.mark.parametrize("cmd", POP_CMDS, ids=lambda c: " ".join(c))
def test_zpop(both, cmd):
    _range_setup(both)
    both(*cmd)
    both("ZRANGE", "z", "0", "-1", "WITHSCORES")
    both("EXISTS", "z")


# ---------------------------------------------------------------- ZREMRANGEBY*

REMRANGE_CMDS = [
    ("ZREMRANGEBYSCORE", "z", "1", "3"), ("ZREMRANGEBYSCORE", "z", "(1", "(3"), ("ZREMRANGEBYSCORE", "z", "-inf", "+inf"),
    ("ZREMRANGEBYSCORE", "z", "3", "1"), ("ZREMRANGEBYSCORE", "z", "x", "1"), ("ZREMRANGEBYSCORE", "nokey", "1", "2"),
    ("ZREMRANGEBYRANK", "z", "0", "1"), ("ZREMRANGEBYRANK", "z", "-2", "-1"), ("ZREMRANGEBYRANK", "z", "0", "-1"),
    ("ZREMRANGEBYRANK", "z", "5", "2"), ("ZREMRANGEBYRANK", "z", "100", "200"), ("ZREMRANGEBYRANK", "z", "a", "1"),
    ("ZREMRANGEBYLEX", "lex", "[b", "[d"), ("ZREMRANGEBYLEX", "lex", "(b", "(d"), ("ZREMRANGEBYLEX", "lex", "-", "+"),
    ("ZREMRANGEBYLEX", "lex", "b", "d"), ("ZREMRANGEBYLEX", "lex", "+", "-"), ("ZREMRANGEBYSCORE", "z", "1"),
]


@pytest.mark.parametrize("cmd", REMRANGE_CMDS, ids=lambda c: " ".join(c))
def test_zremrange(both, cmd):
    _range_setup(both)
    both(*cmd)
    both("ZRANGE", cmd[1], "0", "-1", "WITHSCORES")
    both("EXISTS", cmd[1])


# ---------------------------------------------------------------- ZUNION / ZINTER / ZDIFF


def _agg_setup(both):
    both.seq(("ZADD", "z1", "1", "a", "2", "b", "3", "c"), ("ZADD", "z2", "10", "b", "20", "c", "30", "d"),
             ("ZADD", "z3", "inf", "a", "-inf", "b", "5", "e"), ("SADD", "set", "a", "d", "x"),
             ("ZADD", "zf", "0.1", "a", "0.2", "b"), ("SET", "str", "v"))


AGG_ARGS = [
    ("2", "z1", "z2"), ("1", "z1"), ("3", "z1", "z2", "z3"), ("2", "z1", "nokey"), ("2", "nokey", "z1"),
    ("2", "z1", "z2", "WEIGHTS", "2", "3"), ("2", "z1", "z2", "WEIGHTS", "1.5", "-1"),
    ("2", "z1", "z2", "AGGREGATE", "MIN"), ("2", "z1", "z2", "AGGREGATE", "MAX"), ("2", "z1", "z2", "AGGREGATE", "sum"),
    ("2", "z1", "z2", "WEIGHTS", "2", "0.5", "AGGREGATE", "MAX"), ("2", "z1", "set"), ("2", "set", "z2", "WEIGHTS", "3", "1"),
    ("2", "z1", "z3"), ("2", "z1", "z3", "WEIGHTS", "0", "1"), ("2", "z3", "z3"), ("2", "z3", "z3", "WEIGHTS", "1", "-1"),
    ("2", "z3", "z1", "WEIGHTS", "inf", "1"), ("2", "zf", "zf"), ("2", "zf", "z1", "WEIGHTS", "0.1", "0.2"),
    ("2", "z1", "z1", "AGGREGATE", "MIN"),
    # errors
    ("0", "z1"), ("-1", "z1"), ("x", "z1"), ("3", "z1", "z2"), ("2", "z1", "z2", "WEIGHTS", "1"),
    ("2", "z1", "z2", "WEIGHTS", "1", "x"), ("2", "z1", "z2", "AGGREGATE", "AVG"), ("2", "z1", "z2", "AGGREGATE"),
    ("2", "z1", "z2", "FOO"), ("2", "z1", "str"), ("1", "str"), ("2", "z1", "z2", "WEIGHTS", "1", "nan"),
]


@pytest.mark.parametrize("args", AGG_ARGS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("op", ["ZUNION", "ZINTER", "ZDIFF"])
def test_zset_algebra(both, op, args):
    _agg_setup(both)
    if op == "ZDIFF" and ("WEIGHTS" in args or "AGGREGATE" in args):
        both(op, *args, "WITHSCORES")  # ZDIFF takes no WEIGHTS/AGGREGATE: a syntax error
        return
    both(op, *args)
    both(op, *args, "WITHSCORES")


@pytest.mark.parametrize("args", AGG_ARGS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("op", ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
def test_zset_algebra_store(both, op, args):
    _agg_setup(both)
    both("SADD", "dst", "old")
    both(op, "dst", *args)
    both("TYPE", "dst")
    both("ZRANGE", "dst", "0", "-1", "WITHSCORES")


def test_zset_algebra_store_arity_and_edges(both):
    _agg_setup(both)
    both.err("ZUNIONSTORE", "dst", prefix="ERR wrong number of arguments for 'zunionstore' command")
    both.err("ZINTER", "1", prefix="ERR wrong number of arguments")
    both.err("ZUNIONSTORE", "dst", "0", "z1", prefix="ERR at least 1 input key is needed for 'zunionstore' command")
    both.err("ZDIFFSTORE", "dst", "0", "z1", prefix="ERR at least 1 input key is needed for 'zdiffstore' command")
    assert both("ZUNIONSTORE", "z1", "2", "z1", "z2") == 4      # destination is also a source
    both("ZRANGE", "z1", "0", "-1", "WITHSCORES")
    assert both("ZINTERSTORE", "dst", "2", "z1", "nokey") == 0
    assert both("EXISTS", "dst") == 0
    both.err("ZUNION", "2", "z1", "z2", "WITHSCORES", "x", prefix="ERR syntax error")


def test_zintercard(both):
    _agg_setup(both)
    both.seq(("ZINTERCARD", "2", "z1", "z2"), ("ZINTERCARD", "2", "z1", "z2", "LIMIT", "1"),
             ("ZINTERCARD", "1", "z1"), ("ZINTERCARD", "2", "z1", "set"), ("ZINTERCARD", "2", "z1", "nokey"),
             ("ZINTERCARD", "0", "z1"), ("ZINTERCARD", "2", "z1"), ("ZINTERCARD", "1", "z1", "LIMIT", "-1"),
             ("ZINTERCARD", "2", "z1", "str"))


# ---------------------------------------------------------------- ZRANDMEMBER


def test_zrandmember(both):
    members = {f"m{i}".encode(): str(i).encode() for i in range(10)}
    both("ZADD", "z", *[x for m, s in members.items() for x in (s, m)])
    t = both.target
    for _ in range(10):
        assert call(t, "ZRANDMEMBER", "z") in members
    r = call(t, "ZRANDMEMBER", "z", "4")
    assert len(r) == 4 and len(set(r)) == 4 and set(r) <= set(members)
    r = call(t, "ZRANDMEMBER", "z", "50")
    assert sorted(r) == sorted(members)
    r = call(t, "ZRANDMEMBER", "z", "-25")
    assert len(r) == 25 and set(r) <= set(members)
    r = call(t, "ZRANDMEMBER", "z", "3", "WITHSCORES")
    assert len(r) == 6
    for m, s in zip(r[0::2], r[1::2]):
        assert members[m] == s
    seen = {call(t, "ZRANDMEMBER", "z") for _ in range(100)}
    assert len(seen) >= 3


def test_zrandmember_edges(both):
    assert both("ZRANDMEMBER", "nokey") is None
    assert both("ZRANDMEMBER", "nokey", "3") == []
    both("ZADD", "z", "1.5", "a")
    assert both("ZRANDMEMBER", "z", "0") == []
    assert both("ZRANDMEMBER", "z", "-2", "WITHSCORES") == [b"a", b"1.5", b"a", b"1.5"]
    assert both("ZRANDMEMBER", "z", "5") == [b"a"]
    both.err("ZRANDMEMBER", "z", "x", prefix="ERR value is not an integer or out of range")
    both.err("ZRANDMEMBER", "z", "1", "FOO", prefix="ERR syntax error")


# ---------------------------------------------------------------- ZSCAN


def zscan_all(client, key, *args):
    cursor, out = b"0", []
    for _ in range(10000):
        cursor, batch = call(client, "ZSCAN", key, cursor, *args)
        out.extend(zip(batch[0::2], batch[1::2]))
        if cursor == b"0":
            return out
    raise AssertionError("ZSCAN did not terminate")


@pytest.mark.parametrize("size", [5, 400])
@pytest.mark.parametrize("args", [(), ("COUNT", "3"), ("MATCH", "m1*"), ("MATCH", "*7", "COUNT", "50")])
def test_zscan(both, size, args):
    flat = []
    for i in range(size):
        flat += [str(i / 4), f"m{i}"]
    both("ZADD", "z", *flat)
    a = zscan_all(both.oracle, "z", *args)
    b = zscan_all(both.target, "z", *args)
    assert sorted(set(a)) == sorted(set(b))


def test_zscan_edges(both):
    assert both("ZSCAN", "nokey", "0") == [b"0", []]
    both("ZADD", "z", "1.5", "a")
    assert both("ZSCAN", "z", "0") == [b"0", [b"a", b"1.5"]]
    both.err("ZSCAN", "z", "x", prefix="ERR invalid cursor")
    both.err("ZSCAN", "z", "0", "COUNT", "0", prefix="ERR syntax error")
    both.err("ZSCAN", "z", prefix="ERR wrong number of arguments for 'zscan' command")


# ---------------------------------------------------------------- big sorted set


def test_zset_large(both):
    rnd = random.Random(9)
    flat = []
    for i in range(3000):
        flat += [str(rnd.randint(0, 500)), f"member:{i}"]
    assert both("ZADD", "z", *flat) == 3000
    both("ZRANGE", "z", "0", "-1", "WITHSCORES")
    both("ZRANGE", "z", "100", "250", "BYSCORE", "LIMIT", "10", "20")
    both("ZREMRANGEBYRANK", "z", "100", "999")
    both("ZCARD", "z")
    both("ZRANGE", "z", "-50", "-1", "WITHSCORES")
    both("ZPOPMAX", "z", "10")


# ---------------------------------------------------------------- wrong type


@pytest.mark.parametrize("cmd", [
    ("ZADD", "k", "1", "m"), ("ZREM", "k", "m"), ("ZSCORE", "k", "m"), ("ZMSCORE", "k", "m"), ("ZINCRBY", "k", "1", "m"),
    ("ZCARD", "k"), ("ZCOUNT", "k", "0", "1"), ("ZLEXCOUNT", "k", "-", "+"), ("ZRANGE", "k", "0", "1"),
    ("ZRANGESTORE", "d", "k", "0", "1"), ("ZRANGEBYSCORE", "k", "0", "1"), ("ZREVRANGEBYSCORE", "k", "1", "0"),
    ("ZRANGEBYLEX", "k", "-", "+"), ("ZREVRANGEBYLEX", "k", "+", "-"), ("ZREVRANGE", "k", "0", "1"),
    ("ZRANK", "k", "m"), ("ZREVRANK", "k", "m"), ("ZPOPMIN", "k"), ("ZPOPMAX", "k"), ("ZREMRANGEBYSCORE", "k", "0", "1"),
    ("ZREMRANGEBYRANK", "k", "0", "1"), ("ZREMRANGEBYLEX", "k", "-", "+"), ("ZUNIONSTORE", "d", "1", "k"),
    ("ZINTERSTORE", "d", "1", "k"), ("ZDIFFSTORE", "d", "1", "k"), ("ZUNION", "1", "k"), ("ZINTER", "1", "k"),
    ("ZDIFF", "1", "k"), ("ZRANDMEMBER", "k"), ("ZSCAN", "k", "0"),
])
@pytest.mark.parametrize("other", [("SET", "k", "v"), ("HSET", "k", "f", "v")])
def test_zset_wrongtype(both, cmd, other):
    both(*other)
    both.err(*cmd, prefix="WRONGTYPE Operation against a key holding the wrong kind of value")
