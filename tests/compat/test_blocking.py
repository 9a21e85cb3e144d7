"""Blocking commands: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP.

A blocked client needs a second connection to wake it, so most tests here run one scenario
against each server separately (the two in parallel, see ``each``): the scenario opens raw
sockets, sends a blocking command, makes changes from another connection and records what
it observed (the exact bytes of the replies, and whether a reply came at all). The outcome
of redis-server and of the target must be identical, and is pinned to the expected value.
"""

from __future__ import annotations

import threading
import time

import pytest

from harness import (blocked_count, call, close_client, close_tracked, each, encode_command, exchange,
                     reply_within, send_only, silent, wait_blocked, wait_until)

NIL_ARRAY = b"*-1\r\n"
NIL_BULK = b"$-1\r\n"


@pytest.fixture(autouse=True)
def _no_leftover_blocked_clients(servers):
    """Close every raw connection a test opened (also when it failed), so that no blocked
    client survives into the next test."""
    yield
    close_tracked()
    for server in servers:
        wait_until(lambda: blocked_count(server) in (0, None), timeout=1)


# ---------------------------------------------------------------- helpers

block = send_only
reply = reply_within


def run(server, *cmds) -> list[bytes]:
    """Commands on a fresh raw connection; the exact bytes of each reply."""
    return exchange(server.port, cmds)


def bulk(v: bytes | str) -> bytes:
    if isinstance(v, str):
        v = v.encode()
    return b"$%d\r\n%s\r\n" % (len(v), v)


