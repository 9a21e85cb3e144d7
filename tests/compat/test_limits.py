"""Limits on what a client can make the server hold, compared with redis-server 7.0: strict length
parsing, the small requests allowed before AUTH, client-query-buffer-limit (also while blocked
or subscribed), client-output-buffer-limit, proto-max-bulk-len, protected mode.
"""

import ctypes
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest

import harness
from harness import REDIS_SERVER, encode_command, free_port, replica_bin
from test_protocol import raw_both


def _restore(servers, *settings):
    for s in servers:
        with s.raw() as c:
            for name, value in settings:
                assert c.cmd("CONFIG", "SET", name, value) == b"+OK\r\n", (s.name, name)


def _closed_without_reply(sock, timeout=5.0) -> bytes:
    """Reads until the server closes; returns what came (fails if it stays open)."""
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return got
            got += chunk
    except ConnectionResetError:
        return got
    except socket.timeout:
        pass
    raise AssertionError(f"connection still open; got {got[:200]!r}")


# ---------------------------------------------------------------- strict lengths

STRICT = [
    b"*1\r\n$+4\r\nPING\r\n",
    b"*1\r\n$00004\r\nPING\r\n",
    b"*1\r\n$04\r\nPING\r\n",
    b"*1\r\n$ 4\r\nPING\r\n",
    b"*1\r\n$4 \r\nPING\r\n",
    b"*1\r\n$-0\r\n",
    b"*+1\r\n$4\r\nPING\r\n",
    b"*01\r\n$4\r\nPING\r\n",
    b"* 1\r\n$4\r\nPING\r\n",
    b"*1 \r\n$4\r\nPING\r\n",
    b"*-0\r\n",
    b"*\r\n",
    b"*1\r\n$\r\n",
    b"*1\r\n$4.0\r\nPING\r\n",
    b"*1\r\n$0x4\r\nPING\r\n",
    b"*2147483648\r\n",
    b"*1\r\n$536870913\r\n",
    b"*1\r\n$123456789012345678901\r\n",
]


@pytest.mark.parametrize("data", STRICT, ids=lambda d: repr(d)[:40])
def test_lengths_are_parsed_as_strictly_as_redis(servers, data):
    (a, ca), (b, cb) = raw_both(servers, data, wait=3.0, sentinel=False)
    assert (b, cb) == (a, ca)
    assert a.startswith(b"-ERR Protocol error") and ca, a


LENIENT_LIKE_REDIS = [
    b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n",   # Redis skips the two bytes after the data unread
    b"*1\r\n$4\rxPING\r\n",                     # ... and the byte after '\r' in a length line
    b"*-5\r\n*1\r\n$4\r\nPING\r\n",
    b"*0\r\n",
    b"*1\r\n$0\r\n\r\n",
]


@pytest.mark.parametrize("data", LENIENT_LIKE_REDIS, ids=lambda d: repr(d)[:40])
def test_what_redis_accepts_is_accepted(servers, data):
    (a, ca), (b, cb) = raw_both(servers, data)
    assert (b, cb) == (a, ca)


def test_inline_commands_still_work_after_partial_reads(servers):
    for s in servers:
        with s.raw() as c:
            for piece in [b"SE", b"T k ", b"'hello ", b"world'\r", b"\nGET k\r\n"]:
                c.send(piece)
                time.sleep(0.02)
            assert c.read_reply() == b"+OK\r\n"
            assert c.read_reply() == b"$11\r\nhello world\r\n"


def test_a_request_dripped_byte_by_byte(servers):
    data = encode_command("SET", "drip", "x" * 100) + encode_command("GET", "drip")
    for s in servers:
        with s.raw() as c:
            for i in range(len(data)):
                c.send(data[i:i + 1])
            assert c.read_reply() == b"+OK\r\n"
            assert c.read_reply() == b"$100\r\n" + b"x" * 100 + b"\r\n"


# ---------------------------------------------------------------- before AUTH


