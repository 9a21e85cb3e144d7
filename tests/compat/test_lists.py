"""Lists: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM LTRIM LPOS
LMOVE RPOPLPUSH LMPOP, WRONGTYPE on every list command, and deletion of emptied lists.

Every reply is compared between redis-server and the target; most are also pinned to the value
Redis 7.0 gives, so the expectations document the behaviour the replica must have.
(The blocking variants live in test_blocking.py.)
"""

import pytest

from harness import Err, call, exchange

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INT = "ERR value is not an integer or out of range"
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"
SYNTAX = "ERR syntax error"


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


def items(both, key="l"):
    return both("LRANGE", key, "0", "-1")


def gone(both, key):
    assert both("EXISTS", key) == 0
    assert both("TYPE", key) == b"none"
    assert both("LLEN", key) == 0


# ---------------------------------------------------------------- push


def test_lpush_rpush_order(both):
    assert both("LPUSH", "l", "a", "b", "c") == 3
    assert items(both) == [b"c", b"b", b"a"]
    assert both("RPUSH", "l", "x", "y") == 5
    assert items(both) == [b"c", b"b", b"a", b"x", b"y"]
    assert both("LPUSH", "l", "") == 6
    assert both("LINDEX", "l", "0") == b""
    assert both("TYPE", "l") == b"list"
    assert both("LLEN", "l") == 6


def test_push_duplicates_and_binary(both):
    vals = [b"a", b"a", b"\x00\xff\r\n", b"123", b"-5", b"1.5", b"a"]
    assert both("RPUSH", "l", *vals) == 7
    assert items(both) == vals
    assert both("LLEN", "l") == 7


def test_pushx(both):
    assert both("LPUSHX", "l", "a") == 0
    assert both("RPUSHX", "l", "a", "b") == 0
    assert both("EXISTS", "l") == 0
    both("RPUSH", "l", "m")
    assert both("LPUSHX", "l", "a", "b") == 3
    assert both("RPUSHX", "l", "y", "z") == 5
    assert items(both) == [b"b", b"a", b"m", b"y", b"z"]


