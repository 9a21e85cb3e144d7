"""Machinery shared by the SyncMesh compatibility suite.

* ``Server`` starts a real ``redis-server`` (the oracle) or the ``syncmesh-replica``
  under test on free ports and stops it again.
* ``make_client`` builds a redis-py client on ONE connection, RESP2 or RESP3, with
  every response callback removed (replies come back as the server sent them) and a
  parser that keeps the full error text (``ERR ...``, ``WRONGTYPE ...``) instead of
  redis-py's habit of stripping the error code.
* ``Differ`` (the ``both`` fixture) sends the same raw command to the oracle and to
  the target and asserts that the replies are identical, errors included.
* ``RawConn`` speaks RESP over a bare socket and returns the exact bytes of a reply.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis
from redis._parsers import _RESP2Parser, _RESP3Parser
from redis.backoff import NoBackoff
from redis.retry import Retry

try:  # redis-py >= 7: do not attempt the maintenance-notification handshake
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # pragma: no cover - older redis-py
    MaintNotificationsConfig = None

REPO = Path(__file__).resolve().parents[2]

#: "replica" (default): the target is syncmesh-replica; "redis": a second
#: redis-server stands in for it (used to validate the suite itself).
TARGET_KIND = os.environ.get("SYNCMESH_COMPAT_TARGET", "replica").strip().lower()
REDIS_SERVER = os.environ.get("SYNCMESH_REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
START_TIMEOUT = float(os.environ.get("SYNCMESH_COMPAT_START_TIMEOUT", "20"))
PASSWORD = "s3cret-pass"


def replica_bin() -> Path:
    env = os.environ.get("SYNCMESH_REPLICA_BIN")
    if env:
        return Path(env)
    debug = REPO / "target" / "debug" / "syncmesh-replica"
    release = REPO / "target" / "release" / "syncmesh-replica"
    if debug.exists():
        return debug
    if release.exists():
        return release
    return debug


_next_port = itertools.count((os.getpid() * 997) % 22_000)


def free_port() -> int:
    """A TCP port that is free right now and was never handed out by this process.

    Taken from 10000-32000, below Linux's ephemeral range, so that outgoing connections
    (a replica dialing its peers) cannot grab a port before the server meant for it binds.
    """
    while True:
        port = 10_000 + next(_next_port) % 22_000
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
            return port


# --------------------------------------------------------------------------- servers


class Server:
    """One server process: kind is "redis" or "replica"."""

    def __init__(self, kind: str, name: str, workdir: Path, *, password: str | None = None,
                 maxmemory: int | None = None):
        assert kind in ("redis", "replica"), kind
        self.kind = kind
        self.name = name
        self.workdir = Path(workdir)
        self.password = password
        self.maxmemory = maxmemory
        self.proc: subprocess.Popen | None = None
        self.port = self.admin_port = self.mesh_port = None
        self.restarts = 0
        self.log_path = self.workdir / f"{name}.log"

    @property
    def is_replica(self) -> bool:
        return self.kind == "replica"

    def command(self) -> list[str]:
        if self.kind == "redis":
            cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--daemonize", "no",
                   "--dir", str(self.workdir), "--logfile", ""]
            if self.password:
                cmd += ["--requirepass", self.password]
            if self.maxmemory:
                cmd += ["--maxmemory", str(self.maxmemory)]
            return cmd
        cmd = [str(replica_bin()), "--bind", "127.0.0.1", "--port", str(self.port),
               "--admin-port", str(self.admin_port), "--mesh-port", str(self.mesh_port),
               "--mesh-insecure"]
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.maxmemory:
            cmd += ["--maxmemory", str(self.maxmemory)]
        return cmd

    def start(self) -> "Server":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        if self.kind == "replica":
            self.admin_port = free_port()
            self.mesh_port = free_port()
        cmd = self.command()
        if self.kind == "replica" and not Path(cmd[0]).exists():
            raise RuntimeError(f"replica binary not found: {cmd[0]} (set SYNCMESH_REPLICA_BIN, "
                               "or SYNCMESH_COMPAT_TARGET=redis to validate the suite)")
        log = open(self.log_path, "ab")
        log.write(f"\n=== start {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.workdir, start_new_session=True)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} ({self.kind}) exited with {self.proc.returncode} "
                                   f"during start-up:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    s.settimeout(2)
                    data = s.recv(100)
                    if data.startswith(b"+PONG") or data.startswith(b"-NOAUTH"):
                        return
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} ({self.kind}) not answering PING on port {self.port} after "
                           f"{START_TIMEOUT}s (last: {last!r}):\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self):
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.proc = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def client(self, protocol: int = 2, **kw) -> redis.Redis:
        if self.password and "password" not in kw:
            kw["password"] = self.password
        return make_client(self.port, protocol=protocol, **kw)

    def raw(self, timeout: float = 5) -> "RawConn":
        return RawConn(self.port, timeout=timeout)

    def http(self, path: str, timeout: float = 5):
        """GET http://127.0.0.1:<admin-port><path> -> (status, body bytes, headers)."""
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers


