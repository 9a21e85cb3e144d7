"""Expiry: EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX GT LT), TTL PTTL EXPIRETIME PEXPIRETIME PERSIST,
lazy expiry on access and the active expiry sweep."""

import re
import time

import pytest

from harness import call, wait_until

FAR = 33177117420  # year 3021, seconds
FAR_MS = FAR * 1000


def pttl_close(both, key, expected_ms, slack_ms=1000):
    a, b = both.run("PTTL", key)
    for v in (a, b):
        assert isinstance(v, int) and expected_ms - slack_ms <= v <= expected_ms, (a, b, expected_ms)


# ---------------------------------------------------------------- basics


def test_expire_basic(both):
    both("SET", "k", "v")
    assert both("TTL", "k") == -1
    assert both("PTTL", "k") == -1
    assert both("EXPIRETIME", "k") == -1
    assert both("PEXPIRETIME", "k") == -1
    assert both("EXPIRE", "k", "100") == 1
    assert both("TTL", "k") == 100
    pttl_close(both, "k", 100_000)
    assert both("EXPIRE", "nokey", "100") == 0
    for cmd in ("TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"):
        assert both(cmd, "nokey") == -2


def test_ttl_rounding(both):
    both("SET", "k", "v")
    both("PEXPIRE", "k", "1800")
    assert both("TTL", "k") == 2   # TTL rounds to the nearest second
    both("PEXPIRE", "k", "1200")
    assert both("TTL", "k") == 1


def test_pexpire(both):
    both("SET", "k", "v")
    assert both("PEXPIRE", "k", "100000") == 1
    assert both("TTL", "k") == 100
    pttl_close(both, "k", 100_000)


def test_expireat_exact(both):
    both("SET", "k", "v")
    assert both("EXPIREAT", "k", str(FAR)) == 1
    assert both("EXPIRETIME", "k") == FAR
    assert both("PEXPIRETIME", "k") == FAR_MS
    assert both("PEXPIREAT", "k", str(FAR_MS + 123)) == 1
    assert both("PEXPIRETIME", "k") == FAR_MS + 123
    assert both("EXPIRETIME", "k") == FAR  # truncated to seconds


def test_expire_relative_deadline(both):
    both("SET", "k", "v")
    both("EXPIRE", "k", "1000")
    now = int(time.time())
    a, b = both.run("EXPIRETIME", "k")
    for v in (a, b):
        assert now + 998 <= v <= now + 1002


def test_persist(both):
    both("SET", "k", "v", "EX", "100")
    assert both("PERSIST", "k") == 1
    assert both("TTL", "k") == -1
    assert both("PERSIST", "k") == 0
    assert both("PERSIST", "nokey") == 0
    both.err("PERSIST", prefix="ERR wrong number of arguments for 'persist' command")


@pytest.mark.parametrize("cmd,arg", [("EXPIRE", "0"), ("EXPIRE", "-5"), ("PEXPIRE", "0"), ("PEXPIRE", "-1"),
                                     ("EXPIREAT", "1"), ("PEXPIREAT", "1000"), ("EXPIREAT", "0"),
                                     ("EXPIREAT", "-1")])
def test_expire_in_the_past_deletes(both, cmd, arg):
    both("SET", "k", "v")
    assert both(cmd, "k", arg) == 1
    assert both("EXISTS", "k") == 0
    assert both("GET", "k") is None
    assert both("DBSIZE") == 0


# ---------------------------------------------------------------- NX XX GT LT


def test_expire_options_sequence(both):
    both("SET", "k", "v")
    both.seq(
        ("EXPIRE", "k", "100", "XX"),   # no ttl: XX fails
        ("EXPIRE", "k", "100", "GT"),   # no ttl = infinite: GT fails
        ("TTL", "k"),
        ("EXPIRE", "k", "100", "NX"),   # sets
        ("EXPIRE", "k", "200", "NX"),   # already has ttl
        ("TTL", "k"),
        ("EXPIRE", "k", "50", "XX"),
        ("TTL", "k"),
        ("EXPIRE", "k", "300", "GT"),
        ("EXPIRE", "k", "10", "GT"),
        ("TTL", "k"),
        ("EXPIRE", "k", "20", "LT"),
        ("EXPIRE", "k", "400", "LT"),
        ("TTL", "k"),
        ("EXPIRE", "k", "30", "XX", "GT"),
        ("EXPIRE", "k", "10", "XX", "LT"),
        ("TTL", "k"),
        ("PERSIST", "k"),
        ("EXPIRE", "k", "10", "LT"),    # no ttl = infinite: LT succeeds
        ("TTL", "k"),
    )


@pytest.mark.parametrize("cmd,a,b", [("PEXPIRE", "100000", "200000"), ("EXPIREAT", str(FAR), str(FAR + 10)),
                                     ("PEXPIREAT", str(FAR_MS), str(FAR_MS + 10))])
