"""Connection commands: PING ECHO HELLO AUTH SELECT QUIT RESET CLIENT."""

import time

import pytest

import harness
from harness import Err, RawConn, call, close_client, encode_command, make_client


# ---------------------------------------------------------------- PING / ECHO


def test_ping(both):
    assert both("PING") == b"PONG"
    assert both("PING", "hello") == b"hello"
    assert both("PING", "") == b""
    both.err("PING", "a", "b", prefix="ERR wrong number of arguments for 'ping' command")


def test_ping_binary_payload(both):
    assert both("PING", b"\x00\xff\r\n") == b"\x00\xff\r\n"


def test_echo(both):
    assert both("ECHO", "hello world") == b"hello world"
    assert both("ECHO", "") == b""
    assert both("ECHO", b"\x00\x01\x02") == b"\x00\x01\x02"
    both.err("ECHO", prefix="ERR wrong number of arguments for 'echo' command")
    both.err("ECHO", "a", "b", prefix="ERR wrong number of arguments for 'echo' command")


def test_ping_raw_bytes(servers):
    for s in servers:
        with s.raw() as c:
            assert c.cmd("PING") == b"+PONG\r\n"
            assert c.cmd("PING", "x") == b"$1\r\nx\r\n"


# ---------------------------------------------------------------- HELLO