# --------------------------------------------------------------------------- clients


class _FullErrorText:
    """Keep the complete error line ("ERR ...", "WRONGTYPE ...") as the message."""

    @classmethod
    def parse_error(cls, response):
        return redis.ResponseError(response)


class RawErrorsRESP2(_FullErrorText, _RESP2Parser):
    pass


class RawErrorsRESP3(_FullErrorText, _RESP3Parser):
    pass


def make_client(port: int, protocol: int = 2, password: str | None = None, username: str | None = None,
                db: int = 0, timeout: float = 5.0, raw_callbacks: bool = True) -> redis.Redis:
    kw = dict(host="127.0.0.1", port=port, db=db, protocol=protocol,
              parser_class=RawErrorsRESP2 if protocol == 2 else RawErrorsRESP3,
              driver_info=None, socket_timeout=timeout, socket_connect_timeout=timeout,
              retry=Retry(NoBackoff(), 0), password=password, username=username)
    if MaintNotificationsConfig is not None:
        kw["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    pool = redis.ConnectionPool(**kw)
    client = redis.Redis(connection_pool=pool, single_connection_client=True)
    if raw_callbacks:
        client.response_callbacks.clear()
    return client


def close_client(client: redis.Redis):
    try:
        client.close()
    except Exception:
        pass
    try:
        client.connection_pool.disconnect()
    except Exception:
        pass


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Err:
    """An error reply, with its full text (e.g. "ERR syntax error")."""

    msg: str

    def startswith(self, prefix: str) -> bool:
        return self.msg.startswith(prefix)

    def __repr__(self):
        return f"Err({self.msg!r})"


def normalize(value):
    """Turn nested error objects into comparable Err values."""
    if isinstance(value, redis.ResponseError):
        return Err(str(value))
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, tuple):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {normalize_key(k): normalize(v) for k, v in value.items()}
    return value


def normalize_key(k):
    return Err(str(k)) if isinstance(k, redis.ResponseError) else k


def call(client: redis.Redis, *cmd):
    """Run one command; an error reply is returned as Err instead of raised."""
    try:
        return normalize(client.execute_command(*cmd))
    except redis.ResponseError as e:
        return Err(str(e))


def _sort_key(v):
    return repr(v)


def unordered(v):
    """Sort a flat array reply (for replies whose order Redis does not define)."""
    if isinstance(v, (list, set)):
        return sorted(v, key=_sort_key)
    return v


def pairs(v):
    """A flat [k1, v1, k2, v2, ...] reply as a sorted list of pairs."""
    if isinstance(v, dict):
        return sorted(v.items(), key=_sort_key)
    if isinstance(v, list):
        assert len(v) % 2 == 0, f"odd-length field/value reply: {v!r}"
        return sorted(zip(v[0::2], v[1::2]), key=_sort_key)
    return v


def short(v, limit: int = 300) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


#: commands whose array reply has no defined order
UNORDERED_REPLIES = {"SMEMBERS", "SINTER", "SUNION", "SDIFF", "KEYS", "HKEYS", "HVALS"}
#: commands answering a flat field/value array with no defined order
PAIR_REPLIES = {"HGETALL"}


class Stats:
    comparisons = 0
    mismatches = 0