def arr(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


def kv(key, value) -> bytes:
    return arr(bulk(key), bulk(value))


# ---------------------------------------------------------------- immediate replies


def test_blpop_brpop_immediate(both):
    both("RPUSH", "l", "a", "b", "c")
    assert both("BLPOP", "l", "0") == [b"l", b"a"]
    assert both("BRPOP", "l", "1") == [b"l", b"c"]
    assert both("BLPOP", "nokey", "l", "0.5") == [b"l", b"b"]
    assert both("EXISTS", "l") == 0
    assert both("TYPE", "l") == b"none"


def test_blpop_first_nonempty_key_in_argument_order(both):
    both("RPUSH", "k2", "x")
    both("RPUSH", "k3", "y")
    assert both("BLPOP", "k1", "k3", "k2", "0") == [b"k3", b"y"]
    assert both("BRPOP", "k1", "k3", "k2", "0") == [b"k2", b"x"]
    assert both("DBSIZE") == 0


def test_blmove_brpoplpush_immediate(both):
    both("RPUSH", "src", "a", "b", "c")
    assert both("BLMOVE", "src", "dst", "LEFT", "RIGHT", "0") == b"a"
    assert both("BLMOVE", "src", "dst", "RIGHT", "LEFT", "0.1") == b"c"
    assert both("BRPOPLPUSH", "src", "dst", "0") == b"b"
    assert both("LRANGE", "dst", "0", "-1") == [b"b", b"c", b"a"]
    assert both("EXISTS", "src") == 0
    assert both("BLMOVE", "dst", "dst", "LEFT", "RIGHT", "0") == b"b"
    assert both("LRANGE", "dst", "0", "-1") == [b"c", b"a", b"b"]


def test_blmpop_immediate(both):
    both("RPUSH", "b", "1", "2", "3")
    assert both("BLMPOP", "0", "2", "a", "b", "LEFT") == [b"b", [b"1"]]
    assert both("BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "5") == [b"b", [b"3", b"2"]]
    assert both("EXISTS", "b") == 0


def test_bzpop_immediate(both):
    both("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d")
    assert both("BZPOPMIN", "nokey", "z", "0") == [b"z", b"a", b"1"]
    assert both("BZPOPMAX", "z", "0") == [b"z", b"d", b"4"]
    assert both("BZMPOP", "0", "1", "z", "MIN") == [b"z", [[b"b", b"2"]]]
    assert both("BZMPOP", "0.5", "2", "nokey", "z", "MAX", "COUNT", "10") == [b"z", [[b"c", b"3"]]]
    assert both("EXISTS", "z") == 0


def test_bzpop_immediate_resp3(both3):
    both3("ZADD", "z", "1.5", "a", "2", "b")
    assert both3("BZPOPMIN", "z", "0") == [b"z", b"a", 1.5]
    assert both3("BZMPOP", "0", "1", "z", "MAX", "COUNT", "2") == [b"z", [[b"b", 2.0]]]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("cmd", [
    ("BLPOP", "l", "{t}"), ("BRPOP", "l", "{t}"), ("BLMOVE", "l", "d", "LEFT", "LEFT", "{t}"),
    ("BRPOPLPUSH", "l", "d", "{t}"), ("BLMPOP", "{t}", "1", "l", "LEFT"), ("BZPOPMIN", "z", "{t}"),
    ("BZPOPMAX", "z", "{t}"), ("BZMPOP", "{t}", "1", "z", "MIN"),
], ids=lambda c: c[0])
@pytest.mark.parametrize("timeout,error", [
    ("-1", "ERR timeout is negative"),
    ("-0.5", "ERR timeout is negative"),
    ("x", "ERR timeout is not a float or out of range"),
    ("1x", "ERR timeout is not a float or out of range"),
    ("", "ERR timeout is not a float or out of range"),
])
def test_timeout_errors(both, cmd, timeout, error):
    cmd = tuple(timeout if a == "{t}" else a for a in cmd)
    assert both.err(*cmd) == error


@pytest.mark.parametrize("cmd,error", [
    (("BLMPOP", "0", "0", "l", "LEFT"), "ERR numkeys should be greater than 0"),
    (("BLMPOP", "0", "1", "l", "UP"), "ERR syntax error"),
    (("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "0"), "ERR count should be greater than 0"),
    (("BLMPOP", "0", "2", "l", "LEFT"), "ERR syntax error"),
    (("BZMPOP", "0", "0", "z", "MIN"), "ERR numkeys should be greater than 0"),
    (("BZMPOP", "0", "1", "z", "LEFT"), "ERR syntax error"),
    (("BZMPOP", "0", "1", "z", "MIN", "COUNT", "-1"), "ERR count should be greater than 0"),
    (("BLMOVE", "l", "d", "UP", "LEFT", "0"), "ERR syntax error"),
    (("BLPOP", "l"), "ERR wrong number of arguments for 'blpop' command"),
    (("BRPOP",), "ERR wrong number of arguments for 'brpop' command"),
    (("BZPOPMIN", "z"), "ERR wrong number of arguments for 'bzpopmin' command"),
    (("BRPOPLPUSH", "l", "d"), "ERR wrong number of arguments for 'brpoplpush' command"),
    (("BLMOVE", "l", "d", "LEFT", "LEFT"), "ERR wrong number of arguments for 'blmove' command"),
    (("BLMPOP", "0", "1", "l"), "ERR wrong number of arguments for 'blmpop' command"),
])
def test_blocking_syntax_errors(both, cmd, error):
    assert both.err(*cmd) == error


def test_bzpop_wrongtype(both):
    both("RPUSH", "l", "a")
    wt = "WRONGTYPE Operation against a key holding the wrong kind of value"
    assert both.err("BZPOPMIN", "l", "0") == wt
    assert both.err("BZPOPMAX", "nokey", "l", "0") == wt
    assert both.err("BZMPOP", "0", "1", "l", "MIN") == wt
    both("ZADD", "z", "1", "a")
    assert both.err("BLPOP", "z", "0") == wt


# ---------------------------------------------------------------- timeouts


@pytest.mark.parametrize("cmd,expected", [
    (("BLPOP", "l", "0.1"), NIL_ARRAY),
    (("BRPOP", "l", "l2", "0.1"), NIL_ARRAY),
    (("BLMOVE", "l", "d", "LEFT", "RIGHT", "0.1"), NIL_ARRAY),
    (("BRPOPLPUSH", "l", "d", "0.1"), NIL_ARRAY),
    (("BLMPOP", "0.1", "1", "l", "LEFT"), NIL_ARRAY),
    (("BZPOPMIN", "z", "0.1"), NIL_ARRAY),
    (("BZPOPMAX", "z", ".1"), NIL_ARRAY),
    (("BZMPOP", "0.1", "1", "z", "MAX"), NIL_ARRAY),
], ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_timeout_returns_nil(servers, cmd, expected):
    def scenario(server):
        c = block(server, *cmd)
        t0 = time.monotonic()
        r = reply(c, timeout=3)
        elapsed = time.monotonic() - t0
        c.close()
        assert 0.08 <= elapsed < 1.5, f"{server.name}: {cmd[0]} with timeout 0.1 answered after {elapsed:.3f}s"
        return r, run(server, ("DBSIZE",))
    assert each(servers, scenario) == (expected, [b":0\r\n"])


def test_timeout_resp3_null(servers):
    def scenario(server):
        out = []
        for cmd in [("BLPOP", "l", "0.05"), ("BLMOVE", "l", "d", "LEFT", "LEFT", "0.05"),
                    ("BZPOPMIN", "z", "0.05"), ("BLMPOP", "0.05", "1", "l", "LEFT")]:
            c = block(server, *cmd, protocol=3)
            out.append(reply(c, timeout=3))
            c.close()
        return out
    assert each(servers, scenario) == [b"_\r\n"] * 4


def test_one_second_timeout(servers):
    def scenario(server):
        c = block(server, "BRPOP", "l", "1")
        t0 = time.monotonic()
        r = reply(c, timeout=4)
        elapsed = time.monotonic() - t0
        c.close()
        assert 0.9 <= elapsed < 2.5, f"{server.name}: BRPOP l 1 answered after {elapsed:.3f}s"
        return r
    assert each(servers, scenario) == NIL_ARRAY


# ---------------------------------------------------------------- woken by another connection


@pytest.mark.parametrize("cmd,push,expected,after", [
    (("BLPOP", "l", "0"), ("RPUSH", "l", "a", "b"), kv("l", "a"), ("LRANGE", "l", "0", "-1")),
    (("BRPOP", "l", "5"), ("RPUSH", "l", "a", "b"), kv("l", "b"), ("LRANGE", "l", "0", "-1")),
    (("BRPOP", "l", "5"), ("LPUSH", "l", "a", "b"), kv("l", "a"), ("LRANGE", "l", "0", "-1")),
    (("BLPOP", "l", "0"), ("LPUSH", "l", "a", "b", "c"), kv("l", "c"), ("LRANGE", "l", "0", "-1")),
    (("BLPOP", "k1", "k2", "k3", "0"), ("RPUSH", "k2", "x"), kv("k2", "x"), ("EXISTS", "k2")),
    (("BLPOP", "l", "0"), ("LMOVE", "src", "l", "LEFT", "LEFT"), kv("l", "s1"), ("LRANGE", "src", "0", "-1")),
    (("BLPOP", "l", "0"), ("RPOPLPUSH", "src", "l"), kv("l", "s3"), ("LRANGE", "src", "0", "-1")),
    (("BLPOP", "l", "0"), ("RENAME", "src", "l"), kv("l", "s1"), ("LRANGE", "l", "0", "-1")),
    (("BLMOVE", "l", "dst", "RIGHT", "LEFT", "0"), ("RPUSH", "l", "a", "b"), bulk("b"),
     ("LRANGE", "dst", "0", "-1")),
    (("BLMOVE", "l", "l", "LEFT", "RIGHT", "0"), ("RPUSH", "l", "a", "b"), bulk("a"), ("LRANGE", "l", "0", "-1")),
    (("BRPOPLPUSH", "l", "dst", "0"), ("LPUSH", "l", "a", "b"), bulk("a"), ("LRANGE", "dst", "0", "-1")),
    (("BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "3"), ("RPUSH", "b", "1", "2"),
     arr(bulk("b"), arr(bulk("1"), bulk("2"))), ("EXISTS", "b")),
    (("BLMPOP", "0", "1", "l", "RIGHT", "COUNT", "2"), ("RPUSH", "l", "1", "2", "3"),
     arr(bulk("l"), arr(bulk("3"), bulk("2"))), ("LRANGE", "l", "0", "-1")),
    (("BZPOPMIN", "z", "0"), ("ZADD", "z", "5", "m", "3", "n"), arr(bulk("z"), bulk("n"), bulk("3")),
     ("ZRANGE", "z", "0", "-1")),
    (("BZPOPMAX", "z1", "z2", "0"), ("ZADD", "z2", "5", "m", "3", "n"), arr(bulk("z2"), bulk("m"), bulk("5")),
     ("ZRANGE", "z2", "0", "-1")),
    (("BZMPOP", "0", "1", "z", "MIN", "COUNT", "5"), ("ZADD", "z", "2", "b", "1", "a"),
     arr(bulk("z"), arr(arr(bulk("a"), bulk("1")), arr(bulk("b"), bulk("2")))), ("EXISTS", "z")),
    (("BZPOPMIN", "z", "0"), ("ZUNIONSTORE", "z", "1", "zsrc"), arr(bulk("z"), bulk("q"), bulk("7")),
     ("ZRANGE", "z", "0", "-1")),
], ids=lambda v: " ".join(v[:2]) if isinstance(v, tuple) else None)
def test_blocked_client_woken_by_push(servers, cmd, push, expected, after):
    def scenario(server):
        run(server, ("RPUSH", "src", "s1", "s2", "s3"), ("ZADD", "zsrc", "7", "q"))
        c = block(server, *cmd)
        wait_blocked(server, 1)
        quiet = silent(c, 0.05)
        pushed = run(server, push)
        got = reply(c, timeout=5)
        c.close()
        rest = run(server, after) if after else None
        return quiet, pushed, got, rest

    quiet, pushed, got, rest = each(servers, scenario)
    assert quiet, "the client should have been blocked"
    assert got == expected


def test_timeout_zero_blocks_until_push(servers):
    def scenario(server):
        c = block(server, "BLPOP", "l", "0")
        wait_blocked(server, 1)
        quiet = silent(c, 0.6)
        run(server, ("RPUSH", "l", "late"))
        return quiet, reply(c)
    assert each(servers, scenario) == (True, kv("l", "late"))


def test_blocked_with_timeout_served_before_it_expires(servers):
    def scenario(server):
        c = block(server, "BRPOP", "l", "1")
        deadline = time.monotonic() + 1
        wait_blocked(server, 1)
        time.sleep(0.1)
        run(server, ("LPUSH", "l", "v"))
        r = reply(c)
        # the timeout must not fire later on the same connection
        late = silent(c, max(deadline - time.monotonic(), 0) + 0.3)
        c.send(encode_command("PING"))
        return r, late, reply(c)
    assert each(servers, scenario) == (kv("l", "v"), True, b"+PONG\r\n")


def test_blocked_woken_resp3(servers):
    def scenario(server):
        c = block(server, "BLPOP", "l", "0", protocol=3)
        z = block(server, "BZPOPMAX", "z", "0", protocol=3)
        wait_blocked(server, 2)
        run(server, ("RPUSH", "l", "a"), ("ZADD", "z", "2.5", "m"))
        return reply(c), reply(z)
    assert each(servers, scenario) == (kv("l", "a"), arr(bulk("z"), bulk("m"), b",2.5\r\n"))


# ---------------------------------------------------------------- several blocked clients


def test_fifo_among_blocked_clients(servers):
    def scenario(server):
        conns = []
        for i in range(4):
            conns.append(block(server, "BLPOP", "l", "0"))
            wait_blocked(server, i + 1)
        run(server, ("RPUSH", "l", "1", "2", "3"))
        got = [reply(c) for c in conns[:3]]
        quiet = silent(conns[3], 0.1)
        run(server, ("RPUSH", "l", "4", "5"))
        got.append(reply(conns[3]))
        for c in conns:
            c.close()
        return got, quiet, run(server, ("LRANGE", "l", "0", "-1"))
    got, quiet, rest = each(servers, scenario)
    assert got == [kv("l", "1"), kv("l", "2"), kv("l", "3"), kv("l", "4")]
    assert quiet
    assert rest == [arr(bulk("5"))]


def test_fifo_one_push_at_a_time(servers):
    def scenario(server):
        conns = []
        for i, cmd in enumerate([("BRPOP", "l", "0"), ("BLPOP", "l", "0"), ("BLMOVE", "l", "d", "LEFT", "LEFT", "0")]):
            conns.append(block(server, *cmd))
            wait_blocked(server, i + 1)
        got = []
        for v in ("x", "y", "z"):
            run(server, ("LPUSH", "l", v))
        for c in conns:
            got.append(reply(c))
            c.close()
        return got, run(server, ("DBSIZE",), ("LRANGE", "d", "0", "-1"))
    assert each(servers, scenario) == ([kv("l", "x"), kv("l", "y"), bulk("z")], [b":1\r\n", arr(bulk("z"))])


def test_clients_blocked_on_different_keys(servers):
    def scenario(server):
        a = block(server, "BLPOP", "ka", "0")
        wait_blocked(server, 1)
        b = block(server, "BLPOP", "kb", "ka", "0")
        wait_blocked(server, 2)
        run(server, ("RPUSH", "kb", "1"))
        rb = reply(b)
        quiet = silent(a, 0.1)
        run(server, ("RPUSH", "ka", "2"))
        return rb, quiet, reply(a)
    assert each(servers, scenario) == (kv("kb", "1"), True, kv("ka", "2"))


def test_disconnected_blocked_client_is_skipped(servers):
    def scenario(server):
        gone_ = block(server, "BLPOP", "l", "0")
        wait_blocked(server, 1)
        stay = block(server, "BLPOP", "l", "0")
        wait_blocked(server, 2)
        gone_.close()
        time.sleep(0.1)
        run(server, ("RPUSH", "l", "v"))
        return reply(stay), run(server, ("EXISTS", "l"))
    assert each(servers, scenario) == (kv("l", "v"), [b":0\r\n"])


def test_blocked_chain_blmove(servers):
    """A BLMOVE that is served pushes to a list on which another client waits."""
    def scenario(server):
        mover = block(server, "BLMOVE", "a", "b", "LEFT", "LEFT", "0")
        wait_blocked(server, 1)
        waiter = block(server, "BLPOP", "b", "0")
        wait_blocked(server, 2)
        run(server, ("RPUSH", "a", "v"))
        return reply(mover), reply(waiter), run(server, ("DBSIZE",))
    assert each(servers, scenario) == (bulk("v"), kv("b", "v"), [b":0\r\n"])


# ---------------------------------------------------------------- transactions


def test_woken_by_push_inside_multi_exec(servers):
    """The waiting client is served after EXEC, and sees the transaction's final state."""
    def scenario(server):
        c = block(server, "BLPOP", "l", "0")
        wait_blocked(server, 1)
        with server.raw() as tx:
            r = [tx.cmd("MULTI"), tx.cmd("RPUSH", "l", "first"), tx.cmd("LPOP", "l"),
                 tx.cmd("RPUSH", "l", "second", "third")]
            quiet = silent(c, 0.1)
            r.append(tx.cmd("EXEC"))
        got = reply(c)
        return r, quiet, got, run(server, ("LRANGE", "l", "0", "-1"))
    r, quiet, got, rest = each(servers, scenario)
    assert r[-1] == arr(b":1\r\n", bulk("first"), b":2\r\n")
    assert quiet
    assert got == kv("l", "second")
    assert rest == [arr(bulk("third"))]


def test_push_and_delete_inside_multi_does_not_wake(servers):
    def scenario(server):
        c = block(server, "BLPOP", "l", "0")
        wait_blocked(server, 1)
        out = run(server, ("MULTI",), ("RPUSH", "l", "a"), ("DEL", "l"), ("EXEC",))
        quiet = silent(c, 0.2)
        run(server, ("RPUSH", "l", "b"))
        return out[-1], quiet, reply(c)
    assert each(servers, scenario) == (arr(b":1\r\n", b":1\r\n"), True, kv("l", "b"))


@pytest.mark.parametrize("cmd,expected", [
    (("BLPOP", "l", "0"), NIL_ARRAY),
    (("BRPOP", "l", "100"), NIL_ARRAY),
    (("BLMOVE", "l", "d", "LEFT", "LEFT", "0"), NIL_BULK),
    (("BRPOPLPUSH", "l", "d", "0"), NIL_BULK),
    (("BLMPOP", "0", "1", "l", "LEFT"), NIL_ARRAY),
    (("BZPOPMIN", "z", "0"), NIL_ARRAY),
    (("BZPOPMAX", "z", "0"), NIL_ARRAY),
    (("BZMPOP", "0", "1", "z", "MIN"), NIL_ARRAY),
], ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_blocking_command_inside_multi_does_not_block(servers, cmd, expected):
    def scenario(server):
        t0 = time.monotonic()
        r = run(server, ("MULTI",), cmd, ("PING",), ("EXEC",))
        return r, time.monotonic() - t0 < 1
    assert each(servers, scenario) == ([b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n",
                                         arr(expected, b"+PONG\r\n")], True)


def test_blocking_commands_inside_multi_with_data(both):
    both("RPUSH", "l", "a", "b", "c")
    both("ZADD", "z", "1", "m", "2", "n")
    both("MULTI")
    for c in [("BLPOP", "l", "0"), ("BRPOP", "l", "0"), ("BLMOVE", "l", "d", "LEFT", "LEFT", "0"),
              ("BLPOP", "l", "0"), ("BZPOPMAX", "z", "0"), ("BZMPOP", "0", "1", "z", "MIN"),
              ("BLMPOP", "0", "1", "d", "LEFT")]:
        assert both(*c) == b"QUEUED"
    assert both("EXEC") == [[b"l", b"a"], [b"l", b"c"], b"b", None, [b"z", b"n", b"2"],
                            [b"z", [[b"m", b"1"]]], [b"d", [b"b"]]]
    assert both("DBSIZE") == 0


# ---------------------------------------------------------------- key deleted / type changed


def test_key_changes_type_while_waiting(servers):
    def scenario(server):
        c = block(server, "BLPOP", "l", "0")
        wait_blocked(server, 1)
        steps = [run(server, ("SET", "l", "string"))]
        q1 = silent(c, 0.15)
        steps.append(run(server, ("DEL", "l"), ("ZADD", "l", "1", "m")))
        q2 = silent(c, 0.15)
        steps.append(run(server, ("DEL", "l"), ("LPUSH", "l", "new")))
        got = reply(c)
        return steps, q1, q2, got, run(server, ("EXISTS", "l"))
    steps, q1, q2, got, rest = each(servers, scenario)
    assert q1 and q2, "the client must keep waiting while the key is not a list"
    assert got == kv("l", "new")
    assert rest == [b":0\r\n"]


def test_zset_waiter_ignores_list_push(servers):
    def scenario(server):
        c = block(server, "BZPOPMIN", "k", "0")
        wait_blocked(server, 1)
        run(server, ("RPUSH", "k", "a"))
        quiet = silent(c, 0.15)
        run(server, ("DEL", "k"), ("ZADD", "k", "3", "x"))
        return quiet, reply(c)
    assert each(servers, scenario) == (True, arr(bulk("k"), bulk("x"), bulk("3")))


def test_key_expires_while_waiting(servers):
    """A string with a short TTL appears on the key, expires, and then a list is pushed there."""
    def scenario(server):
        c = block(server, "BRPOP", "l", "0")
        wait_blocked(server, 1)
        run(server, ("SET", "l", "v", "PX", "60"))
        quiet = silent(c, 0.15)
        time.sleep(0.05)
        pushed = run(server, ("RPUSH", "l", "1", "2"))
        return quiet, pushed, reply(c), run(server, ("LRANGE", "l", "0", "-1"))
    assert each(servers, scenario) == (True, [b":2\r\n"], kv("l", "2"), [arr(bulk("1"))])


def test_blpop_on_existing_wrong_type_key_errors_immediately(both):
    both("SET", "s", "v")
    assert both.err("BLPOP", "nokey", "s", "0") == "WRONGTYPE Operation against a key holding the wrong kind of value"


# ---------------------------------------------------------------- producer / consumer


def test_producer_consumer_200(servers):
    def scenario(server):
        received: list[bytes] = []
        errors: list[BaseException] = []

        def worker():
            c = server.client(timeout=10)
            try:
                while len(received) < 200:
                    r = call(c, "BRPOP", "queue", "5")
                    if r is None:
                        break
                    assert r[0] == b"queue", r
                    received.append(r[1])
            except BaseException as e:  # reported below
                errors.append(e)
            finally:
                close_client(c)

        t = threading.Thread(target=worker, daemon=True)
        t.start()
        p = server.client()
        try:
            for i in range(200):
                call(p, "LPUSH", "queue", f"job-{i}")
                if i % 50 == 0:
                    time.sleep(0.02)   # let the worker block sometimes
        finally:
            close_client(p)
        t.join(15)
        assert not t.is_alive(), f"{server.name}: consumer still running"
        assert not errors, errors
        return received, run(server, ("EXISTS", "queue"))

    received, rest = each(servers, scenario)
    assert received == [f"job-{i}".encode() for i in range(200)]
    assert rest == [b":0\r\n"]


def test_blocked_client_count_in_info(servers):
    """INFO clients blocked_clients counts the waiting clients."""
    def scenario(server):
        a = block(server, "BLPOP", "l", "0")
        b = block(server, "BZPOPMIN", "z", "0")
        counted = wait_blocked(server, 2, timeout=2)
        during = blocked_count(server)
        run(server, ("RPUSH", "l", "x"), ("ZADD", "z", "1", "m"))
        got = reply(a), reply(b)
        a.close()
        b.close()
        return counted, during, got, blocked_count(server)
    assert each(servers, scenario) == (True, 2, (kv("l", "x"), arr(bulk("z"), bulk("m"), bulk("1"))), 0)
