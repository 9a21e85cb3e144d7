"""Bit operations on strings: SETBIT GETBIT BITCOUNT (BYTE/BIT) BITPOS BITOP."""

import random

import pytest


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


SETBIT_SCENARIOS = [
    scenario(("SETBIT", "b", "7", "1"), ("GET", "b"), ("GETBIT", "b", "7"), ("GETBIT", "b", "6")),
    scenario(("SETBIT", "b", "0", "1"), ("SETBIT", "b", "0", "1"), ("SETBIT", "b", "0", "0"), ("GET", "b")),
    scenario(("SETBIT", "b", "100", "1"), ("STRLEN", "b"), ("GET", "b")),
    scenario(("SETBIT", "b", "100", "0"), ("STRLEN", "b"), ("GET", "b")),
    scenario(("SET", "b", "A"), ("SETBIT", "b", "6", "1"), ("GET", "b")),
    scenario(("GETBIT", "nokey", "0")),
    scenario(("SET", "b", "a"), ("GETBIT", "b", "1"), ("GETBIT", "b", "2"), ("GETBIT", "b", "8"),
             ("GETBIT", "b", "1000000")),
    scenario(("SETBIT", "b", "7", "2")),
    scenario(("SETBIT", "b", "7", "-1")),
    scenario(("SETBIT", "b", "7", "x")),
    scenario(("SETBIT", "b", "-1", "1")),
    scenario(("SETBIT", "b", "x", "1")),
    scenario(("SETBIT", "b", "4294967296", "1")),
    scenario(("SETBIT", "b", "8000000", "1"), ("STRLEN", "b"), ("BITCOUNT", "b"), ("BITPOS", "b", "1"), ("DEL", "b")),
    scenario(("GETBIT", "b", "-1")),
    scenario(("GETBIT", "b", "4294967296")),
    scenario(("SETBIT", "b", "1")),
    scenario(("GETBIT", "b")),
    scenario(("SADD", "b", "m"), ("SETBIT", "b", "1", "1")),
    scenario(("SADD", "b", "m"), ("GETBIT", "b", "1")),
    scenario(("SET", "b", "12"), ("SETBIT", "b", "15", "1"), ("GET", "b"), ("INCR", "b")),
]


@pytest.mark.parametrize("cmds", SETBIT_SCENARIOS)
def test_setbit_getbit(both, cmds):
    both.seq(*cmds)