class Differ:
    """``both(*cmd)``: same command to redis-server and to the target; replies must match."""

    def __init__(self, oracle_server: Server, target_server: Server, protocol: int = 2, **kw):
        self.oracle_server = oracle_server
        self.target_server = target_server
        self.protocol = protocol
        self._kw = kw
        self.oracle = oracle_server.client(protocol=protocol, **kw)
        self.target = target_server.client(protocol=protocol, **kw)
        self._children: list[Differ] = []

    # -- comparisons
    def __call__(self, *cmd, norm=None):
        a = call(self.oracle, *cmd)
        b = call(self.target, *cmd)
        if norm is not None:
            a, b = norm(a), norm(b)
        Stats.comparisons += 1
        if a != b:
            Stats.mismatches += 1
            raise AssertionError(f"reply differs for {short(cmd, 200)}\n  redis-server: {short(a)}\n"
                                 f"  {self.target_server.kind:>12}: {short(b)}")
        return a

    def unordered(self, *cmd):
        return self(*cmd, norm=unordered)

    def pairs(self, *cmd):
        return self(*cmd, norm=pairs)

    def auto(self, *cmd):
        """Compare with the normalisation the command's reply needs (unordered sets, hash pairs)."""
        name = str(cmd[0]).upper()
        if name in PAIR_REPLIES:
            return self.pairs(*cmd)
        if name in UNORDERED_REPLIES:
            return self.unordered(*cmd)
        return self(*cmd)

    def seq(self, *cmds):
        """Compare every command of a sequence; return the list of replies."""
        return [self(*c) for c in cmds]

    def err(self, *cmd, prefix: str = "") -> str:
        """Both must answer with the same error (optionally starting with prefix)."""
        r = self(*cmd)
        assert isinstance(r, Err), f"{cmd!r} should fail, got {short(r)}"
        assert r.msg.startswith(prefix), f"{cmd!r}: {r.msg!r} does not start with {prefix!r}"
        return r.msg

    def run(self, *cmd):
        """Send to both, compare nothing; returns (oracle reply, target reply)."""
        return call(self.oracle, *cmd), call(self.target, *cmd)

    def target_only(self, *cmd):
        return call(self.target, *cmd)

    # -- connections
    def new(self, protocol: int | None = None, **kw) -> "Differ":
        """Another pair of connections to the same two servers."""
        d = Differ(self.oracle_server, self.target_server, protocol=protocol or self.protocol,
                   **(kw or self._kw))
        self._children.append(d)
        return d

    def pipeline_both(self, commands, transaction=False):
        out = []
        for client in (self.oracle, self.target):
            p = client.pipeline(transaction=transaction)
            for c in commands:
                p.execute_command(*c)
            out.append(normalize(p.execute(raise_on_error=False)))
        return out

    def close(self):
        for c in self._children:
            c.close()
        close_client(self.oracle)
        close_client(self.target)


# --------------------------------------------------------------------------- raw socket


class ConnectionClosed(Exception):
    pass


