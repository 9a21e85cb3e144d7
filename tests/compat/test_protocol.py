"""Protocol: RESP3, pipelining, inline commands, malformed frames, big values.

Most checks send raw bytes over a socket to both servers and compare the exact bytes that
come back, which also pins the RESP type of every reply.
"""

import socket
import threading
import time

import pytest

from harness import RawConn, call, close_client, encode_command, exchange, make_client


END = encode_command("ECHO", "__end__")
END_REPLY = b"$7\r\n__end__\r\n"


def raw_both(servers, data: bytes, wait: float = 5.0, sentinel: bool = True):
    """Send data on a fresh raw connection to each server; return (bytes answered, closed?) for each.

    With sentinel, an ECHO __end__ command follows the data and reading stops at its reply
    (which is stripped); otherwise reading stops when the server closes or after `wait`."""
    out = []
    for s in servers:
        with s.raw() as c:
            c.send(data + (END if sentinel else b""))
            got = b""
            closed = False
            deadline = time.monotonic() + wait
            c.sock.settimeout(wait)
            try:
                while time.monotonic() < deadline:
                    if sentinel and got.endswith(END_REPLY):
                        got = got[:-len(END_REPLY)]
                        break
                    chunk = c.sock.recv(1 << 20)
                    if not chunk:
                        closed = True
                        break
                    got += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
            out.append((got, closed))
    return out


def _still_serving(server):
    with server.raw() as c:
        assert c.cmd("PING") == b"+PONG\r\n", f"{server.name} stopped serving"
        assert c.cmd("SET", "after", "ok") == b"+OK\r\n"
        assert c.cmd("GET", "after") == b"$2\r\nok\r\n"


# ---------------------------------------------------------------- inline commands

INLINE = [
    b"PING\r\n",
    b"PING\n",
    b"ping\r\n",
    b"   PING   \r\n",
    b"\r\n\r\nPING\r\n",
    b"SET a b\r\nGET a\r\n",
    b'SET k "hello world"\r\nGET k\r\n',
    b"SET k 'single quoted'\r\nGET k\r\n",
    b'ECHO "c\\x41\\n"\r\n',
    b'ECHO "tab\\there"\r\n',
    b"SET a  b\r\nGET a\r\n",
    b"EXISTS a b c\r\n",
    b"NOSUCHCMD x y\r\n",
    b"GET\r\n",
    b"INCR n\r\nINCR n\r\nINCRBY n 10\r\n",
    b"PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n",           # inline and multibulk mixed
    b"HSET h f v\r\nHGET h f\r\n",
    b"SADD s m\r\nSCARD s\r\n",
    b"ZADD z 1.5 m\r\nZSCORE z m\r\n",
]


@pytest.mark.parametrize("data", INLINE, ids=lambda d: d.decode(errors="replace")[:30])
def test_inline_commands(servers, data):
    (a, ca), (b, cb) = raw_both(servers, data)
    assert a and not ca
    assert b == a
    assert cb is False


# ---------------------------------------------------------------- multibulk edge cases

MULTIBULK = [
    b"*1\r\n$4\r\nPING\r\n",
    b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
    b"*0\r\n*1\r\n$4\r\nPING\r\n",
    b"*-1\r\n*1\r\n$4\r\nPING\r\n",
    b"*1\r\n$0\r\n\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"*2\r\n$4\r\nECHO\r\n$5\r\na\r\nbc\r\n",                     # CRLF inside a bulk string
    b"*2\r\n$4\r\nECHO\r\n$3\r\n\x00\xff\x01\r\n",
    b"*2\r\n$3\r\nGET\r\n$3\r\nnil\r\n",
    b"*3\r\n$4\r\nMGET\r\n$1\r\nk\r\n$3\r\nnil\r\n",
]


@pytest.mark.parametrize("data", MULTIBULK, ids=lambda d: repr(d)[:40])
def test_multibulk_edge_cases(servers, data):
    (a, ca), (b, cb) = raw_both(servers, data)
    assert (b, cb) == (a, ca)


# ---------------------------------------------------------------- malformed frames