@pytest.mark.parametrize("cmd", ["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"])
def test_push_arity(both, cmd):
    both.err(cmd, "l", prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")
    both.err(cmd, prefix="ERR wrong number of arguments")


def test_push_large_list(both):
    vals = [f"v{i}" for i in range(1500)]
    assert both("RPUSH", "l", *vals) == 1500
    assert both("LLEN", "l") == 1500
    assert both("LINDEX", "l", "777") == b"v777"
    assert both("LINDEX", "l", "-1") == b"v1499"
    r = both("LRANGE", "l", "0", "-1")
    assert r == [v.encode() for v in vals]
    assert both("LRANGE", "l", "1000", "1004") == [b"v1000", b"v1001", b"v1002", b"v1003", b"v1004"]
    big = "x" * 100_000
    assert both("LPUSH", "l", big) == 1501
    assert both("LINDEX", "l", "0") == big.encode()


# ---------------------------------------------------------------- pop


def test_pop_single(both):
    both("RPUSH", "l", "a", "b", "c")
    assert both("LPOP", "l") == b"a"
    assert both("RPOP", "l") == b"c"
    assert both("LPOP", "l") == b"b"
    gone(both, "l")
    assert both("LPOP", "l") is None
    assert both("RPOP", "l") is None


def test_pop_count(both):
    both("RPUSH", "l", "a", "b", "c", "d", "e")
    assert both("LPOP", "l", "2") == [b"a", b"b"]
    assert both("RPOP", "l", "2") == [b"e", b"d"]
    assert both("LPOP", "l", "1") == [b"c"]
    gone(both, "l")
    both("RPUSH", "l", "a", "b")
    assert both("RPOP", "l", "10") == [b"b", b"a"]
    gone(both, "l")


def test_pop_count_zero_and_missing_key(both):
    both("RPUSH", "l", "a", "b")
    assert both("LPOP", "l", "0") == []
    assert both("RPOP", "l", "0") == []
    assert both("LLEN", "l") == 2
    # a missing key with a count: a null (array) reply, the same on RESP2 as a nil
    assert both("LPOP", "nokey", "2") is None
    assert both("RPOP", "nokey", "2") is None
    assert both("LPOP", "nokey", "0") is None


@pytest.mark.parametrize("cmd", ["LPOP", "RPOP"])
@pytest.mark.parametrize("count,error", [
    ("-1", MUST_BE_POSITIVE), ("-100", MUST_BE_POSITIVE), ("x", MUST_BE_POSITIVE),
    ("1.5", MUST_BE_POSITIVE), ("", MUST_BE_POSITIVE), ("99999999999999999999", MUST_BE_POSITIVE),
])
def test_pop_count_errors(both, cmd, count, error):
    both("RPUSH", "l", "a")
    assert both.err(cmd, "l", count) == error
    assert both.err(cmd, "nokey", count) == error
    assert both("LLEN", "l") == 1


@pytest.mark.parametrize("cmd", ["LPOP", "RPOP"])
def test_pop_arity(both, cmd):
    both.err(cmd, prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")
    both.err(cmd, "l", "1", "2", prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")


def test_pop_resp3(both3):
    both3("RPUSH", "l", "a", "b")
    assert both3("LPOP", "nokey") is None
    assert both3("LPOP", "nokey", "1") is None
    assert both3("LPOP", "l", "1") == [b"a"]
    assert both3("RPOP", "l") == b"b"


def test_pop_raw_bytes(servers):
    """Nil bulk for a single pop, nil array for a count pop of a missing key, exact bytes."""
    cmds = [("LPOP", "nokey"), ("LPOP", "nokey", "1"), ("RPUSH", "l", "a"), ("LPOP", "l", "0"),
            ("LPOP", "l", "5"), ("RPOP", "l")]
    replies = [exchange(s.port, cmds) for s in servers]
    assert replies[0] == replies[1]
    assert replies[0] == [b"$-1\r\n", b"*-1\r\n", b":1\r\n", b"*0\r\n", b"*1\r\n$1\r\na\r\n", b"$-1\r\n"]


# ---------------------------------------------------------------- LLEN LRANGE LINDEX


def test_llen(both):
    assert both("LLEN", "nokey") == 0
    both("RPUSH", "l", "a", "b")
    assert both("LLEN", "l") == 2
    both.err("LLEN", prefix="ERR wrong number of arguments for 'llen' command")
    both.err("LLEN", "a", "b", prefix="ERR wrong number of arguments")


@pytest.mark.parametrize("start,stop,expected", [
    ("0", "-1", "abcde"), ("0", "0", "a"), ("1", "3", "bcd"), ("-2", "-1", "de"), ("-100", "1", "ab"),
    ("-100", "-100", ""), ("3", "100", "de"), ("5", "10", ""), ("4", "2", ""), ("-1", "-2", ""),
    ("0", "-6", ""), ("0", "-5", "a"), ("2", "2", "c"), ("-5", "-5", "a"), ("100", "200", ""),
    ("-3", "3", "cd"), ("0", "9223372036854775807", "abcde"), ("-9223372036854775808", "0", "a"),
])
def test_lrange(both, start, stop, expected):
    both("RPUSH", "l", "a", "b", "c", "d", "e")
    assert both("LRANGE", "l", start, stop) == [c.encode() for c in expected]


def test_lrange_errors_and_missing(both):
    assert both("LRANGE", "nokey", "0", "-1") == []
    both("RPUSH", "l", "a")
    assert both.err("LRANGE", "l", "0", "x") == NOT_INT
    assert both.err("LRANGE", "l", "1.0", "2") == NOT_INT
    assert both.err("LRANGE", "l", "0", "99999999999999999999") == NOT_INT
    both.err("LRANGE", "l", "0", prefix="ERR wrong number of arguments for 'lrange' command")


@pytest.mark.parametrize("index,expected", [
    ("0", b"a"), ("2", b"c"), ("3", None), ("-1", b"c"), ("-3", b"a"), ("-4", None), ("100", None),
    ("-9223372036854775808", None), ("9223372036854775807", None),
])
def test_lindex(both, index, expected):
    both("RPUSH", "l", "a", "b", "c")
    assert both("LINDEX", "l", index) == expected


def test_lindex_errors(both):
    assert both("LINDEX", "nokey", "0") is None
    both("RPUSH", "l", "a")
    assert both.err("LINDEX", "l", "x") == NOT_INT
    assert both.err("LINDEX", "l", "") == NOT_INT
    both.err("LINDEX", "l", prefix="ERR wrong number of arguments for 'lindex' command")


# ---------------------------------------------------------------- LSET


def test_lset(both):
    both("RPUSH", "l", "a", "b", "c")
    assert both("LSET", "l", "0", "A") == b"OK"
    assert both("LSET", "l", "-1", "C") == b"OK"
    assert both("LSET", "l", "1", "") == b"OK"
    assert items(both) == [b"A", b"", b"C"]
    assert both("LSET", "l", "1", "x" * 5000) == b"OK"
    assert both("LINDEX", "l", "1") == b"x" * 5000


def test_lset_errors(both):
    assert both.err("LSET", "nokey", "0", "x") == "ERR no such key"
    assert both("EXISTS", "nokey") == 0
    both("RPUSH", "l", "a", "b")
    assert both.err("LSET", "l", "2", "x") == "ERR index out of range"
    assert both.err("LSET", "l", "-3", "x") == "ERR index out of range"
    assert both.err("LSET", "l", "x", "x") == NOT_INT
    both.err("LSET", "l", "0", prefix="ERR wrong number of arguments for 'lset' command")
    assert items(both) == [b"a", b"b"]


# ---------------------------------------------------------------- LINSERT


def test_linsert(both):
    both("RPUSH", "l", "a", "b", "a")
    assert both("LINSERT", "l", "BEFORE", "a", "x") == 4   # first occurrence only
    assert items(both) == [b"x", b"a", b"b", b"a"]
    assert both("LINSERT", "l", "after", "a", "y") == 5
    assert items(both) == [b"x", b"a", b"y", b"b", b"a"]
    assert both("LINSERT", "l", "AFTER", "a", "z") == 6
    assert both("LINSERT", "l", "Before", "x", "first") == 7
    assert both("LINSERT", "l", "AFTER", "b", "") == 8
    assert items(both) == [b"first", b"x", b"a", b"z", b"y", b"b", b"", b"a"]
    assert both("LINSERT", "l", "AFTER", "missing", "q") == -1
    assert both("LLEN", "l") == 8
    assert both("LINSERT", "nokey", "BEFORE", "a", "q") == 0
    assert both("EXISTS", "nokey") == 0


def test_linsert_errors(both):
    both("RPUSH", "l", "a")
    assert both.err("LINSERT", "l", "MIDDLE", "a", "x") == SYNTAX
    assert both.err("LINSERT", "nokey", "MIDDLE", "a", "x") == SYNTAX
    both.err("LINSERT", "l", "BEFORE", "a", prefix="ERR wrong number of arguments for 'linsert' command")
    both.err("LINSERT", "l", "BEFORE", "a", "x", "y", prefix="ERR wrong number of arguments")
    assert items(both) == [b"a"]


# ---------------------------------------------------------------- LREM


@pytest.mark.parametrize("count,removed,rest", [
    ("0", 4, "bcb"),
    ("1", 1, "bacaba"),
    ("2", 2, "bcaba"),
    ("100", 4, "bcb"),
    ("-1", 1, "abacab"),
    ("-2", 2, "abacb"),
    ("-100", 4, "bcb"),
])
def test_lrem(both, count, removed, rest):
    both("RPUSH", "l", *"abacaba")
    assert both("LREM", "l", count, "a") == removed
    assert items(both) == [c.encode() for c in rest]


def test_lrem_edges(both):
    assert both("LREM", "nokey", "0", "a") == 0
    both("RPUSH", "l", "a", "a")
    assert both("LREM", "l", "0", "zz") == 0
    assert both("LREM", "l", "0", "a") == 2
    gone(both, "l")
    both("RPUSH", "l", "a")
    assert both.err("LREM", "l", "x", "a") == NOT_INT
    both.err("LREM", "l", "0", prefix="ERR wrong number of arguments for 'lrem' command")


# ---------------------------------------------------------------- LTRIM


@pytest.mark.parametrize("start,stop,rest", [
    ("0", "-1", "abcde"), ("1", "-2", "bcd"), ("0", "0", "a"), ("-2", "-1", "de"), ("2", "100", "cde"),
    ("-100", "1", "ab"), ("3", "1", ""), ("5", "10", ""), ("-1", "-2", ""), ("-100", "-100", ""),
])
def test_ltrim(both, start, stop, rest):
    both("RPUSH", "l", *"abcde")
    assert both("LTRIM", "l", start, stop) == b"OK"
    assert items(both) == [c.encode() for c in rest]
    assert both("EXISTS", "l") == (1 if rest else 0)
    if not rest:
        gone(both, "l")


def test_ltrim_errors(both):
    assert both("LTRIM", "nokey", "0", "1") == b"OK"
    assert both("EXISTS", "nokey") == 0
    both("RPUSH", "l", "a")
    assert both.err("LTRIM", "l", "a", "1") == NOT_INT
    both.err("LTRIM", "l", "0", prefix="ERR wrong number of arguments for 'ltrim' command")


# ---------------------------------------------------------------- LPOS


LPOS_LIST = ["a", "b", "c", "1", "2", "3", "c", "c"]


@pytest.mark.parametrize("args,expected", [
    (("c",), 2),
    (("z",), None),
    (("c", "RANK", "1"), 2),
    (("c", "RANK", "2"), 6),
    (("c", "RANK", "3"), 7),
    (("c", "RANK", "4"), None),
    (("c", "RANK", "-1"), 7),
    (("c", "RANK", "-3"), 2),
    (("c", "RANK", "-4"), None),
    (("c", "COUNT", "2"), [2, 6]),
    (("c", "COUNT", "0"), [2, 6, 7]),
    (("c", "COUNT", "100"), [2, 6, 7]),
    (("z", "COUNT", "0"), []),
    (("z", "COUNT", "5"), []),
    (("c", "RANK", "2", "COUNT", "0"), [6, 7]),
    (("c", "RANK", "-1", "COUNT", "2"), [7, 6]),
    (("c", "RANK", "-2", "COUNT", "0"), [6, 2]),
    (("c", "MAXLEN", "3"), 2),
    (("c", "MAXLEN", "2"), None),
    (("c", "MAXLEN", "0"), 2),
    (("c", "COUNT", "0", "MAXLEN", "7"), [2, 6]),
    (("c", "RANK", "-1", "MAXLEN", "1"), 7),
    (("c", "RANK", "-1", "COUNT", "0", "MAXLEN", "2"), [7, 6]),
    (("c", "COUNT", "0", "MAXLEN", "1"), []),
    (("1",), 3),
    (("c", "rank", "2", "count", "1", "maxlen", "0"), [6]),
    (("c", "COUNT", "1", "COUNT", "2"), [2, 6]),        # the last option wins
    (("c", "RANK", "-1", "RANK", "1"), 2),
    (("c", "RANK", "9223372036854775807"), None),
    (("c", "RANK", "-9223372036854775807"), None),
])
def test_lpos(both, args, expected):
    both("RPUSH", "l", *LPOS_LIST)
    assert both("LPOS", "l", *args) == expected


@pytest.mark.parametrize("args,error", [
    (("c", "RANK", "0"), "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                         "second ... or use negative to start from the end of the list"),
    (("c", "COUNT", "-1"), "ERR COUNT can't be negative"),
    (("c", "MAXLEN", "-1"), "ERR MAXLEN can't be negative"),
    (("c", "RANK", "x"), NOT_INT),
    (("c", "COUNT", "x"), "ERR COUNT can't be negative"),       # Redis 7.0's text for a non-number
    (("c", "MAXLEN", "1.5"), "ERR MAXLEN can't be negative"),
    (("c", "FOO"), SYNTAX),
    (("c", "RANK"), SYNTAX),
    (("c", "COUNT", "1", "MAXLEN"), SYNTAX),
])
def test_lpos_errors(both, args, error):
    both("RPUSH", "l", *LPOS_LIST)
    assert both.err("LPOS", "l", *args) == error


def test_lpos_missing_key(both):
    assert both("LPOS", "nokey", "a") is None
    assert both("LPOS", "nokey", "a", "COUNT", "0") == []
    assert both("LPOS", "nokey", "a", "RANK", "-1", "COUNT", "3") == []
    both.err("LPOS", "l", prefix="ERR wrong number of arguments for 'lpos' command")


# ---------------------------------------------------------------- LMOVE / RPOPLPUSH


@pytest.mark.parametrize("wherefrom,whereto,popped,src,dst", [
    ("LEFT", "LEFT", b"a", "bc", "axy"),
    ("LEFT", "RIGHT", b"a", "bc", "xya"),
    ("RIGHT", "LEFT", b"c", "ab", "cxy"),
    ("RIGHT", "RIGHT", b"c", "ab", "xyc"),
    ("left", "right", b"a", "bc", "xya"),
])
def test_lmove(both, wherefrom, whereto, popped, src, dst):
    both("RPUSH", "src", "a", "b", "c")
    both("RPUSH", "dst", "x", "y")
    assert both("LMOVE", "src", "dst", wherefrom, whereto) == popped
    assert items(both, "src") == [c.encode() for c in src]
    assert items(both, "dst") == [c.encode() for c in dst]


@pytest.mark.parametrize("wherefrom,whereto,after", [
    ("LEFT", "RIGHT", "bca"),   # rotation
    ("RIGHT", "LEFT", "cab"),   # rotation the other way
    ("LEFT", "LEFT", "abc"),
    ("RIGHT", "RIGHT", "abc"),
])
def test_lmove_same_key(both, wherefrom, whereto, after):
    both("RPUSH", "l", "a", "b", "c")
    assert both("LMOVE", "l", "l", wherefrom, whereto) == (b"a" if wherefrom == "LEFT" else b"c")
    assert items(both) == [c.encode() for c in after]


def test_lmove_single_element_same_key(both):
    both("RPUSH", "l", "only")
    assert both("LMOVE", "l", "l", "LEFT", "RIGHT") == b"only"
    assert items(both) == [b"only"]
    assert both("RPOPLPUSH", "l", "l") == b"only"
    assert items(both) == [b"only"]


def test_lmove_creates_destination_and_deletes_source(both):
    both("RPUSH", "src", "a")
    assert both("LMOVE", "src", "dst", "LEFT", "LEFT") == b"a"
    gone(both, "src")
    assert items(both, "dst") == [b"a"]
    assert both("TYPE", "dst") == b"list"
    assert both("LMOVE", "nokey", "dst", "LEFT", "LEFT") is None
    assert both("EXISTS", "nokey") == 0
    assert items(both, "dst") == [b"a"]


def test_lmove_errors(both):
    both("RPUSH", "src", "a")
    both("SET", "str", "v")
    assert both.err("LMOVE", "src", "dst", "UP", "LEFT") == SYNTAX
    assert both.err("LMOVE", "src", "dst", "LEFT", "DOWN") == SYNTAX
    assert both.err("LMOVE", "src", "str", "LEFT", "LEFT") == WRONGTYPE
    assert items(both, "src") == [b"a"]           # nothing was popped
    assert both.err("LMOVE", "str", "dst", "LEFT", "LEFT") == WRONGTYPE
    assert both("LMOVE", "nokey", "str", "LEFT", "LEFT") is None   # empty source: no type check
    both.err("LMOVE", "src", "dst", "LEFT", prefix="ERR wrong number of arguments for 'lmove' command")


def test_rpoplpush(both):
    both("RPUSH", "src", "a", "b", "c")
    assert both("RPOPLPUSH", "src", "dst") == b"c"
    assert both("RPOPLPUSH", "src", "dst") == b"b"
    assert items(both, "dst") == [b"b", b"c"]
    assert both("RPOPLPUSH", "src", "src") == b"a"
    assert both("RPOPLPUSH", "src", "dst") == b"a"
    gone(both, "src")
    assert items(both, "dst") == [b"a", b"b", b"c"]
    assert both("RPOPLPUSH", "src", "dst") is None
    both("RPUSH", "rot", "1", "2", "3")
    assert both("RPOPLPUSH", "rot", "rot") == b"3"
    assert items(both, "rot") == [b"3", b"1", b"2"]
    both("SET", "str", "v")
    assert both.err("RPOPLPUSH", "rot", "str") == WRONGTYPE
    assert both.err("RPOPLPUSH", "str", "rot") == WRONGTYPE
    both.err("RPOPLPUSH", "rot", prefix="ERR wrong number of arguments for 'rpoplpush' command")


# ---------------------------------------------------------------- LMPOP


def test_lmpop(both):
    both("RPUSH", "l1", "a", "b", "c")
    both("RPUSH", "l2", "x", "y")
    assert both("LMPOP", "2", "nokey", "l1", "LEFT") == [b"l1", [b"a"]]
    assert both("LMPOP", "2", "l1", "l2", "RIGHT", "COUNT", "5") == [b"l1", [b"c", b"b"]]
    gone(both, "l1")
    assert both("LMPOP", "2", "l1", "l2", "left", "count", "1") == [b"l2", [b"x"]]
    assert both("LMPOP", "1", "l2", "RIGHT") == [b"l2", [b"y"]]
    gone(both, "l2")
    assert both("LMPOP", "2", "l1", "l2", "LEFT") is None
    assert both("LMPOP", "1", "nokey", "LEFT", "COUNT", "10") is None


def test_lmpop_first_nonempty_key_wins(both):
    both("RPUSH", "b", "1", "2")
    both("RPUSH", "c", "3")
    assert both("LMPOP", "3", "a", "b", "c", "LEFT", "COUNT", "10") == [b"b", [b"1", b"2"]]
    assert both("LMPOP", "3", "a", "b", "c", "LEFT", "COUNT", "10") == [b"c", [b"3"]]


def test_lmpop_wrongtype(both):
    both("SET", "str", "v")
    both("RPUSH", "l", "a")
    assert both.err("LMPOP", "2", "str", "l", "LEFT") == WRONGTYPE
    assert both.err("LMPOP", "2", "nokey", "str", "LEFT") == WRONGTYPE
    assert both("LMPOP", "2", "l", "str", "LEFT") == [b"l", [b"a"]]   # stops at the first non-empty key


@pytest.mark.parametrize("args,error", [
    (("0", "l", "LEFT"), "ERR numkeys should be greater than 0"),
    (("-1", "l", "LEFT"), "ERR numkeys should be greater than 0"),
    (("x", "l", "LEFT"), "ERR numkeys should be greater than 0"),
    (("1", "l", "UP"), SYNTAX),
    (("1", "l", "LEFT", "COUNT", "0"), "ERR count should be greater than 0"),
    (("1", "l", "LEFT", "COUNT", "-1"), "ERR count should be greater than 0"),
    (("1", "l", "LEFT", "COUNT", "x"), "ERR count should be greater than 0"),
    (("1", "l", "LEFT", "COUNT"), SYNTAX),
    (("1", "l", "LEFT", "COUNT", "2", "COUNT", "3"), SYNTAX),
    (("1", "l", "LEFT", "FOO"), SYNTAX),
    (("1", "l", "LEFT", "FOO", "1"), SYNTAX),
    (("3", "l", "LEFT"), SYNTAX),
    (("2", "l", "LEFT"), SYNTAX),
    (("1", "l", "l2", "LEFT"), SYNTAX),
])
def test_lmpop_errors(both, args, error):
    both("RPUSH", "l", "a")
    assert both.err("LMPOP", *args) == error
    assert items(both) == [b"a"]


def test_lmpop_arity(both):
    both.err("LMPOP", "1", "l", prefix="ERR wrong number of arguments for 'lmpop' command")
    both.err("LMPOP", "1", prefix="ERR wrong number of arguments")


def test_lmpop_resp3(both3):
    both3("RPUSH", "l", "a", "b")
    assert both3("LMPOP", "1", "l", "LEFT", "COUNT", "1") == [b"l", [b"a"]]
    assert both3("LMPOP", "1", "nokey", "LEFT") is None


# ---------------------------------------------------------------- WRONGTYPE everywhere


WRONGTYPE_COMMANDS = [
    ("LPUSH", "k", "x"), ("RPUSH", "k", "x"), ("LPUSHX", "k", "x"), ("RPUSHX", "k", "x"),
    ("LPOP", "k"), ("RPOP", "k"), ("LPOP", "k", "2"), ("RPOP", "k", "0"), ("LLEN", "k"),
    ("LRANGE", "k", "0", "-1"), ("LINDEX", "k", "0"), ("LSET", "k", "0", "x"),
    ("LINSERT", "k", "BEFORE", "a", "b"), ("LREM", "k", "0", "a"), ("LTRIM", "k", "0", "1"),
    ("LPOS", "k", "a"), ("LPOS", "k", "a", "COUNT", "0"), ("LMOVE", "k", "dst", "LEFT", "RIGHT"),
    ("RPOPLPUSH", "k", "dst"), ("LMPOP", "1", "k", "LEFT"), ("BLPOP", "k", "0.01"), ("BRPOP", "k", "0.01"),
    ("BLMOVE", "k", "dst", "LEFT", "LEFT", "0.01"), ("BRPOPLPUSH", "k", "dst", "0.01"),
    ("BLMPOP", "0.01", "1", "k", "LEFT"),
]


@pytest.mark.parametrize("setup", [("SET", "k", "v"), ("HSET", "k", "f", "v"), ("SADD", "k", "m"),
                                   ("ZADD", "k", "1", "m")], ids=["string", "hash", "set", "zset"])
@pytest.mark.parametrize("cmd", WRONGTYPE_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_list_wrongtype(both, setup, cmd):
    both(*setup)
    assert both.err(*cmd) == WRONGTYPE
    assert both("TYPE", "k") == {"SET": b"string", "HSET": b"hash", "SADD": b"set", "ZADD": b"zset"}[setup[0]]
    assert both("EXISTS", "dst") == 0


def test_other_types_on_a_list(both):
    both("RPUSH", "k", "a")
    for cmd in [("GET", "k"), ("HGET", "k", "f"), ("SADD", "k", "m"), ("ZADD", "k", "1", "m"),
                ("INCR", "k"), ("APPEND", "k", "x"), ("SMEMBERS", "k"), ("ZRANGE", "k", "0", "-1")]:
        assert both.err(*cmd) == WRONGTYPE
    assert both("SET", "k", "v") == b"OK"     # SET overwrites any type
    assert both("TYPE", "k") == b"string"


# ---------------------------------------------------------------- emptied lists disappear


@pytest.mark.parametrize("cmd", [
    ("LPOP", "l"), ("RPOP", "l"), ("LPOP", "l", "5"), ("RPOP", "l", "2"), ("LREM", "l", "0", "a"),
    ("LTRIM", "l", "5", "1"), ("LMOVE", "l", "other", "LEFT", "LEFT"), ("RPOPLPUSH", "l", "other"),
    ("LMPOP", "1", "l", "RIGHT", "COUNT", "9"),
], ids=lambda c: " ".join(c))
def test_emptied_list_is_deleted(both, cmd):
    both("RPUSH", "l", "a")
    both(*cmd)
    gone(both, "l")
    assert both("KEYS", "l") == []
    assert both("DBSIZE") == (1 if cmd[0] in ("LMOVE", "RPOPLPUSH") else 0)
    # and a new list can be created under the same name, with any type
    assert both("SET", "l", "v") == b"OK"
    assert both("TYPE", "l") == b"string"


def test_list_key_commands(both):
    """Generic key commands on lists: RENAME, COPY (a deep copy), EXPIRE, DEL."""
    both("RPUSH", "l", "a", "b", "c")
    assert both("RENAME", "l", "l2") == b"OK"
    assert items(both, "l2") == [b"a", b"b", b"c"]
    assert both("COPY", "l2", "l3") == 1
    assert both("RPUSH", "l3", "d") == 4
    assert both("LLEN", "l2") == 3
    assert both("EXPIRE", "l2", "100") == 1
    assert both("TTL", "l2") == 100
    assert both("DEL", "l2", "l3") == 2
    assert both("DBSIZE") == 0


def test_lists_in_transaction(both):
    assert both("MULTI") == b"OK"
    for c in [("RPUSH", "l", "a", "b", "c"), ("LPOP", "l"), ("LRANGE", "l", "0", "-1"),
              ("LMOVE", "l", "m", "RIGHT", "LEFT"), ("LLEN", "m"), ("LSET", "nokey", "0", "x"), ("RPOP", "l", "3")]:
        assert both(*c) == b"QUEUED"
    assert both("EXEC") == [3, b"a", [b"b", b"c"], b"c", 1, Err("ERR no such key"), [b"b"]]
    gone(both, "l")


def test_list_scenario_mix(both):
    """A longer mixed sequence; every reply compared."""
    both("RPUSH", "q", *[str(i) for i in range(50)])
    for i in range(25):
        both("LMOVE", "q", "q", "LEFT", "RIGHT")
        both("LREM", "q", "1", str(i * 2))
        both("LINSERT", "q", "AFTER", str(i * 2 + 1), f"x{i}")
        both("LPOS", "q", f"x{i}")
    both("LTRIM", "q", "3", "-3")
    both("LRANGE", "q", "0", "-1")
    both("LPOS", "q", "x3", "COUNT", "0")
    both("LLEN", "q")