class RawConn:
    """RESP over a bare socket; read_reply() returns the exact bytes of one reply."""

    def __init__(self, port: int, timeout: float = 5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)
        return self

    def cmd(self, *args) -> bytes:
        self.send(encode_command(*args))
        return self.read_reply()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionClosed(f"connection closed; unread: {self.buf[:200]!r}")
        self.buf += chunk

    def _line(self, pos: int) -> int:
        """Index just past the CRLF of the line starting at pos."""
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i + 2
            self._fill()

    def _need(self, n: int):
        while len(self.buf) < n:
            self._fill()

    def _frame_end(self, pos: int) -> int:
        end = self._line(pos)
        kind = self.buf[pos:pos + 1]
        body = self.buf[pos + 1:end - 2]
        if kind in (b"+", b"-", b":", b",", b"#", b"(", b"_"):
            return end
        if kind in (b"$", b"!", b"="):
            n = int(body)
            if n < 0:
                return end
            self._need(end + n + 2)
            return end + n + 2
        if kind in (b"*", b"~", b">"):
            n = int(body)
            p = end
            for _ in range(max(n, 0)):
                p = self._frame_end(p)
            return p
        if kind in (b"%", b"|"):
            n = int(body)
            p = end
            for _ in range(2 * n):
                p = self._frame_end(p)
            if kind == b"|":  # an attribute precedes the real reply
                p = self._frame_end(p)
            return p
        raise ValueError(f"unknown RESP type byte {kind!r} in {self.buf[pos:pos + 100]!r}")

    def read_reply(self) -> bytes:
        end = self._frame_end(0)
        frame, self.buf = self.buf[:end], self.buf[end:]
        return frame

    def read_available(self, wait: float = 0.3) -> bytes:
        """Everything the server sends within `wait` seconds (or until it closes)."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        data, self.buf = self.buf, b""
        return data

    def closed_by_peer(self, timeout: float = 3) -> bool:
        """True when the server closes the connection within `timeout` seconds."""
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def exchange(port: int, commands, timeout: float = 5) -> list:
    """Send commands pipelined on a fresh connection; return the exact bytes of each reply."""
    with RawConn(port, timeout=timeout) as c:
        c.send(b"".join(encode_command(*cmd) for cmd in commands))
        return [c.read_reply() for _ in commands]


def parse_frame(data: bytes):
    """Parse one complete RESP2/RESP3 frame into (type byte, value) tuples, keeping the types:
    arrays/sets/pushes hold lists of frames, maps hold lists of (key frame, value frame)."""
    def parse(pos):
        end = data.index(b"\r\n", pos)
        kind, body = data[pos:pos + 1].decode(), data[pos + 1:end]
        pos = end + 2
        if kind in "+-,#(_":
            return (kind, body), pos
        if kind == ":":
            return (kind, int(body)), pos
        if kind in "$!=":
            n = int(body)
            if n < 0:
                return (kind, None), pos
            return (kind, data[pos:pos + n]), pos + n + 2
        if kind in "*~>":
            n, items = int(body), []
            for _ in range(max(n, 0)):
                item, pos = parse(pos)
                items.append(item)
            return (kind, items if n >= 0 else None), pos
        if kind in "%|":
            items = []
            for _ in range(int(body)):
                k, pos = parse(pos)
                v, pos = parse(pos)
                items.append((k, v))
            return (kind, items), pos
        raise ValueError(f"unknown RESP type {kind!r}")
    frame, end = parse(0)
    assert end == len(data), f"trailing bytes after frame: {data[end:end + 50]!r}"
    return frame


def encode_command(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, float):
            a = repr(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def wait_until(pred, timeout: float = 3.0, interval: float = 0.02):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            return v
        time.sleep(interval)


# --------------------------------------------------------------------------- per-server scenarios
# Blocking commands and Pub/Sub need several connections to one server at once, so such tests
# run the same scenario against each server separately and compare the observable outcomes.


def each(servers, scenario):
    """Run scenario(server) against the oracle and the target (in parallel, each on its own
    connections); the outcomes must be equal. Returns the oracle's outcome."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=2) as ex:
        futures = [ex.submit(scenario, s) for s in servers]
        outcomes = [f.result() for f in futures]
    a, b = outcomes
    Stats.comparisons += 1
    if a != b:
        Stats.mismatches += 1
        raise AssertionError(f"outcome differs\n  redis-server: {short(a, 1500)}\n"
                             f"  {servers[1].kind:>12}: {short(b, 1500)}")
    return a


def blocked_count(server) -> int | None:
    """INFO clients blocked_clients, or None when the server does not report it."""
    with server.raw() as c:
        info = c.cmd("INFO", "clients")
    for line in info.split(b"\r\n"):
        if line.startswith(b"blocked_clients:"):
            return int(line.split(b":")[1])
    return None


def wait_blocked(server, n: int, timeout: float = 0.4) -> bool:
    """Wait until INFO reports at least n blocked clients. A server whose count never gets
    there only costs `timeout` seconds: the scenario's outcome is what a test checks."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = blocked_count(server)
        if v is not None and v >= n:
            return True
        time.sleep(0.01)
    return False


#: raw connections opened by scenario helpers; close_tracked() closes them after a test, so that
#: a blocked client or a subscriber left behind (e.g. by a failed test) cannot affect the next one
_TRACKED: list[RawConn] = []


def tracked(c: RawConn) -> RawConn:
    _TRACKED.append(c)
    return c


def close_tracked():
    while _TRACKED:
        _TRACKED.pop().close()


def send_only(server, *cmd, protocol: int = 2) -> RawConn:
    """A fresh raw connection that has sent cmd (often a blocking one) without reading the reply."""
    c = tracked(server.raw(timeout=5))
    if protocol == 3:
        c.cmd("HELLO", "3")
    c.send(encode_command(*cmd))
    return c


def reply_within(c: RawConn, timeout: float = 5) -> bytes:
    """The next reply on c (exact bytes); socket.timeout if none comes within `timeout` s."""
    c.sock.settimeout(timeout)
    return c.read_reply()


def silent(c: RawConn, wait: float = 0.15) -> bool:
    """True when nothing arrives on c within `wait` seconds (what arrives stays buffered)."""
    if c.buf:
        return False
    c.sock.settimeout(wait)
    try:
        chunk = c.sock.recv(1 << 16)
    except socket.timeout:
        return True
    except OSError:      # reset by the peer: not silent
        return False
    c.buf += chunk       # b"" when the peer closed: not silent either
    return False
