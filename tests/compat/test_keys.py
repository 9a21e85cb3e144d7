"""Generic key commands: DEL UNLINK EXISTS TYPE TOUCH KEYS SCAN RANDOMKEY RENAME RENAMENX COPY."""

import pytest

from harness import Err, call


def _populate(both):
    both.seq(("SET", "str", "v"), ("HSET", "hash", "f", "v"), ("SADD", "set", "m"),
             ("ZADD", "zset", "1", "m"), ("PFADD", "hll", "a"), ("SET", "int", "42"))


# ---------------------------------------------------------------- DEL / UNLINK / EXISTS / TOUCH


@pytest.mark.parametrize("cmd", ["DEL", "UNLINK"])
def test_del_unlink(both, cmd):
    _populate(both)
    assert both(cmd, "str") == 1
    assert both(cmd, "str") == 0
    assert both(cmd, "hash", "set", "nokey", "zset") == 3
    assert both(cmd, "hll", "hll", "int") == 2
    assert both("DBSIZE") == 0
    both.err(cmd, prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")


def test_exists(both):
    _populate(both)
    assert both("EXISTS", "str") == 1
    assert both("EXISTS", "nokey") == 0
    assert both("EXISTS", "str", "hash", "nokey") == 2
    assert both("EXISTS", "str", "str", "str") == 3
    both.err("EXISTS", prefix="ERR wrong number of arguments for 'exists' command")


def test_touch(both):
    _populate(both)
    assert both("TOUCH", "str", "hash", "nokey") == 2
    assert both("TOUCH", "nokey") == 0
    assert both("TOUCH", "str", "str") == 2


def test_type(both):
    _populate(both)
    assert both("TYPE", "str") == b"string"
    assert both("TYPE", "int") == b"string"
    assert both("TYPE", "hash") == b"hash"
    assert both("TYPE", "set") == b"set"
    assert both("TYPE", "zset") == b"zset"
    assert both("TYPE", "hll") == b"string"
    assert both("TYPE", "nokey") == b"none"
    both.err("TYPE", prefix="ERR wrong number of arguments for 'type' command")
    both.err("TYPE", "a", "b", prefix="ERR wrong number of arguments for 'type' command")


def test_type_changes_after_delete(both):
    both.seq(("SET", "k", "v"), ("TYPE", "k"), ("DEL", "k"), ("SADD", "k", "m"), ("TYPE", "k"),
             ("GET", "k"), ("DEL", "k"), ("ZADD", "k", "2", "m"), ("TYPE", "k"))


def test_binary_key_names(both):
    for key in (b"\x00", b"a b", b"\xff\xfe", b"k\r\nx", b"", "ключ".encode()):
        assert both("SET", key, b"val") == b"OK"
        assert both("GET", key) == b"val"
        assert both("EXISTS", key) == 1
    assert both("DBSIZE") == 6
    both.unordered("KEYS", "*")


# ---------------------------------------------------------------- KEYS


PATTERNS = ["*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "user:*", "*:1*", r"h\*llo",
            "nomatch*", "?", "[", "user:[0-9]", "*o", r"a\\b", "H*"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_keys_patterns(both, pattern):
    both.seq(("MSET", "hello", "1", "hallo", "2", "hxllo", "3", "hllo", "4", "heeeello", "5",
              "h*llo", "6", "user:1", "a", "user:2", "b", "user:10", "c", "x", "y", "a\\b", "z"))
    both.unordered("KEYS", pattern)


def test_keys_only_current_db(both):
    both.seq(("SET", "a", "1"), ("SELECT", "1"), ("SET", "b", "1"))
    assert both("KEYS", "*") == [b"b"]


# ---------------------------------------------------------------- SCAN


def scan_all(client, cmd="SCAN", key=None, *args, max_calls=10000):
    cursor = b"0"
    seen = []
    for _ in range(max_calls):
        head = [cmd] if key is None else [cmd, key]
        reply = call(client, *head, cursor, *args)
        assert isinstance(reply, list) and len(reply) == 2, reply
        cursor, batch = reply
        assert isinstance(cursor, bytes) and cursor.isdigit(), cursor
        assert isinstance(batch, list)
        seen.extend(batch)
        if cursor == b"0":
            return seen
    raise AssertionError(f"{cmd} did not finish in {max_calls} calls")


def _scan_both(both, *args):
    a = scan_all(both.oracle, "SCAN", None, *args)
    b = scan_all(both.target, "SCAN", None, *args)
    assert len(set(b)) == len(set(a)), (len(a), len(b))
    assert sorted(set(a)) == sorted(set(b))
    return set(b)


def _mixed_keys(both, n=300):
    p = []
    for i in range(n):
        p.append(("SET", f"str:{i}", "v"))
        if i % 3 == 0:
            p.append(("HSET", f"hash:{i}", "f", "v"))
        if i % 5 == 0:
            p.append(("SADD", f"set:{i}", "m"))
        if i % 7 == 0:
            p.append(("ZADD", f"zset:{i}", "1", "m"))
    a, b = both.pipeline_both(p)
    assert a == b


@pytest.mark.parametrize("args", [(), ("COUNT", "1"), ("COUNT", "7"), ("COUNT", "1000"), ("MATCH", "str:1*"),
                                  ("MATCH", "*:2?", "COUNT", "3"), ("MATCH", "nomatch*"), ("TYPE", "string"),
                                  ("TYPE", "hash"), ("TYPE", "set"), ("TYPE", "zset"),
                                  ("MATCH", "set:*", "TYPE", "set", "COUNT", "5"), ("TYPE", "nosuchtype")])
def test_scan_full_iteration(both, args):
    _mixed_keys(both)
    keys = _scan_both(both, *args)
    if not args:
        assert len(keys) == both("DBSIZE")


def test_scan_every_key_returned(both):
    """Keys present for the whole iteration are all returned (the SCAN guarantee)."""
    _mixed_keys(both, 1000)
    keys = scan_all(both.target, "SCAN", None, "COUNT", "10")
    assert len(set(keys)) == call(both.target, "DBSIZE")


def test_scan_guarantee_with_concurrent_writes(both):
    """Keys present from start to end are returned even when keys are added during the scan."""
    _mixed_keys(both, 200)
    stable = set(call(both.target, "KEYS", "*"))
    cursor, seen, i = b"0", set(), 0
    while True:
        cursor, batch = call(both.target, "SCAN", cursor, "COUNT", "20")
        seen |= set(batch)
        call(both.target, "SET", f"new:{i}", "x")
        i += 1
        if cursor == b"0":
            break
    assert stable <= seen


def test_scan_empty_db(both):
    assert both("SCAN", "0") == [b"0", []]


def test_scan_errors(both):
    both.err("SCAN", "abc", prefix="ERR invalid cursor")
    both.err("SCAN", "18446744073709551616", prefix="ERR invalid cursor")
    both.err("SCAN", "0", "COUNT", "0", prefix="ERR syntax error")
    both.err("SCAN", "0", "COUNT", "-1", prefix="ERR")
    both.err("SCAN", "0", "COUNT", "x", prefix="ERR value is not an integer or out of range")
    both.err("SCAN", "0", "FOO", prefix="ERR syntax error")
    both.err("SCAN", "0", "MATCH", prefix="ERR syntax error")
    both.err("SCAN", prefix="ERR wrong number of arguments for 'scan' command")


# ---------------------------------------------------------------- RANDOMKEY


def test_randomkey(both):
    assert both("RANDOMKEY") is None
    both("MSET", "a", "1", "b", "2", "c", "3")
    for _ in range(20):
        k = call(both.target, "RANDOMKEY")
        assert k in (b"a", b"b", b"c")
    seen = {call(both.target, "RANDOMKEY") for _ in range(200)}
    assert len(seen) >= 2
    both.err("RANDOMKEY", "x", prefix="ERR wrong number of arguments for 'randomkey' command")


# ---------------------------------------------------------------- RENAME / RENAMENX


def test_rename(both):
    both("SET", "a", "1")
    assert both("RENAME", "a", "b") == b"OK"
    assert both("GET", "a") is None
    assert both("GET", "b") == b"1"
    assert both("RENAME", "b", "b") == b"OK"
    assert both("GET", "b") == b"1"
    both.err("RENAME", "nokey", "x", prefix="ERR no such key")
    both.err("RENAME", "nokey", "nokey", prefix="ERR no such key")
    both.err("RENAME", "a", prefix="ERR wrong number of arguments for 'rename' command")


def test_rename_overwrites_other_type(both):
    both.seq(("HSET", "h", "f", "v"), ("SET", "s", "x", "EX", "100"))
    assert both("RENAME", "h", "s") == b"OK"
    assert both("TYPE", "s") == b"hash"
    assert both("TTL", "s") == -1          # destination's TTL is replaced by the source's (none)
    assert both("HGETALL", "s") == [b"f", b"v"]


def test_rename_keeps_ttl(both):
    both("SET", "a", "1", "EX", "1000")
    both("RENAME", "a", "b")
    assert both("TTL", "b") == 1000
    both("PEXPIREAT", "b", "33177117420000")
    both("RENAME", "b", "c")
    assert both("PEXPIRETIME", "c") == 33177117420000


@pytest.mark.parametrize("setup,typ,read", [
    (("HSET", "src", "a", "1", "b", "2"), b"hash", ("HGETALL", "dst")),
    (("SADD", "src", "x", "y", "1"), b"set", ("SMEMBERS", "dst")),
    (("ZADD", "src", "1", "x", "2.5", "y"), b"zset", ("ZRANGE", "dst", "0", "-1", "WITHSCORES")),
    (("SET", "src", "12"), b"string", ("GET", "dst")),
])
def test_rename_types(both, setup, typ, read):
    both(*setup)
    assert both("RENAME", "src", "dst") == b"OK"
    assert both("TYPE", "dst") == typ
    assert both("EXISTS", "src") == 0
    both.auto(*read)


def test_renamenx(both):
    both.seq(("SET", "a", "1"), ("SET", "b", "2"))
    assert both("RENAMENX", "a", "b") == 0
    assert both("GET", "a") == b"1"
    assert both("RENAMENX", "a", "c") == 1
    assert both("GET", "c") == b"1"
    assert both("RENAMENX", "c", "c") == 0
    both.err("RENAMENX", "nokey", "x", prefix="ERR no such key")


# ---------------------------------------------------------------- COPY


def test_copy_string(both):
    both("SET", "a", "hello")
    assert both("COPY", "a", "b") == 1
    assert both("GET", "b") == b"hello"
    assert both("COPY", "a", "b") == 0
    both("SET", "a", "world")
    assert both("COPY", "a", "b", "REPLACE") == 1
    assert both("GET", "b") == b"world"
    assert both("COPY", "nokey", "b") == 0
    assert both("COPY", "nokey", "b", "REPLACE") == 0
    assert both("GET", "b") == b"world"


def test_copy_independent(both):
    both("SADD", "s", "a", "b")
    assert both("COPY", "s", "t") == 1
    both("SADD", "t", "c")
    assert both.unordered("SMEMBERS", "s") == [b"a", b"b"]
    assert both.unordered("SMEMBERS", "t") == [b"a", b"b", b"c"]


@pytest.mark.parametrize("setup,read", [
    (("HSET", "src", "a", "1", "b", "2"), ("HGETALL", "dst")),
    (("SADD", "src", "x", "y"), ("SMEMBERS", "dst")),
    (("ZADD", "src", "1", "x", "2.5", "y"), ("ZRANGE", "dst", "0", "-1", "WITHSCORES")),
    (("PFADD", "src", "a", "b", "c"), ("PFCOUNT", "dst")),
])
def test_copy_types(both, setup, read):
    both(*setup)
    assert both("COPY", "src", "dst") == 1
    both.auto(*read)
    assert both("TYPE", "dst") == both("TYPE", "src")


def test_copy_db(both):
    both("SET", "a", "v", "EX", "500")
    assert both("COPY", "a", "a", "DB", "1") == 1
    assert both("COPY", "a", "a", "DB", "1") == 0
    assert both("COPY", "a", "a", "DB", "1", "REPLACE") == 1
    both("SELECT", "1")
    assert both("GET", "a") == b"v"
    assert both("TTL", "a") == 500
    both("SELECT", "0")
    assert both("GET", "a") == b"v"


def test_copy_keeps_ttl(both):
    both("SET", "a", "v", "PXAT", "33177117420000")
    both("COPY", "a", "b")
    assert both("PEXPIRETIME", "b") == 33177117420000
    both("SET", "c", "v")
    both("COPY", "c", "b", "REPLACE")
    assert both("TTL", "b") == -1


def test_copy_errors(both):
    both("SET", "a", "1")
    both.err("COPY", "a", "a", prefix="ERR source and destination objects are the same")
    both.err("COPY", "a", "b", "DB", "16", prefix="ERR DB index is out of range")
    both.err("COPY", "a", "b", "DB", "-1", prefix="ERR DB index is out of range")
    both.err("COPY", "a", "b", "DB", "x", prefix="ERR value is not an integer or out of range")
    both.err("COPY", "a", "b", "FOO", prefix="ERR syntax error")
    both.err("COPY", "a", prefix="ERR wrong number of arguments for 'copy' command")