@pytest.fixture(scope="module")
def auth_servers(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("limits-auth")
    pair = [harness.Server("redis", "oracle-limits", workdir, password=harness.PASSWORD),
            harness.Server(harness.TARGET_KIND, "target-limits", workdir, password=harness.PASSWORD)]
    for s in pair:
        s.start()
    yield pair
    for s in pair:
        s.stop()


UNAUTH = [
    (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
    (b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$300000000\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n"),
    (b"PING\r\n*11\r\n", b"-NOAUTH Authentication required.\r\n"
                         b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
]


@pytest.mark.parametrize("data,expected", UNAUTH, ids=lambda d: repr(d)[:40])
def test_unauthenticated_big_requests_are_refused_at_the_header(auth_servers, data, expected):
    for s in auth_servers:
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(data)
            assert _closed_without_reply(sock) == expected, s.name


def test_unauthenticated_limits_are_inclusive(auth_servers):
    """10 arguments of 16 KiB each are allowed before AUTH (and get NOAUTH)."""
    data = encode_command("SET", "k", "v" * 16384, *(["x"] * 7))
    for s in auth_servers:
        with s.raw() as c:
            c.send(data)
            assert c.read_reply() == b"-NOAUTH Authentication required.\r\n", s.name


def test_auth_then_a_big_request_in_one_write(auth_servers):
    """The limits follow AUTH at once, even within one pipeline (Redis runs AUTH before it parses
    what follows)."""
    value = b"v" * (1 << 20)
    data = encode_command("AUTH", harness.PASSWORD) + encode_command("SET", "big", value) + \
        encode_command("STRLEN", "big")
    for s in auth_servers:
        with s.raw() as c:
            c.send(data)
            assert c.read_reply() == b"+OK\r\n"
            assert c.read_reply() == b"+OK\r\n"
            assert c.read_reply() == b":1048576\r\n"


def test_unauthenticated_client_cannot_make_the_server_buffer(auth_servers):
    """The replica refuses a 100 MB argument before AUTH without buffering it: its memory does not
    grow by the amount sent."""
    target = auth_servers[1]
    if not target.is_replica:
        pytest.skip("replica only")
    before = _rss(target.pid)
    with socket.create_connection(("127.0.0.1", target.port)) as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000000\r\n")
        piece = b"u" * (1 << 20)
        try:
            for _ in range(100):
                sock.sendall(piece)
        except OSError:
            pass
    assert _rss(target.pid) - before < 20 << 20


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------- query buffer limit


def test_query_buffer_limit_defaults_and_bounds(both):
    assert both("CONFIG", "GET", "client-query-buffer-limit") == [b"client-query-buffer-limit", b"1073741824"]
    assert both("CONFIG", "GET", "proto-max-bulk-len") == [b"proto-max-bulk-len", b"536870912"]
    for name in ("client-query-buffer-limit", "proto-max-bulk-len"):
        for bad in ("100", "1.5gb", "-1", "abc", "1048575"):
            both.err("CONFIG", "SET", name, bad)
    assert both("CONFIG", "SET", "client-query-buffer-limit", "2GB") == b"OK"
    assert both("CONFIG", "GET", "client-query-buffer-limit") == [b"client-query-buffer-limit", b"2147483648"]
    assert both("CONFIG", "SET", "client-query-buffer-limit", "1gb") == b"OK"


def _flood_closes(server, prelude: bytes, expect_first: bytes, flood: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(prelude)
        sock.settimeout(5)
        if expect_first:
            got = b""
            while len(got) < len(expect_first):
                got += sock.recv(100)
            assert got == expect_first, (server.name, got)
        try:
            for at in range(0, len(flood), 1 << 16):
                sock.sendall(flood[at:at + (1 << 16)])
        except OSError:
            return True
        try:
            return sock.recv(100) == b""
        except (ConnectionResetError, socket.timeout):
            return True


@pytest.mark.parametrize("state", ["blocked", "subscribed", "partial big argument"])
def test_query_buffer_limit_closes_in_every_state(servers, state):
    _restore(servers, ("client-query-buffer-limit", "1mb"))
    try:
        if state == "blocked":
            prelude, first = encode_command("BLPOP", "nothing", "0"), b""
            flood = encode_command("SET", "k", "v" * 1000) * 2500       # 2.5 MB behind the block
        elif state == "subscribed":
            prelude, first = encode_command("SUBSCRIBE", "ch"), b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
            flood = b"*2\r\n$4\r\nPING\r\n$3000000\r\n" + b"p" * 2_500_000
        else:
            prelude, first = b"", b""
            flood = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n" + b"p" * 2_500_000
        for s in servers:
            assert _flood_closes(s, prelude, first, flood), f"{s.name} kept a {state} client over the limit"
            _still_serving(s)
    finally:
        _restore(servers, ("client-query-buffer-limit", "1gb"))


def _still_serving(server):
    with server.raw() as c:
        assert c.cmd("PING") == b"+PONG\r\n", f"{server.name} stopped serving"


def test_proto_max_bulk_len_applies(servers):
    _restore(servers, ("proto-max-bulk-len", "1mb"))
    try:
        (a, ca), (b, cb) = raw_both(servers, b"*2\r\n$4\r\nECHO\r\n$1048577\r\n", wait=3.0, sentinel=False)
        assert (b, cb) == (a, ca) == (b"-ERR Protocol error: invalid bulk length\r\n", True)
        data = encode_command("ECHO", "e" * (1 << 20))
        for s in servers:
            with s.raw() as c:
                c.send(data)
                assert c.read_reply() == b"$1048576\r\n" + b"e" * (1 << 20) + b"\r\n"
    finally:
        _restore(servers, ("proto-max-bulk-len", "512mb"))


# ---------------------------------------------------------------- output buffer limit


def test_output_buffer_limit_config(both):
    default = [b"client-output-buffer-limit", b"normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"]
    assert both("CONFIG", "GET", "client-output-buffer-limit") == default
    for bad in ("normal 1 2", "foo 1 2 3", "normal -1 2 3", "normal 1x 2 3", "normal 1 2 x",
                "normal 1 2 -3", "master 1 2 3", "normal 1 2 3 pubsub 1 2"):
        both.err("CONFIG", "SET", "client-output-buffer-limit", bad)
    assert both("CONFIG", "GET", "client-output-buffer-limit") == default
    assert both("CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 2K 3 replica 1 2 3") == b"OK"
    assert both("CONFIG", "GET", "client-output-buffer-limit") == [
        b"client-output-buffer-limit", b"normal 1048576 2000 3 slave 1 2 3 pubsub 33554432 8388608 60"]
    assert both("CONFIG", "SET", "client-output-buffer-limit",
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60") == b"OK"


def test_normal_client_over_its_hard_output_limit_is_closed(servers):
    _restore(servers, ("client-output-buffer-limit", "normal 1mb 0 0"))
    try:
        for s in servers:
            with s.raw() as c:
                assert c.cmd("SET", "big", "b" * (3 << 20)) == b"+OK\r\n"
                assert c.cmd("GETRANGE", "big", "0", "9") == b"$10\r\nbbbbbbbbbb\r\n"
                c.send(encode_command("GET", "big"))
                got = _closed_without_reply(c.sock)
                assert len(got) < 3 << 20, f"{s.name} sent the whole reply over the limit"
            _still_serving(s)
    finally:
        _restore(servers, ("client-output-buffer-limit", "normal 0 0 0"))


# ---------------------------------------------------------------- protected mode

CLONE_NEWNET = 0x40000000


def _sh(*args):
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")


@pytest.fixture(scope="module")
def netns():
    """A network namespace of this test's own with a non-loopback address, 10.203.0.1: servers run
    in it bound to 0.0.0.0, and a client in it that connects to 10.203.0.1 comes from a
    non-loopback address. Nothing leaves the namespace."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 for a network namespace")
    ns = f"smlim-{uuid.uuid4().hex[:8]}"
    _sh("ip", "netns", "add", ns)
    try:
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "link", "add", "a0", "type", "veth", "peer", "name", "b0")
        _sh("ip", "-n", ns, "addr", "add", "10.203.0.1/24", "dev", "a0")
        _sh("ip", "-n", ns, "link", "set", "a0", "up")
        _sh("ip", "-n", ns, "link", "set", "b0", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _in_netns(ns, fn):
    """Runs fn() on a thread that lives in network namespace ns; returns its result."""
    result = {}

    def run():
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{ns}") as f:
            if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                result["error"] = OSError(ctypes.get_errno(), "setns")
                return
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed back to the caller
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _exchange(host, port, data=b"*1\r\n$4\r\nPING\r\n", timeout=5.0):
    """Sends data, returns (bytes received until close or timeout, closed?)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock:
        try:
            sock.sendall(data)
        except OSError:
            pass
        got = b""
        try:
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    return got, True
                got += chunk
                if got.endswith(b"\r\n") and not got.startswith(b"-DENIED"):
                    return got, False
        except ConnectionResetError:
            return got, True
        except socket.timeout:
            return got, False


class _NsServer:
    def __init__(self, ns, kind, *extra):
        self.port = free_port()
        if kind == "redis":
            cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "0.0.0.0", "--save", "",
                   "--appendonly", "no", *extra]
        else:
            cmd = [str(replica_bin()), "--bind", "0.0.0.0", "--port", str(self.port),
                   "--admin-port", str(free_port()), "--admin-bind", "127.0.0.1", *extra]
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.mark.parametrize("extra", [(), ("--protected-mode", "no"), ("--requirepass", "pw")],
                         ids=["protected", "protected-mode no", "password"])
def test_protected_mode_as_redis(netns, extra):
    kinds = ["redis", harness.TARGET_KIND]
    servers = [_NsServer(netns, k, *extra) for k in kinds]
    try:
        remote = [_in_netns(netns, lambda s=s: _exchange("10.203.0.1", s.port)) for s in servers]
        local = [_in_netns(netns, lambda s=s: _exchange("127.0.0.1", s.port)) for s in servers]
    finally:
        for s in servers:
            s.stop()
    assert remote[1] == remote[0], (remote[0][0][:80], remote[1][0][:300])
    assert local[1] == local[0]
    if not extra:
        assert remote[0][0].startswith(b"-DENIED Redis is running in protected mode") and remote[0][1]
        assert local[0] == (b"+PONG\r\n", False)
    elif extra[0] == "--protected-mode":
        assert remote[0] == (b"+PONG\r\n", False)
    else:
        assert remote[0] == (b"-NOAUTH Authentication required.\r\n", False)


def test_protected_mode_can_be_turned_off_at_run_time(netns):
    kinds = ["redis", harness.TARGET_KIND]
    servers = [_NsServer(netns, k) for k in kinds]
    try:
        for s in servers:
            got, closed = _in_netns(netns, lambda: _exchange("10.203.0.1", s.port))
            assert got.startswith(b"-DENIED") and closed
            ok = _in_netns(netns, lambda: _exchange(
                "127.0.0.1", s.port, encode_command("CONFIG", "SET", "protected-mode", "no")))
            assert ok == (b"+OK\r\n", False)
            assert _in_netns(netns, lambda: _exchange("10.203.0.1", s.port)) == (b"+PONG\r\n", False)
            ok = _in_netns(netns, lambda: _exchange(
                "127.0.0.1", s.port, encode_command("CONFIG", "GET", "protected-mode")))
            assert ok == (b"*2\r\n$14\r\nprotected-mode\r\n$2\r\nno\r\n", False)
    finally:
        for s in servers:
            s.stop()


def test_requests_sent_while_blocked_run_after_the_block(servers):
    """What a blocked client pipelines meanwhile waits, then runs without further input."""
    for s in servers:
        with s.raw() as c, s.raw() as pusher:
            c.send(encode_command("BLPOP", "queue", "0"))
            time.sleep(0.1)
            c.send(encode_command("SET", "after", "1") + encode_command("GET", "after"))
            time.sleep(0.1)
            assert pusher.cmd("RPUSH", "queue", "x") == b":1\r\n"
            assert c.read_reply() == b"*2\r\n$5\r\nqueue\r\n$1\r\nx\r\n", s.name
            assert c.read_reply() == b"+OK\r\n", s.name
            assert c.read_reply() == b"$1\r\n1\r\n", s.name