BITCOUNT_SCENARIOS = [
    scenario(("SET", "b", "foobar"), ("BITCOUNT", "b"), ("BITCOUNT", "b", "0", "0"), ("BITCOUNT", "b", "1", "1"),
             ("BITCOUNT", "b", "-2", "-1"), ("BITCOUNT", "b", "0", "-1"), ("BITCOUNT", "b", "5", "2"),
             ("BITCOUNT", "b", "-100", "100"), ("BITCOUNT", "b", "100", "200")),
    scenario(("SET", "b", "foobar"), ("BITCOUNT", "b", "0", "0", "BYTE"), ("BITCOUNT", "b", "1", "1", "BIT"),
             ("BITCOUNT", "b", "5", "30", "BIT"), ("BITCOUNT", "b", "-5", "-1", "BIT"),
             ("BITCOUNT", "b", "0", "-1", "bit"), ("BITCOUNT", "b", "47", "47", "BIT"),
             ("BITCOUNT", "b", "48", "100", "BIT"), ("BITCOUNT", "b", "-100", "-48", "BIT")),
    scenario(("BITCOUNT", "nokey"), ("BITCOUNT", "nokey", "0", "-1"), ("BITCOUNT", "nokey", "0", "-1", "BIT")),
    scenario(("SET", "b", ""), ("BITCOUNT", "b"), ("BITCOUNT", "b", "0", "-1")),
    scenario(("SET", "b", "x"), ("BITCOUNT", "b", "0")),
    scenario(("SET", "b", "x"), ("BITCOUNT", "b", "0", "1", "FOO")),
    scenario(("SET", "b", "x"), ("BITCOUNT", "b", "0", "1", "BIT", "x")),
    scenario(("SET", "b", "x"), ("BITCOUNT", "b", "a", "1")),
    scenario(("SET", "b", "x"), ("BITCOUNT", "b", "0", "9223372036854775808")),
    scenario(("BITCOUNT",)),
    scenario(("SADD", "b", "m"), ("BITCOUNT", "b")),
    scenario(("SET", "b", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
             ("BITCOUNT", "b"), ("BITCOUNT", "b", "3", "-3")),
]


@pytest.mark.parametrize("cmds", BITCOUNT_SCENARIOS)
def test_bitcount(both, cmds):
    both.seq(*cmds)


def test_bitcount_random(both):
    rnd = random.Random(7)
    for n in (1, 7, 8, 31, 64, 129, 1000):
        val = bytes(rnd.randrange(256) for _ in range(n))
        both("SET", "b", val)
        both("BITCOUNT", "b")
        for _ in range(5):
            s, e = rnd.randrange(-n - 2, n + 2), rnd.randrange(-n - 2, n + 2)
            both("BITCOUNT", "b", s, e)
            both("BITCOUNT", "b", s * 8 + 3, e * 8 + 5, "BIT")


BITPOS_SCENARIOS = [
    scenario(("SET", "b", "\xff\xf0\x00"), ("BITPOS", "b", "0"), ("BITPOS", "b", "1"),
             ("BITPOS", "b", "0", "2"), ("BITPOS", "b", "1", "2"), ("BITPOS", "b", "1", "1", "2"),
             ("BITPOS", "b", "0", "-1"), ("BITPOS", "b", "1", "-3", "-2")),
    scenario(("SET", "b", "\x00\xff\xf0"), ("BITPOS", "b", "1", "0"), ("BITPOS", "b", "1", "2", "-1"),
             ("BITPOS", "b", "1", "7", "15", "BIT"), ("BITPOS", "b", "1", "7", "-3", "BIT"),
             ("BITPOS", "b", "0", "8", "15", "BIT"), ("BITPOS", "b", "1", "20", "23", "BIT"),
             ("BITPOS", "b", "0", "20", "23", "BIT"), ("BITPOS", "b", "1", "0", "-1", "BYTE")),
    scenario(("SET", "b", "\xff\xff\xff"), ("BITPOS", "b", "0"), ("BITPOS", "b", "0", "0"),
             ("BITPOS", "b", "0", "0", "-1"), ("BITPOS", "b", "0", "0", "-1", "BIT"), ("BITPOS", "b", "1")),
    scenario(("SET", "b", "\x00\x00\x00"), ("BITPOS", "b", "1"), ("BITPOS", "b", "0"),
             ("BITPOS", "b", "1", "1", "-1"), ("BITPOS", "b", "0", "5", "10")),
    scenario(("BITPOS", "nokey", "0"), ("BITPOS", "nokey", "1"), ("BITPOS", "nokey", "0", "1", "2")),
    scenario(("SET", "b", ""), ("BITPOS", "b", "0"), ("BITPOS", "b", "1")),
    scenario(("SET", "b", "x"), ("BITPOS", "b", "2")),
    scenario(("SET", "b", "x"), ("BITPOS", "b", "-1")),
    scenario(("SET", "b", "x"), ("BITPOS", "b", "a")),
    scenario(("SET", "b", "x"), ("BITPOS", "b", "1", "a")),
    scenario(("SET", "b", "x"), ("BITPOS", "b", "1", "0", "1", "FOO")),
    scenario(("SET", "b", "x"), ("BITPOS", "b", "1", "0", "1", "BIT", "x")),
    scenario(("BITPOS", "b")),
    scenario(("SADD", "b", "m"), ("BITPOS", "b", "1")),
]


@pytest.mark.parametrize("cmds", BITPOS_SCENARIOS)
def test_bitpos(both, cmds):
    both.seq(*cmds)


def test_bitpos_random(both):
    rnd = random.Random(11)
    for n in (1, 3, 9, 40):
        val = bytes(rnd.choice([0, 255, rnd.randrange(256)]) for _ in range(n))
        both("SET", "b", val)
        for bit in ("0", "1"):
            both("BITPOS", "b", bit)
            for _ in range(4):
                s, e = rnd.randrange(-n - 1, n + 1), rnd.randrange(-n - 1, n + 1)
                both("BITPOS", "b", bit, s)
                both("BITPOS", "b", bit, s, e)
                both("BITPOS", "b", bit, s * 8 - 3, e * 8 + 2, "BIT")


BITOP_SCENARIOS = [
    scenario(("SET", "a", "foobar"), ("SET", "b", "abcdef"), ("BITOP", "AND", "d", "a", "b"), ("GET", "d")),
    scenario(("SET", "a", "foobar"), ("SET", "b", "abcdef"), ("BITOP", "OR", "d", "a", "b"), ("GET", "d")),
    scenario(("SET", "a", "foobar"), ("SET", "b", "abcdef"), ("BITOP", "XOR", "d", "a", "b"), ("GET", "d")),
    scenario(("SET", "a", "foobar"), ("BITOP", "NOT", "d", "a"), ("GET", "d")),
    scenario(("SET", "a", "ab"), ("SET", "b", "abcdef"), ("BITOP", "and", "d", "a", "b"), ("GET", "d")),
    scenario(("SET", "a", "ab"), ("SET", "b", "abcdef"), ("BITOP", "or", "d", "a", "b", "nokey"), ("GET", "d")),
    scenario(("SET", "a", "ab"), ("BITOP", "AND", "d", "a", "nokey"), ("GET", "d")),
    scenario(("SET", "a", "ab"), ("BITOP", "XOR", "d", "a", "a"), ("GET", "d")),
    scenario(("SET", "a", "xyz"), ("BITOP", "AND", "a", "a"), ("GET", "a")),
    scenario(("SET", "d", "old"), ("BITOP", "AND", "d", "nokey1", "nokey2"), ("EXISTS", "d")),
    scenario(("SET", "d", "old", "EX", "100"), ("SET", "a", "x"), ("BITOP", "OR", "d", "a"), ("TTL", "d")),
    scenario(("SET", "a", ""), ("BITOP", "NOT", "d", "a"), ("EXISTS", "d")),
    scenario(("BITOP", "NOT", "d", "a", "b")),
    scenario(("BITOP", "FOO", "d", "a")),
    scenario(("BITOP", "AND", "d")),
    scenario(("SADD", "a", "m"), ("BITOP", "AND", "d", "a")),
    scenario(("SET", "a", "x"), ("SADD", "d", "m"), ("BITOP", "AND", "d", "a"), ("TYPE", "d")),
]


@pytest.mark.parametrize("cmds", BITOP_SCENARIOS)
def test_bitop(both, cmds):
    both.seq(*cmds)


def test_bitop_random(both):
    rnd = random.Random(3)
    for _ in range(10):
        vals = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40))) for _ in range(3)]
        for i, v in enumerate(vals):
            both("SET", f"src{i}", v)
        for op in ("AND", "OR", "XOR"):
            both("BITOP", op, "dst", "src0", "src1", "src2")
            both("GET", "dst")
        both("BITOP", "NOT", "dst", "src0")
        both("GET", "dst")