HELLO_KEYS = [b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"]


def _hello_shape(reply, proto):
    if isinstance(reply, dict):
        items = list(reply.items())
    else:
        assert isinstance(reply, list) and len(reply) % 2 == 0, reply
        items = list(zip(reply[0::2], reply[1::2]))
    keys = [k for k, _ in items]
    d = dict(items)
    assert keys == HELLO_KEYS, keys
    assert isinstance(d[b"server"], bytes) and d[b"server"]
    assert isinstance(d[b"version"], bytes) and d[b"version"]
    assert d[b"proto"] == proto
    assert isinstance(d[b"id"], int) and d[b"id"] > 0
    assert d[b"mode"] == b"standalone"
    assert d[b"role"] == b"master"
    assert isinstance(d[b"modules"], list)
    return d


def test_hello_no_args_is_resp2_flat_map(both):
    a, b = both.run("HELLO")
    _hello_shape(a, 2)
    _hello_shape(b, 2)


def test_hello_2(both):
    a, b = both.run("HELLO", "2")
    _hello_shape(a, 2)
    _hello_shape(b, 2)
    # still RESP2 afterwards
    assert both("HSET", "h", "f", "v") == 1
    assert both("HGETALL", "h") == [b"f", b"v"]


def _hello_skeleton(frame: bytes):
    """The HELLO map with the values that legitimately differ (server, version, id) blanked,
    keeping every RESP type byte."""
    kind, items = harness.parse_frame(frame)
    assert kind in ("%", "*"), kind
    if kind == "*":  # RESP2: flat array of name, value
        items = list(zip(items[0::2], items[1::2]))
    out = []
    for (kk, key), (vk, val) in items:
        if key in (b"server", b"version", b"id"):
            assert val, (key, val)
            val = "<any>"
        out.append(((kk, key), (vk, val)))
    return kind, out


def test_hello_3_map_reply(servers):
    """HELLO 3 answers a RESP3 map: same keys, same order, same RESP types; equal values except
    server, version and id."""
    shapes = []
    for s in servers:
        with s.raw() as c:
            frame = c.cmd("HELLO", "3")
            assert frame.startswith(b"%7\r\n"), frame
            shapes.append(_hello_skeleton(frame))
            # afterwards replies are RESP3
            assert c.cmd("GET", "nosuchkey") == b"_\r\n"
    assert shapes[1] == shapes[0]
    c3 = [make_client(s.port, protocol=3) for s in servers]
    try:
        for cl in c3:
            _hello_shape(call(cl, "HELLO", "3"), 3)
    finally:
        for cl in c3:
            close_client(cl)


def test_hello_2_reply_structure(servers):
    shapes = []
    for s in servers:
        with s.raw() as c:
            shapes.append(_hello_skeleton(c.cmd("HELLO", "2")))
    assert shapes[1] == shapes[0]


def test_hello_3_setname_and_auth(servers):
    for s in servers:
        with s.raw() as c:
            frame = c.cmd("HELLO", "3", "AUTH", "default", "any", "SETNAME", "resp3-client")
            assert frame.startswith(b"%7\r\n"), (s.name, frame)
            assert c.cmd("CLIENT", "GETNAME") == b"$12\r\nresp3-client\r\n"
            assert c.cmd("HGETALL", "nokey") == b"%0\r\n"


def test_hello_switch_back_to_2(servers):
    for s in servers:
        with s.raw() as c:
            assert c.cmd("HELLO", "3").startswith(b"%7")
            assert c.cmd("HELLO", "2").startswith(b"*14\r\n")
            assert c.cmd("GET", "nosuchkey") == b"$-1\r\n"


@pytest.mark.parametrize("args", [
    ("4",), ("1",), ("0",), ("abc",), ("-1",), ("3", "AUTH"), ("3", "AUTH", "default"),
    ("2", "SETNAME"), ("2", "SETNAME", "bad name"), ("2", "SETNAME", "bad\nname"), ("2", "FOO"),
    ("3", "FOO", "bar"),
])
def test_hello_errors(both, args):
    r = both("HELLO", *args)
    assert isinstance(r, Err)


def test_hello_setname(both):
    a, b = both.run("HELLO", "2", "SETNAME", "my-client")
    _hello_shape(a, 2)
    _hello_shape(b, 2)
    assert both("CLIENT", "GETNAME") == b"my-client"


def test_hello_auth_without_password_configured(both):
    # the default user has no password: any password is accepted by HELLO AUTH default
    a, b = both.run("HELLO", "2", "AUTH", "default", "whatever")
    _hello_shape(a, 2)
    _hello_shape(b, 2)
    both.err("HELLO", "2", "AUTH", "nosuchuser", "pw", prefix="WRONGPASS")


# ---------------------------------------------------------------- AUTH


def test_auth_without_password_configured(both):
    both.err("AUTH", "foo", prefix="ERR AUTH <password> called without any password configured")
    both.err("AUTH", "nosuchuser", "foo", prefix="WRONGPASS")
    both.err("AUTH", prefix="ERR wrong number of arguments for 'auth' command")
    both.err("AUTH", "a", "b", "c", prefix="ERR syntax error")


@pytest.fixture
def auth_both(auth_cluster):
    """Differential helper on UNauthenticated connections to the password-protected pair."""
    oracle, target = auth_cluster
    d = harness.Differ(oracle, target, password=None)
    yield d
    d.close()


def test_auth_required(auth_both):
    d = auth_both
    d.err("GET", "k", prefix="NOAUTH Authentication required")
    d.err("PING", prefix="NOAUTH")
    d.err("SET", "k", "v", prefix="NOAUTH")
    d.err("AUTH", "wrong", prefix="WRONGPASS invalid username-password pair")
    d.err("AUTH", "default", "wrong", prefix="WRONGPASS")
    d.err("HELLO", "2", prefix="NOAUTH HELLO must be called with the client already authenticated")
    assert d("AUTH", harness.PASSWORD) == b"OK"
    assert d("PING") == b"PONG"
    assert d("SET", "authkey", "v") == b"OK"
    assert d("GET", "authkey") == b"v"
    assert d("DEL", "authkey") == 1


def test_auth_with_username(auth_both):
    d = auth_both
    assert d("AUTH", "default", harness.PASSWORD) == b"OK"
    assert d("PING") == b"PONG"


def test_auth_via_hello(auth_cluster):
    for s in auth_cluster:
        with s.raw() as c:
            assert c.cmd("PING").startswith(b"-NOAUTH")
            r = c.cmd("HELLO", "3", "AUTH", "default", "wrong")
            assert r.startswith(b"-WRONGPASS"), r
            r = c.cmd("HELLO", "3", "AUTH", "default", harness.PASSWORD)
            assert r.startswith(b"%7\r\n"), r
            assert c.cmd("PING") == b"+PONG\r\n"


def test_auth_client_with_password(auth_cluster):
    """redis-py connecting with a password (AUTH in its handshake) just works."""
    for s in auth_cluster:
        for proto in (2, 3):
            c = make_client(s.port, protocol=proto, password=harness.PASSWORD)
            try:
                assert call(c, "PING") in (b"PONG", "PONG")
            finally:
                close_client(c)


def test_auth_failure_keeps_connection_unauthenticated(auth_both):
    d = auth_both
    assert d("AUTH", harness.PASSWORD) == b"OK"
    d.err("AUTH", "wrong", prefix="WRONGPASS")
    # a failed AUTH after a successful one does not log the connection out
    assert d("PING") == b"PONG"


# ---------------------------------------------------------------- SELECT


@pytest.mark.parametrize("db", range(16))
def test_select_each_db(both, db):
    assert both("SELECT", str(db)) == b"OK"
    assert both("SET", f"k{db}", f"v{db}") == b"OK"
    assert both("DBSIZE") == 1
    assert both("GET", f"k{db}") == f"v{db}".encode()


@pytest.mark.parametrize("arg", ["16", "-1", "100", "abc", "1.5", "", "99999999999999999999"])
def test_select_errors(both, arg):
    both.err("SELECT", arg, prefix="ERR")


def test_select_isolates_keyspaces(both):
    both.seq(("SET", "k", "zero"), ("SELECT", "1"), ("GET", "k"), ("SET", "k", "one"),
             ("DBSIZE",), ("SELECT", "0"), ("GET", "k"), ("SELECT", "15"), ("EXISTS", "k"))
    assert both("SELECT", "0") == b"OK"
    assert both("GET", "k") == b"zero"


def test_select_arity(both):
    both.err("SELECT", prefix="ERR wrong number of arguments for 'select' command")
    both.err("SELECT", "1", "2", prefix="ERR wrong number of arguments for 'select' command")


# ---------------------------------------------------------------- QUIT


def test_quit_closes_connection(servers):
    for s in servers:
        with s.raw() as c:
            assert c.cmd("PING") == b"+PONG\r\n"
            assert c.cmd("QUIT") == b"+OK\r\n"
            assert c.closed_by_peer(), f"{s.name}: connection still open after QUIT"
        # the server keeps serving
        with s.raw() as c:
            assert c.cmd("PING") == b"+PONG\r\n"


def test_quit_after_pipelined_commands(servers):
    """Replies of commands pipelined before QUIT are all delivered."""
    outs = []
    for s in servers:
        with s.raw() as c:
            c.send(encode_command("SET", "q", "1") + encode_command("INCR", "q") + encode_command("QUIT")
                   + encode_command("INCR", "q"))
            outs.append(c.read_available(1.0))
    assert outs[0] == b"+OK\r\n:2\r\n+OK\r\n"
    assert outs[1] == outs[0]


# ---------------------------------------------------------------- RESET


def test_reset(both):
    both.seq(("SELECT", "1"), ("SET", "k", "db1"), ("CLIENT", "SETNAME", "named"))
    assert both("RESET") == b"RESET"
    assert both("GET", "k") is None          # back in db 0
    assert both("CLIENT", "GETNAME") is None  # name cleared
    assert both("SELECT", "1") == b"OK"
    assert both("GET", "k") == b"db1"


def test_reset_discards_transaction_and_watch(both):
    other = both.new()
    both.seq(("SET", "w", "1"), ("WATCH", "w"), ("MULTI",), ("SET", "x", "1"))
    assert both("RESET") == b"RESET"
    both.err("EXEC", prefix="ERR EXEC without MULTI")
    other("SET", "w", "2")
    # the watch was dropped by RESET: a new transaction commits
    assert both("MULTI") == b"OK"
    assert both("SET", "x", "2") == b"QUEUED"
    assert both("EXEC") == [b"OK"]
    assert both("GET", "x") == b"2"


def test_reset_switches_back_to_resp2(servers):
    for s in servers:
        with s.raw() as c:
            assert c.cmd("HELLO", "3").startswith(b"%")
            assert c.cmd("RESET") == b"+RESET\r\n"
            assert c.cmd("GET", "nosuchkey") == b"$-1\r\n"


def test_reset_arity(both):
    both.err("RESET", "x", prefix="ERR wrong number of arguments for 'reset' command")


# ---------------------------------------------------------------- CLIENT


def _client_fields(line: bytes) -> dict:
    out = {}
    for part in line.decode().strip().split(" "):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def test_client_id(servers):
    for s in servers:
        a, b = s.client(), s.client()
        try:
            ia, ib = call(a, "CLIENT", "ID"), call(b, "CLIENT", "ID")
            assert isinstance(ia, int) and ia > 0
            assert isinstance(ib, int) and ib > 0 and ib != ia
            assert call(a, "CLIENT", "ID") == ia  # stable per connection
        finally:
            close_client(a)
            close_client(b)


def test_client_setname_getname(both):
    assert both("CLIENT", "GETNAME") is None
    assert both("CLIENT", "SETNAME", "worker-1") == b"OK"
    assert both("CLIENT", "GETNAME") == b"worker-1"
    assert both("CLIENT", "SETNAME", "") == b"OK"
    assert both("CLIENT", "GETNAME") is None
    both.err("CLIENT", "SETNAME", "has space", prefix="ERR Client names cannot contain spaces")
    both.err("CLIENT", "SETNAME", "new\nline", prefix="ERR Client names cannot contain spaces")
    both.err("CLIENT", "SETNAME", prefix="ERR wrong number of arguments for 'client|setname' command")
    both.err("CLIENT", "GETNAME", "x", prefix="ERR wrong number of arguments for 'client|getname' command")


def test_client_list(servers):
    for s in servers:
        a, b = s.client(), s.client()
        try:
            call(a, "CLIENT", "SETNAME", "lister")
            ida, idb = call(a, "CLIENT", "ID"), call(b, "CLIENT", "ID")
            out = call(a, "CLIENT", "LIST")
            assert isinstance(out, bytes), out
            lines = [l for l in out.split(b"\n") if l.strip()]
            fields = [_client_fields(l) for l in lines]
            for f in fields:
                for k in ("id", "addr", "name", "db", "cmd"):
                    assert k in f, (k, f)
            ids = {int(f["id"]) for f in fields}
            assert {ida, idb} <= ids
            mine = next(f for f in fields if int(f["id"]) == ida)
            assert mine["name"] == "lister"
            assert mine["addr"].startswith("127.0.0.1:")
            only = call(a, "CLIENT", "LIST", "ID", str(idb))
            assert [int(_client_fields(l)["id"]) for l in only.split(b"\n") if l.strip()] == [idb]
            normal = call(a, "CLIENT", "LIST", "TYPE", "normal")
            assert isinstance(normal, bytes) and b"id=" in normal
        finally:
            close_client(a)
            close_client(b)


def test_client_list_errors(both):
    both.err("CLIENT", "LIST", "TYPE", "foo", prefix="ERR Unknown client type 'foo'")
    both.err("CLIENT", "LIST", "ID", "abc", prefix="ERR Invalid client ID")
    both.err("CLIENT", "LIST", "FOO", prefix="ERR syntax error")


def test_client_info(servers):
    for s in servers:
        a = s.client()
        try:
            call(a, "SELECT", "3")
            call(a, "CLIENT", "SETNAME", "info-me")
            info = call(a, "CLIENT", "INFO")
            assert isinstance(info, bytes)
            assert info.count(b"\n") <= 1
            f = _client_fields(info)
            assert int(f["id"]) == call(a, "CLIENT", "ID")
            assert f["name"] == "info-me"
            assert f["db"] == "3"
            assert f["addr"].startswith("127.0.0.1:")
        finally:
            close_client(a)


def test_client_kill(servers):
    for s in servers:
        killer, victim = s.client(), s.client()
        try:
            vid = call(victim, "CLIENT", "ID")
            assert call(killer, "CLIENT", "KILL", "ID", str(vid)) == 1
            assert call(killer, "CLIENT", "KILL", "ID", str(vid)) == 0
            listing = call(killer, "CLIENT", "LIST")
            assert f"id={vid} ".encode() not in listing
        finally:
            close_client(killer)
            close_client(victim)


def test_client_kill_closes_socket(servers):
    for s in servers:
        killer = s.client()
        with s.raw() as victim:
            assert victim.cmd("CLIENT", "SETNAME", "victim") == b"+OK\r\n"
            vid = int(victim.cmd("CLIENT", "ID")[1:-2])
            info = call(killer, "CLIENT", "LIST", "ID", str(vid))
            addr = _client_fields(info)["addr"]
            assert call(killer, "CLIENT", "KILL", "ADDR", addr) == 1
            assert victim.closed_by_peer(), f"{s.name}: killed connection still open"
        close_client(killer)


def test_client_kill_old_style_and_errors(both):
    both.err("CLIENT", "KILL", "1.2.3.4:5", prefix="ERR No such client")
    assert both("CLIENT", "KILL", "ID", "999999") == 0
    assert both("CLIENT", "KILL", "ADDR", "1.2.3.4:5") == 0
    both.err("CLIENT", "KILL", "ID", "abc", prefix="ERR client-id should be greater than 0")
    both.err("CLIENT", "KILL", "FOO", "bar", prefix="ERR syntax error")
    both.err("CLIENT", "KILL", prefix="ERR wrong number of arguments for 'client|kill' command")


def test_client_no_evict(both):
    assert both("CLIENT", "NO-EVICT", "on") == b"OK"
    assert both("CLIENT", "NO-EVICT", "off") == b"OK"
    assert both("CLIENT", "NO-EVICT", "ON") == b"OK"
    both.err("CLIENT", "NO-EVICT", "maybe", prefix="ERR syntax error")
    both.err("CLIENT", "NO-EVICT", prefix="ERR wrong number of arguments")


def test_client_unknown_subcommand(both):
    both.err("CLIENT", "FOO", prefix="ERR unknown subcommand 'FOO'. Try CLIENT HELP.")
    both.err("CLIENT", prefix="ERR wrong number of arguments for 'client' command")


@pytest.mark.replica_only
def test_client_setinfo(target):
    """CLIENT SETINFO (Redis 7.2; clients such as redis-py send it on connect)."""
    assert call(target, "CLIENT", "SETINFO", "LIB-NAME", "mylib") == b"OK"
    assert call(target, "CLIENT", "SETINFO", "LIB-VER", "1.2.3") == b"OK"
    f = _client_fields(call(target, "CLIENT", "INFO"))
    assert f.get("lib-name") == "mylib"
    assert f.get("lib-ver") == "1.2.3"
    r = call(target, "CLIENT", "SETINFO", "LIB-NAME", "has space")
    assert isinstance(r, Err) and r.msg.startswith("ERR"), r
    r = call(target, "CLIENT", "SETINFO", "FOO", "x")
    assert isinstance(r, Err) and r.msg.startswith("ERR"), r
    r = call(target, "CLIENT", "SETINFO", "LIB-NAME")
    assert r == Err("ERR wrong number of arguments for 'client|setinfo' command")


def test_default_redis_py_client_works(servers):
    """The stock redis-py client (RESP3 by default, CLIENT SETINFO on connect) can talk to it."""
    import redis
    for s in servers:
        r = redis.Redis(host="127.0.0.1", port=s.port, socket_timeout=5)
        try:
            assert r.ping() is True
            assert r.set("stock", "v") is True
            assert r.get("stock") == b"v"
            assert r.hset("stockh", mapping={"a": "1"}) == 1
            assert r.hgetall("stockh") == {b"a": b"1"}
            assert r.delete("stock", "stockh") == 2
        finally:
            r.close()