MALFORMED = [
    (b"*1\r\n$abc\r\n", b"-ERR Protocol error"),
    (b"*99999999999\r\n", b"-ERR Protocol error: invalid multibulk length"),
    (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length"),
    (b"*1\r\n$999999999999\r\n", b"-ERR Protocol error: invalid bulk length"),
    (b"*2\r\n$4\r\nECHO\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length"),
    (b"*1\r\n+PING\r\n", b"-ERR Protocol error"),
    (b"*1\r\n:1\r\n", b"-ERR Protocol error"),
    (b'SET "a\r\n', b"-ERR Protocol error: unbalanced quotes"),
    (b"ECHO 'abc\r\n", b"-ERR Protocol error: unbalanced quotes"),
    (b"PING\r\n*1\r\n$x\r\n", b"+PONG\r\n-ERR Protocol error"),
]


@pytest.mark.parametrize("data,prefix", MALFORMED, ids=lambda d: repr(d)[:40])
def test_malformed_frame_closes_connection(servers, data, prefix):
    results = raw_both(servers, data, wait=3.0, sentinel=False)
    for s, (got, closed) in zip(servers, results):
        assert got.startswith(prefix), f"{s.name}: {got[:200]!r}"
        assert got.endswith(b"\r\n") and got.count(b"-ERR") == 1, f"{s.name}: {got[:200]!r}"
        assert closed, f"{s.name}: connection left open after a protocol error"
    for s in servers:
        _still_serving(s)


def test_oversized_multibulk_exact(servers):
    for s, (got, closed) in zip(servers, raw_both(servers, b"*99999999999\r\n", wait=3.0, sentinel=False)):
        assert got == b"-ERR Protocol error: invalid multibulk length\r\n", (s.name, got)
        assert closed


def test_too_big_inline_request(servers):
    for s, (got, closed) in zip(servers, raw_both(servers, b"A" * (200 * 1024), wait=3.0, sentinel=False)):
        assert got.startswith(b"-ERR Protocol error"), (s.name, got[:100])
        assert closed
        _still_serving(s)


def test_protocol_error_does_not_disturb_other_connections(servers):
    for s in servers:
        with s.raw() as good:
            assert good.cmd("SET", "k", "v") == b"+OK\r\n"
            with s.raw() as bad:
                bad.send(b"*1\r\n$abc\r\n")
                assert bad.read_available(1.0).startswith(b"-ERR Protocol error")
            assert good.cmd("GET", "k") == b"$1\r\nv\r\n"


def test_partial_frames_byte_by_byte(servers):
    data = encode_command("SET", "slow", "value with spaces") + encode_command("GET", "slow") + b"PING\r\n"
    for s in servers:
        with s.raw() as c:
            for i in range(len(data)):
                c.send(data[i:i + 1])
                if i % 7 == 0:
                    time.sleep(0.001)
            assert c.read_reply() == b"+OK\r\n"
            assert c.read_reply() == b"$17\r\nvalue with spaces\r\n"
            assert c.read_reply() == b"+PONG\r\n"


def test_frame_split_in_bulk_payload(servers):
    big = b"x" * 100_000
    frame = encode_command("SET", "k", big)
    for s in servers:
        with s.raw() as c:
            c.send(frame[:50_000])
            time.sleep(0.05)
            c.send(frame[50_000:])
            assert c.read_reply() == b"+OK\r\n"
            assert c.cmd("STRLEN", "k") == b":100000\r\n"


# ---------------------------------------------------------------- pipelining


def test_pipeline_1000_commands(both):
    cmds = []
    for i in range(1000):
        k = f"p:{i % 50}"
        cmds.append([("SET", k, str(i)), ("INCR", k), ("GET", k), ("HSET", "ph", k, str(i)),
                     ("SADD", "ps", k), ("ZADD", "pz", str(i), k), ("DEL", k), ("EXISTS", k),
                     ("ZSCORE", "pz", k), ("INCRBY", "pc", "3")][i % 10])
    a, b = both.pipeline_both(cmds)
    assert len(a) == 1000
    assert a == b


def test_pipeline_raw_1000_pings(servers):
    data = b"PING\r\n" * 500 + encode_command("PING") * 500
    for s in servers:
        with s.raw() as c:
            c.send(data)
            for _ in range(1000):
                assert c.read_reply() == b"+PONG\r\n"


def test_pipeline_mixed_errors_keep_order(servers):
    cmds = [("SET", "k", "v"), ("INCR", "k"), ("GET", "k"), ("NOSUCH",), ("GET",), ("ECHO", "end")] * 50
    assert exchange(servers[0].port, cmds) == exchange(servers[1].port, cmds)


def test_pipeline_large_replies(servers):
    """Replies bigger than socket buffers while the client keeps writing."""
    cmds = [("SET", "big", "y" * 200_000)] + [("GET", "big")] * 50
    for s in servers:
        replies = exchange(s.port, cmds, timeout=20)
        assert replies[0] == b"+OK\r\n"
        assert all(r == b"$200000\r\n" + b"y" * 200_000 + b"\r\n" for r in replies[1:])


# ---------------------------------------------------------------- big values


def test_big_value_20mb(servers):
    value = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    for s in servers:
        c = make_client(s.port, timeout=60)
        try:
            assert call(c, "SET", "big", value) == b"OK"
            assert call(c, "STRLEN", "big") == len(value)
            got = call(c, "GET", "big")
            assert got == value, f"{s.name}: 20 MB value came back different ({len(got)} bytes)"
            assert call(c, "APPEND", "big", "tail") == len(value) + 4
            assert call(c, "GETRANGE", "big", "-4", "-1") == b"tail"
            assert call(c, "DEL", "big") == 1
        finally:
            close_client(c)


def test_many_arguments(both):
    members = [f"m{i}" for i in range(20_000)]
    assert both("SADD", "s", *members) == 20_000
    assert both("SCARD", "s") == 20_000
    kv = []
    for i in range(10_000):
        kv += [f"k{i}", f"v{i}"]
    assert both("MSET", *kv) == b"OK"
    assert both("DBSIZE") == 10_001


# ---------------------------------------------------------------- many connections


def test_concurrent_connections(cluster):
    s = cluster.target
    errors = []

    def worker(n):
        try:
            c = make_client(s.port)
            for i in range(50):
                call(c, "INCR", "shared")
                call(c, "SET", f"w{n}:{i}", i)
            close_client(c)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    c = make_client(s.port)
    try:
        assert call(c, "GET", "shared") == b"1000"
        assert call(c, "DBSIZE") == 1001
    finally:
        close_client(c)


def test_client_disconnect_mid_command(servers):
    for s in servers:
        with s.raw() as c:
            c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nonly-part")
        _still_serving(s)


# ---------------------------------------------------------------- RESP3

RESP3_EXCHANGES = [
    [("ZADD", "z", "1.5", "a"), ("ZSCORE", "z", "a")],
    [("ZADD", "z", "1e30", "a"), ("ZSCORE", "z", "a")],
    [("ZADD", "z", "inf", "a", "-inf", "b"), ("ZSCORE", "z", "a"), ("ZSCORE", "z", "b")],
    [("ZINCRBY", "z", "0.1", "a"), ("ZINCRBY", "z", "0.2", "a")],
    [("ZADD", "z", "INCR", "2", "a"), ("ZSCORE", "z", "nokey")],
    [("ZADD", "z", "1", "a", "2", "b"), ("ZRANGE", "z", "0", "-1", "WITHSCORES")],
    [("ZADD", "z", "1", "a", "2", "b"), ("ZRANGE", "z", "0", "-1")],
    [("ZADD", "z", "1", "a", "2", "b"), ("ZRANGEBYSCORE", "z", "-inf", "inf", "WITHSCORES")],
    [("ZADD", "z", "1", "a", "2", "b"), ("ZREVRANGE", "z", "0", "-1", "WITHSCORES")],
    [("ZADD", "z", "1", "a", "2", "b"), ("ZMSCORE", "z", "a", "nokey", "b")],
    [("ZADD", "z", "1", "a", "2", "b"), ("ZPOPMIN", "z")],
    [("ZADD", "z", "1", "a", "2", "b", "3", "c"), ("ZPOPMAX", "z", "2")],
    [("ZADD", "z", "1", "a"), ("ZRANDMEMBER", "z", "1", "WITHSCORES")],
    [("ZADD", "z", "1", "a"), ("ZADD", "y", "2", "a"), ("ZUNION", "2", "z", "y", "WITHSCORES")],
    [("ZADD", "z", "1", "a"), ("ZSCAN", "z", "0")],
    [("HSET", "h", "f", "v"), ("HGETALL", "h")],
    [("HGETALL", "nokey")],
    [("HSET", "h", "f", "v"), ("HRANDFIELD", "h", "1", "WITHVALUES")],
    [("HSET", "h", "f", "v"), ("HMGET", "h", "f", "nofield")],
    [("HSET", "h", "f", "1.5"), ("HINCRBYFLOAT", "h", "f", "1")],
    [("HSET", "h", "f", "v"), ("HSCAN", "h", "0")],
    [("SADD", "s", "a"), ("SMEMBERS", "s")],
    [("SMEMBERS", "nokey")],
    [("SADD", "s", "a"), ("SADD", "t", "a"), ("SINTER", "s", "t"), ("SUNION", "s", "t"), ("SDIFF", "s", "t")],
    [("SADD", "s", "a"), ("SMISMEMBER", "s", "a", "b"), ("SISMEMBER", "s", "a")],
    [("SADD", "s", "a"), ("SPOP", "s", "1")],
    [("SADD", "s", "a"), ("SRANDMEMBER", "s", "1")],
    [("SET", "k", "v"), ("GET", "k"), ("GET", "nokey"), ("MGET", "k", "nokey")],
    [("INCRBYFLOAT", "f", "1.5"), ("INCR", "n"), ("EXISTS", "n"), ("TTL", "nokey")],
    [("SET", "k", "v", "GET"), ("GETDEL", "k"), ("GETDEL", "k")],
    [("PFADD", "p", "a"), ("PFCOUNT", "p")],
    [("MULTI",), ("SET", "k", "v"), ("ZADD", "z", "1", "a"), ("ZSCORE", "z", "a"), ("HGETALL", "nokey"), ("EXEC",)],
    [("WATCH", "k"), ("MULTI",), ("EXEC",)],
    [("CONFIG", "GET", "maxmemory")],
    [("SCAN", "0")],
    [("NOSUCHCOMMAND",), ("GET",), ("SET", "k", "v"), ("INCR", "k")],
    [("PING",), ("ECHO", "x"), ("DBSIZE",)],
    [("SET", "k", "v"), ("TYPE", "k"), ("RANDOMKEY",), ("KEYS", "*")],
    [("HSET", "h", "f", "v"), ("COPY", "h", "h2"), ("HGETALL", "h2")],
]


@pytest.mark.parametrize("cmds", RESP3_EXCHANGES, ids=lambda c: " ".join(" ".join(x) for x in c)[:60])
def test_resp3_wire_bytes(servers, cmds):
    replies = []
    for s in servers:
        r = exchange(s.port, [("HELLO", "3")] + list(cmds))
        assert r[0].startswith(b"%7\r\n")
        replies.append(r[1:])
    assert replies[1] == replies[0]


def test_resp3_types(servers):
    for s in servers:
        r = exchange(s.port, [("HELLO", "3"), ("HSET", "h", "f", "v"), ("HGETALL", "h"), ("ZADD", "z", "1.5", "a"),
                              ("ZSCORE", "z", "a"), ("SADD", "s", "m"), ("SMEMBERS", "s"), ("GET", "nokey")])
        assert r[2] == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n", (s.name, r[2])
        assert r[4] == b",1.5\r\n", (s.name, r[4])
        assert r[6] == b"~1\r\n$1\r\nm\r\n", (s.name, r[6])
        assert r[7] == b"_\r\n", (s.name, r[7])


def test_resp3_with_redis_py(both3):
    both3("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert both3("HGETALL", "h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    both3("ZADD", "z", "1.5", "a", "0.1", "b")
    assert both3("ZSCORE", "z", "a") == 1.5
    assert both3("ZINCRBY", "z", "0.2", "b") == 0.30000000000000004
    assert both3("ZRANGE", "z", "0", "-1", "WITHSCORES") == [[b"b", 0.30000000000000004], [b"a", 1.5]]
    both3("SADD", "s", "x", "y", "z")
    assert both3.unordered("SMEMBERS", "s") == [b"x", b"y", b"z"]
    assert both3("CONFIG", "GET", "maxmemory", norm=lambda v: isinstance(v, dict) and list(v)) == [b"maxmemory"]
    both3.err("GET", prefix="ERR wrong number of arguments for 'get' command")


def test_resp3_info_and_client_list_types(servers):
    """INFO and CLIENT LIST are verbatim strings in RESP3 (type byte only; contents differ)."""
    kinds = []
    for s in servers:
        r = exchange(s.port, [("HELLO", "3"), ("INFO", "server"), ("CLIENT", "INFO")])
        kinds.append((r[1][:1], r[2][:1]))
    assert kinds[1] == kinds[0]