def test_expire_options_variants(both, cmd, a, b):
    both("SET", "k", "v")
    both.seq((cmd, "k", a, "XX"), (cmd, "k", a, "NX"), (cmd, "k", b, "NX"), (cmd, "k", b, "GT"),
             (cmd, "k", a, "GT"), (cmd, "k", a, "LT"), (cmd, "k", b, "LT"), (cmd, "k", b, "XX"),
             ("PERSIST", "k"), (cmd, "k", b, "GT"), (cmd, "k", b, "LT"))
    pt = call(both.oracle, "PEXPIRETIME", "k")
    assert both("PEXPIRETIME", "k", norm=lambda v: abs(v - pt) < 1000) is True


def test_expire_gt_lt_with_past_time(both):
    both("SET", "k", "v", "EX", "100")
    assert both("EXPIRE", "k", "-1", "GT") == 0
    assert both("EXISTS", "k") == 1
    assert both("EXPIRE", "k", "-1", "LT") == 1
    assert both("EXISTS", "k") == 0


@pytest.mark.parametrize("opts,msg", [
    (("NX", "XX"), "ERR NX and XX, GT or LT options at the same time are not compatible"),
    (("NX", "GT"), "ERR NX and XX, GT or LT options at the same time are not compatible"),
    (("NX", "LT"), "ERR NX and XX, GT or LT options at the same time are not compatible"),
    (("GT", "LT"), "ERR GT and LT options at the same time are not compatible"),
    (("FOO",), "ERR Unsupported option FOO"),
    (("NX", "FOO"), "ERR Unsupported option FOO"),
])
@pytest.mark.parametrize("cmd", ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
def test_expire_option_errors(both, cmd, opts, msg):
    both("SET", "k", "v")
    assert both.err(cmd, "k", "100", *opts) == msg
    assert both("TTL", "k") == -1


@pytest.mark.parametrize("cmd", ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
def test_expire_value_errors(both, cmd):
    both("SET", "k", "v")
    both.err(cmd, "k", "abc", prefix="ERR value is not an integer or out of range")
    both.err(cmd, "k", "1.5", prefix="ERR value is not an integer or out of range")
    both.err(cmd, "k", "", prefix="ERR value is not an integer or out of range")
    both.err(cmd, "k", "99999999999999999999", prefix="ERR value is not an integer or out of range")
    both.err(cmd, "k", prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")
    assert both("TTL", "k") == -1
    if cmd == "PEXPIREAT":
        assert both(cmd, "k", "9223372036854775807") == 1   # the largest deadline is valid
    else:
        both.err(cmd, "k", "9223372036854775807", prefix=f"ERR invalid expire time in '{cmd.lower()}' command")


def test_expire_overflow_boundaries(both):
    both("SET", "k", "v")
    both("EXPIRE", "k", "9223372036854775")     # seconds * 1000 overflows with now added
    both("PEXPIRE", "k", "9223372036854775")
    both("EXPIRE", "k", "9223372036854")        # large but valid
    both("EXPIRE", "k", "-9223372036854775808")
    both("SET", "k", "v")
    both("PEXPIREAT", "k", "9223372036854775807")


@pytest.mark.parametrize("cmd", ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"])
def test_ttl_arity(both, cmd):
    both.err(cmd, prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")
    both.err(cmd, "a", "b", prefix=f"ERR wrong number of arguments for '{cmd.lower()}' command")


# ---------------------------------------------------------------- which writes keep or clear a TTL


@pytest.mark.parametrize("write", [
    ("SET", "k", "new"), ("GETSET", "k", "new"), ("SET", "k", "new", "KEEPTTL"), ("INCR", "k"),
    ("INCRBY", "k", "5"), ("DECR", "k"), ("INCRBYFLOAT", "k", "1.5"), ("APPEND", "k", "x"),
    ("SETRANGE", "k", "0", "9"), ("SETBIT", "k", "1", "1"), ("MSET", "k", "1"), ("GETEX", "k"),
    ("GETEX", "k", "PERSIST"), ("SET", "k", "1", "XX"), ("SET", "k", "1", "NX"), ("GETDEL", "k"),
    ("SETEX", "k", "50", "x"), ("PSETEX", "k", "50000", "x"), ("SETNX", "k", "x"), ("MSETNX", "k", "x"),
])
def test_ttl_after_string_write(both, write):
    both("SET", "k", "10", "EX", "100")
    both(*write)
    assert both("TTL", "k") in (100, 50, -1, -2)


@pytest.mark.parametrize("setup,write", [
    (("HSET", "k", "a", "1"), ("HSET", "k", "b", "2")),
    (("HSET", "k", "a", "1"), ("HINCRBY", "k", "a", "2")),
    (("HSET", "k", "a", "1", "b", "2"), ("HDEL", "k", "a")),
    (("SADD", "k", "a"), ("SADD", "k", "b")),
    (("SADD", "k", "a", "b"), ("SREM", "k", "a")),
    (("ZADD", "k", "1", "a"), ("ZADD", "k", "2", "b")),
    (("ZADD", "k", "1", "a"), ("ZINCRBY", "k", "2", "a")),
    (("PFADD", "k", "a"), ("PFADD", "k", "b")),
])
def test_ttl_kept_by_container_writes(both, setup, write):
    both(*setup)
    both("EXPIRE", "k", "100")
    both(*write)
    assert both("TTL", "k") == 100


def test_delete_and_recreate_clears_ttl(both):
    both("SET", "k", "v", "EX", "100")
    both("DEL", "k")
    both("SET", "k", "v")
    assert both("TTL", "k") == -1
    both("SADD", "s", "a")
    both("EXPIRE", "s", "100")
    both("SREM", "s", "a")       # last member removed: key gone
    both("SADD", "s", "b")
    assert both("TTL", "s") == -1


# ---------------------------------------------------------------- lazy and active expiry


@pytest.mark.parametrize("setup", [("SET", "k", "v", "PX", "100"), ("HSET", "k", "f", "v"), ("SADD", "k", "m"),
                                   ("ZADD", "k", "1", "m"), ("PFADD", "k", "x")])
def test_expired_key_vanishes_on_access(both, setup):
    both(*setup)
    both("PEXPIRE", "k", "100")
    assert both("EXISTS", "k") == 1
    time.sleep(0.2)
    assert both("EXISTS", "k") == 0
    assert both("TTL", "k") == -2
    assert both("TYPE", "k") == b"none"
    assert both("GET", "k") is None
    assert both("KEYS", "*") == []
    assert both("SCAN", "0", "COUNT", "100") == [b"0", []]
    assert both("RANDOMKEY") is None
    assert both("DBSIZE") == 0


def test_expired_key_replaced_by_new_write(both):
    both("SET", "k", "v", "PX", "100")
    time.sleep(0.2)
    assert both("SETNX", "k", "new") == 1
    assert both("GET", "k") == b"new"
    assert both("TTL", "k") == -1
    both("SADD", "s", "a")
    both("PEXPIRE", "s", "100")
    time.sleep(0.2)
    assert both("SADD", "s", "b") == 1
    assert both("SMEMBERS", "s") == [b"b"]
    both("SET", "n", "5", "PX", "100")
    time.sleep(0.2)
    assert both("INCR", "n") == 1


def test_expire_mixed_with_persistent_keys(both):
    both.seq(("SET", "a", "1", "PX", "100"), ("SET", "b", "2"), ("SET", "c", "3", "EX", "100"))
    time.sleep(0.2)
    assert both.unordered("KEYS", "*") == [b"b", b"c"]
    assert both("MGET", "a", "b", "c") == [None, b"2", b"3"]
    assert both("EXISTS", "a", "b", "c") == 2


@pytest.mark.parametrize("persistent", [0, 10])
@pytest.mark.parametrize("which", ["redis-server", "target"])
def test_active_expiry_sweep(servers, which, persistent):
    """200 keys with PX 50 disappear from DBSIZE without being touched, within a couple of seconds."""
    server = servers[0] if which == "redis-server" else servers[1]
    c = server.client()
    try:
        p = c.pipeline(transaction=False)
        for i in range(200):
            p.execute_command("SET", f"vol:{i}", "x", "PX", "50")
        for i in range(persistent):
            p.execute_command("SET", f"keep:{i}", "x")
        assert all(r == b"OK" for r in p.execute())
        assert call(c, "DBSIZE") == 200 + persistent
        time.sleep(0.1)
        final = wait_until(lambda: call(c, "DBSIZE") == persistent, timeout=2.5, interval=0.05)
        assert final, f"{which}: DBSIZE still {call(c, 'DBSIZE')} 2.5 s after 200 keys expired"
    finally:
        c.close()


def test_active_expiry_of_containers(target):
    p = target.pipeline(transaction=False)
    for i in range(50):
        p.execute_command("HSET", f"h:{i}", "f", "v")
        p.execute_command("PEXPIRE", f"h:{i}", "50")
        p.execute_command("SADD", f"s:{i}", "m")
        p.execute_command("PEXPIRE", f"s:{i}", "50")
    p.execute()
    assert wait_until(lambda: call(target, "DBSIZE") == 0, timeout=2.5, interval=0.05)


def test_expired_keys_in_info_keyspace(both):
    both.seq(("SET", "a", "1", "EX", "100"), ("SET", "b", "1"))
    a, b = both.run("INFO", "keyspace")
    for out in (a, b):
        assert re.search(rb"^db0:keys=2,expires=1(,|\r?$)", out, re.M), out
