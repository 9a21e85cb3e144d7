"""Pub/Sub: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB, the RESP2 subscribed
mode, RESP3 push frames, and the output-buffer limit for slow subscribers.

Subscribers need connections of their own, so each test runs one scenario against each server
separately (the two in parallel, with ``each``) on raw sockets, and compares what the
subscribers received - the exact bytes of every frame - and what the publishers were told.
"""

from __future__ import annotations

import socket

import pytest

from harness import (RawConn, close_tracked, each, encode_command, exchange, parse_frame, reply_within,
                     silent, tracked, wait_until)


@pytest.fixture(autouse=True)
def _no_leftover_subscribers(servers):
    """Close every subscriber a test opened (also when it failed), and wait until both servers
    have forgotten their subscriptions, so that no test sees another's subscribers."""
    yield
    close_tracked()
    for server in servers:
        wait_until(lambda: cmds(server, ("PUBSUB", "NUMPAT"), ("PUBSUB", "CHANNELS")) == [b":0\r\n", b"*0\r\n"],
                   timeout=2)


# ---------------------------------------------------------------- helpers


def bulk(v) -> bytes:
    if isinstance(v, str):
        v = v.encode()
    return b"$%d\r\n%s\r\n" % (len(v), v)


def arr(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(items)


def push(*items: bytes) -> bytes:
    return b">%d\r\n" % len(items) + b"".join(items)


def num(n: int) -> bytes:
    return b":%d\r\n" % n


def sub_reply(kind, name, count, resp=2) -> bytes:
    items = (bulk(kind), bulk(name) if name is not None else b"$-1\r\n", num(count))
    return push(*items) if resp == 3 else arr(*items)


def message(channel, payload, resp=2) -> bytes:
    items = (bulk("message"), bulk(channel), bulk(payload))
    return push(*items) if resp == 3 else arr(*items)


def pmessage(pattern, channel, payload, resp=2) -> bytes:
    items = (bulk("pmessage"), bulk(pattern), bulk(channel), bulk(payload))
    return push(*items) if resp == 3 else arr(*items)


def subscriber(server, *channels, patterns=(), name=None, resp=2) -> tuple[RawConn, list[bytes]]:
    """A raw connection subscribed to channels and patterns; returns it with the confirmations."""
    c = tracked(server.raw(timeout=5))
    if resp == 3:
        c.cmd("HELLO", "3")
    if name:
        assert c.cmd("CLIENT", "SETNAME", name) == b"+OK\r\n"
    got = []
    if channels:
        c.send(encode_command("SUBSCRIBE", *channels))
        got += [reply_within(c) for _ in channels]
    if patterns:
        c.send(encode_command("PSUBSCRIBE", *patterns))
        got += [reply_within(c) for _ in patterns]
    return c, got


def frames(c: RawConn, n: int, timeout: float = 5) -> list[bytes]:
    return [reply_within(c, timeout) for _ in range(n)]


def publish(server, *pairs) -> list[int]:
    """PUBLISH channel message for each pair on one connection; the receiver counts."""
    replies = exchange(server.port, [("PUBLISH", ch, msg) for ch, msg in pairs])
    return [int(r[1:-2]) for r in replies]


def cmds(server, *commands) -> list[bytes]:
    return exchange(server.port, commands)


# ---------------------------------------------------------------- subscribe / unsubscribe replies


def test_subscribe_replies(servers):
    def scenario(server):
        c = tracked(server.raw())
        out = []
        c.send(encode_command("SUBSCRIBE", "a", "b", "a"))
        out += frames(c, 3)
        c.send(encode_command("SUBSCRIBE", "c"))
        out += frames(c, 1)
        c.send(encode_command("UNSUBSCRIBE", "b", "zz"))
        out += frames(c, 2)
        c.send(encode_command("PSUBSCRIBE", "p*", "q?"))
        out += frames(c, 2)
        c.send(encode_command("PUNSUBSCRIBE", "q?", "nope"))
        out += frames(c, 2)
        c.send(encode_command("PUNSUBSCRIBE"))
        out += frames(c, 1)
        return out
    assert each(servers, scenario) == [
        sub_reply("subscribe", "a", 1), sub_reply("subscribe", "b", 2), sub_reply("subscribe", "a", 2),
        sub_reply("subscribe", "c", 3),
        sub_reply("unsubscribe", "b", 2), sub_reply("unsubscribe", "zz", 2),
        sub_reply("psubscribe", "p*", 3), sub_reply("psubscribe", "q?", 4),
        sub_reply("punsubscribe", "q?", 3), sub_reply("punsubscribe", "nope", 3),
        sub_reply("punsubscribe", "p*", 2),
    ]


def _unsubscribe_all(c: RawConn, kind: str, n: int):
    """UNSUBSCRIBE / PUNSUBSCRIBE without arguments: one reply per subscription, in no defined
    order; returned as (sorted names, counts in order)."""
    c.send(encode_command(kind))
    got = [parse_frame(f) for f in frames(c, n)]
    names = sorted(f[1][1][1] for f in got)
    kinds = {f[1][0][1] for f in got}
    counts = [f[1][2][1] for f in got]
    return kinds, names, counts


def test_unsubscribe_all(servers):
    def scenario(server):
        c, _ = subscriber(server, "a", "b", "c", patterns=("x*", "y*"))
        r1 = _unsubscribe_all(c, "UNSUBSCRIBE", 3)
        r2 = _unsubscribe_all(c, "PUNSUBSCRIBE", 2)
        c.send(encode_command("UNSUBSCRIBE"))
        none1 = reply_within(c)
        c.send(encode_command("PUNSUBSCRIBE"))
        none2 = reply_within(c)
        # out of subscribed mode again: ordinary commands work
        after = c.cmd("SET", "k", "v"), c.cmd("GET", "k")
        return r1, r2, none1, none2, after
    r1, r2, none1, none2, after = each(servers, scenario)
    assert r1 == ({b"unsubscribe"}, [b"a", b"b", b"c"], [4, 3, 2])
    assert r2 == ({b"punsubscribe"}, [b"x*", b"y*"], [1, 0])
    assert none1 == sub_reply("unsubscribe", None, 0)
    assert none2 == sub_reply("punsubscribe", None, 0)
    assert after == (b"+OK\r\n", b"$1\r\nv\r\n")


def test_unsubscribe_without_subscriptions(servers):
    def scenario(server):
        with server.raw() as c:
            c.send(encode_command("UNSUBSCRIBE"))
            a = reply_within(c)
            c.send(encode_command("UNSUBSCRIBE", "x", "y"))
            b = frames(c, 2)
            c.send(encode_command("PUNSUBSCRIBE", "p*"))
            d = reply_within(c)
            return a, b, d, c.cmd("PING")
    assert each(servers, scenario) == (
        sub_reply("unsubscribe", None, 0), [sub_reply("unsubscribe", "x", 0), sub_reply("unsubscribe", "y", 0)],
        sub_reply("punsubscribe", "p*", 0), b"+PONG\r\n")


def test_subscribe_arity(both):
    both.err("SUBSCRIBE", prefix="ERR wrong number of arguments for 'subscribe' command")
    both.err("PSUBSCRIBE", prefix="ERR wrong number of arguments for 'psubscribe' command")
    both.err("PUBLISH", "ch", prefix="ERR wrong number of arguments for 'publish' command")
    both.err("PUBLISH", "ch", "a", "b", prefix="ERR wrong number of arguments for 'publish' command")


# ---------------------------------------------------------------- PUBLISH and delivery


def test_publish_without_subscribers(both):
    assert both("PUBLISH", "nobody", "hello") == 0
    assert both("PUBLISH", "", "") == 0


def test_publish_counts_receivers(servers):
    def scenario(server):
        a, _ = subscriber(server, "news")
        b, _ = subscriber(server, "news", "other")
        p, _ = subscriber(server, patterns=("n*",))
        both_, _ = subscriber(server, "news", patterns=("news", "*"))    # counted once per match
        counts = publish(server, ("news", "one"), ("other", "two"), ("nothing", "three"), ("nobody", "x"))
        got = {
            "a": frames(a, 1), "b": frames(b, 2), "p": frames(p, 3),
            "both": frames(both_, 6),
        }
        quiet = all(silent(c, 0.05) for c in (a, b, p, both_))
        f = got["both"]
        got["both"] = f[:1] + sorted(f[1:3]) + f[3:]   # two patterns matched one message: no defined order
        return counts, got, quiet
    counts, got, quiet = each(servers, scenario)
    assert counts == [6, 2, 2, 2]
    assert got["a"] == [message("news", "one")]
    assert got["b"] == [message("news", "one"), message("other", "two")]
    assert got["p"] == [pmessage("n*", "news", "one"), pmessage("n*", "nothing", "three"),
                        pmessage("n*", "nobody", "x")]
    # channel subscribers first, then the patterns (in no defined order among themselves)
    assert got["both"][0] == message("news", "one")
    assert got["both"][1:3] == sorted([pmessage("news", "news", "one"), pmessage("*", "news", "one")])
    assert got["both"][3:] == [pmessage("*", "other", "two"), pmessage("*", "nothing", "three"),
                               pmessage("*", "nobody", "x")]
    assert quiet


def test_message_order_per_publisher(servers):
    n = 300

    def scenario(server):
        s, _ = subscriber(server, "ch", patterns=("c*",))
        counts = publish(server, *[("ch", f"msg-{i}") for i in range(n)])
        got = frames(s, 2 * n)
        return counts, got
    counts, got = each(servers, scenario)
    assert counts == [2] * n
    expected = []
    for i in range(n):
        expected += [message("ch", f"msg-{i}"), pmessage("c*", "ch", f"msg-{i}")]
    assert got == expected


def test_binary_and_large_payloads(servers):
    payloads = [b"", b"\x00\xff\r\n*1\r\n", b"x" * 100_000, "ünïcode".encode()]

    def scenario(server):
        s, _ = subscriber(server, b"bin\x00chan")
        counts = publish(server, *[(b"bin\x00chan", p) for p in payloads])
        return counts, frames(s, len(payloads))
    counts, got = each(servers, scenario)
    assert counts == [1] * len(payloads)
    assert got == [message(b"bin\x00chan", p) for p in payloads]


@pytest.mark.parametrize("pattern,matching,not_matching", [
    ("news.*", ["news.tech", "news.", "news.a.b"], ["news", "xnews.tech"]),
    ("h?llo", ["hello", "hallo"], ["hllo", "heello"]),
    ("h*llo", ["hllo", "heeeello"], ["hell"]),
    ("h[ae]llo", ["hello", "hallo"], ["hillo"]),
    ("h[^e]llo", ["hallo", "hbllo"], ["hello"]),
    ("h[a-c]llo", ["hbllo"], ["hdllo"]),
    ("h\\*llo", ["h*llo"], ["hello"]),
    ("*", ["anything", "a.b:c"], [""]),         # redis: "*" does not match the empty channel name
    ("exact", ["exact"], ["exact1", "Exact"]),
])
def test_pattern_matching(servers, pattern, matching, not_matching):
    def scenario(server):
        s, conf = subscriber(server, patterns=(pattern,))
        counts = publish(server, *[(ch, f"to-{ch}") for ch in not_matching + matching])
        got = frames(s, len(matching))
        return conf, counts, got, silent(s, 0.05)
    conf, counts, got, quiet = each(servers, scenario)
    assert conf == [sub_reply("psubscribe", pattern, 1)]
    assert counts == [0] * len(not_matching) + [1] * len(matching)
    assert got == [pmessage(pattern, ch, f"to-{ch}") for ch in matching]
    assert quiet


def test_many_subscribers_and_patterns(servers):
    def scenario(server):
        subs = [subscriber(server, "room", f"own-{i}")[0] for i in range(10)]
        psubs = [subscriber(server, patterns=("ro*", f"own-{i}*"))[0] for i in range(10)]
        counts = publish(server, ("room", "hello all"), ("own-3", "just three"), ("own-1x", "x"), ("room", "bye"))
        got_s = [frames(c, 2 + (1 if i == 3 else 0)) for i, c in enumerate(subs)]
        got_p = [frames(c, 2 + (1 if i in (1, 3) else 0)) for i, c in enumerate(psubs)]
        quiet = all(silent(c, 0.02) for c in subs + psubs)
        numsub = cmds(server, ("PUBSUB", "NUMSUB", "room", "own-3", "nochan"), ("PUBSUB", "NUMPAT"))
        for c in subs + psubs:
            c.close()
        return counts, got_s, got_p, quiet, numsub
    counts, got_s, got_p, quiet, numsub = each(servers, scenario)
    assert counts == [20, 2, 1, 20]
    assert got_s[0] == [message("room", "hello all"), message("room", "bye")]
    assert got_s[3] == [message("room", "hello all"), message("own-3", "just three"), message("room", "bye")]
    assert got_p[1] == [pmessage("ro*", "room", "hello all"), pmessage("own-1*", "own-1x", "x"),
                        pmessage("ro*", "room", "bye")]
    assert quiet
    assert numsub == [arr(bulk("room"), num(10), bulk("own-3"), num(1), bulk("nochan"), num(0)), num(11)]


def test_subscriber_disconnect_is_forgotten(servers):
    def scenario(server):
        gone, _ = subscriber(server, "ch", patterns=("c*",))
        stay, _ = subscriber(server, "ch")
        first = publish(server, ("ch", "1"))
        gone.close()
        settled = wait_until(lambda: publish(server, ("zz", "probe")) == [0] and
                             cmds(server, ("PUBSUB", "NUMSUB", "ch"))[0].endswith(b":1\r\n"), timeout=3)
        second = publish(server, ("ch", "2"))
        return first, bool(settled), second, frames(stay, 2), cmds(server, ("PUBSUB", "NUMPAT"))
    assert each(servers, scenario) == ([3], True, [1], [message("ch", "1"), message("ch", "2")], [num(0)])


# ---------------------------------------------------------------- PUBSUB introspection


def test_pubsub_channels_numsub_numpat(servers):
    def scenario(server):
        conns = [subscriber(server, "news.tech", "news.art", "sport")[0],
                 subscriber(server, "news.tech", patterns=("news.*", "x"))[0],
                 subscriber(server, patterns=("news.*",))[0]]
        r = cmds(server, ("PUBSUB", "CHANNELS"), ("PUBSUB", "CHANNELS", "news.*"), ("PUBSUB", "CHANNELS", "nomatch*"),
                 ("PUBSUB", "NUMSUB", "news.tech", "sport", "news.*", "none"), ("PUBSUB", "NUMSUB"),
                 ("PUBSUB", "NUMPAT"))
        parsed = [parse_frame(x) for x in r]
        channels = [sorted(v for _, v in parsed[i][1]) for i in range(3)]
        for c in conns:
            c.close()
        return channels, r[3:]
    channels, rest = each(servers, scenario)
    assert channels == [[b"news.art", b"news.tech", b"sport"], [b"news.art", b"news.tech"], []]
    assert rest == [arr(bulk("news.tech"), num(2), bulk("sport"), num(1), bulk("news.*"), num(0), bulk("none"), num(0)),
                    b"*0\r\n", num(2)]       # NUMPAT: distinct patterns


def test_pubsub_empty(both):
    assert both("PUBSUB", "CHANNELS") == []
    assert both("PUBSUB", "CHANNELS", "*") == []
    assert both("PUBSUB", "NUMSUB", "a", "b") == [b"a", 0, b"b", 0]
    assert both("PUBSUB", "NUMPAT") == 0


@pytest.mark.parametrize("args,error", [
    (("FOO",), "ERR unknown subcommand 'FOO'. Try PUBSUB HELP."),
    (("NUMPAT", "x"), "ERR wrong number of arguments for 'pubsub|numpat' command"),
    (("CHANNELS", "a", "b"), "ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP."),
])
def test_pubsub_errors(both, args, error):
    assert both.err("PUBSUB", *args) == error


def test_pubsub_arity(both):
    both.err("PUBSUB", prefix="ERR wrong number of arguments for 'pubsub' command")


# ---------------------------------------------------------------- RESP2 subscribed mode


@pytest.mark.parametrize("cmd,name", [
    (("GET", "k"), "get"), (("SET", "k", "v"), "set"), (("PUBLISH", "ch", "x"), "publish"), (("MULTI",), "multi"),
    (("PUBSUB", "NUMPAT"), "pubsub|numpat"), (("select", "1"), "select"), (("CLIENT", "ID"), "client|id"),
], ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_resp2_subscribed_mode_restrictions(servers, cmd, name):
    def scenario(server):
        c, _ = subscriber(server, "ch")
        r = c.cmd(*cmd)
        still = publish(server, ("ch", "after"))
        return r, still, reply_within(c), cmds(server, ("EXISTS", "k"))
    r, still, msg, exists = each(servers, scenario)
    assert r == (f"-ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
                 f"RESET are allowed in this context\r\n").encode()
    assert still == [1] and msg == message("ch", "after") and exists == [num(0)]


def test_resp2_subscribed_mode_pattern_only(servers):
    def scenario(server):
        c, _ = subscriber(server, patterns=("p*",))
        return c.cmd("GET", "k")
    assert each(servers, scenario).startswith(b"-ERR Can't execute 'get'")


def test_resp2_ping_in_subscribed_mode(servers):
    def scenario(server):
        c, _ = subscriber(server, "ch")
        return c.cmd("PING"), c.cmd("PING", "hello"), c.cmd("ping", "")
    assert each(servers, scenario) == (arr(bulk("pong"), bulk("")), arr(bulk("pong"), bulk("hello")),
                                       arr(bulk("pong"), bulk("")))


def test_resp2_reset_and_quit_in_subscribed_mode(servers):
    def scenario(server):
        c, _ = subscriber(server, "ch", patterns=("p*",))
        r = c.cmd("RESET")
        counts = publish(server, ("ch", "x"), ("px", "y"))
        after = c.cmd("GET", "k")
        q, _ = subscriber(server, "ch")
        bye = q.cmd("QUIT")
        closed = q.closed_by_peer(2)
        return r, counts, after, bye, closed, silent(c, 0.05)
    assert each(servers, scenario) == (b"+RESET\r\n", [0, 0], b"$-1\r\n", b"+OK\r\n", True, True)


def test_subscribe_inside_multi(servers):
    """SUBSCRIBE is allowed inside MULTI; EXEC returns the confirmation as its reply."""
    def scenario(server):
        with server.raw() as c:
            r = [c.cmd("MULTI"), c.cmd("SUBSCRIBE", "ch"), c.cmd("EXEC")]
            n = publish(server, ("ch", "m"))
            return r, n, reply_within(c)
    r, n, m = each(servers, scenario)
    assert r == [b"+OK\r\n", b"+QUEUED\r\n", arr(sub_reply("subscribe", "ch", 1))]
    assert n == [1] and m == message("ch", "m")


# ---------------------------------------------------------------- RESP3


def test_resp3_push_frames_beside_replies(servers):
    def scenario(server):
        c, conf = subscriber(server, "ch", patterns=("c*",), resp=3)
        out = [c.cmd("SET", "k", "v"), c.cmd("GET", "k")]
        counts = publish(server, ("ch", "hello"))
        # the two push frames come first, then the reply to GET
        c.send(encode_command("GET", "k"))
        out += frames(c, 3)
        out.append(c.cmd("PING"))
        out.append(c.cmd("GET", "nokey"))
        c.send(encode_command("UNSUBSCRIBE", "ch"))
        out += frames(c, 1)
        out.append(c.cmd("HSET", "h", "f", "1"))
        return conf, counts, out
    conf, counts, out = each(servers, scenario)
    assert conf == [sub_reply("subscribe", "ch", 1, resp=3), sub_reply("psubscribe", "c*", 2, resp=3)]
    assert counts == [2]
    assert out == [b"+OK\r\n", b"$1\r\nv\r\n",
                   message("ch", "hello", resp=3), pmessage("c*", "ch", "hello", resp=3), b"$1\r\nv\r\n",
                   b"+PONG\r\n", b"_\r\n", sub_reply("unsubscribe", "ch", 1, resp=3), b":1\r\n"]


def test_resp3_unsubscribe_all_and_publish_from_subscriber(servers):
    def scenario(server):
        a, _ = subscriber(server, "x", resp=3)
        b, _ = subscriber(server, "y", resp=3)
        r = a.cmd("PUBLISH", "y", "from-a")          # allowed on RESP3 while subscribed
        got = reply_within(b)
        a.send(encode_command("UNSUBSCRIBE"))
        un = reply_within(a)
        a.send(encode_command("UNSUBSCRIBE"))
        none = reply_within(a)
        return r, got, un, none
    assert each(servers, scenario) == (num(1), message("y", "from-a", resp=3), sub_reply("unsubscribe", "x", 0, resp=3),
                                       push(bulk("unsubscribe"), b"_\r\n", num(0)))


# ---------------------------------------------------------------- slow subscribers


DEFAULT_PUBSUB_LIMIT = "pubsub 33554432 8388608 60"


class small_window_conn(RawConn):
    """A raw connection with a small receive buffer, so that what it does not read piles up in
    the server's output buffer rather than in the kernel."""

    def __init__(self, port: int):
        self.buf = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))


def test_slow_subscriber_disconnected_by_output_buffer_limit(servers):
    """A subscriber that never reads is disconnected once its output buffer passes the pubsub
    hard limit (1mb here); a subscriber that reads receives every message, in order."""
    count, size, batch = 2000, 10_000, 40     # 20 MB in all, published in batches of 400 KB

    def payload(i):
        return b"%08d" % i + b"x" * (size - 8)

    frame_len = len(message("ch", payload(0)))

    def scenario(server):
        admin = tracked(server.raw())
        try:
            assert admin.cmd("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 0 0") == b"+OK\r\n"
            slow = tracked(small_window_conn(server.port))
            assert slow.cmd("CLIENT", "SETNAME", "slow-sub") == b"+OK\r\n"
            slow.send(encode_command("SUBSCRIBE", "ch"))
            assert reply_within(slow) == sub_reply("subscribe", "ch", 1)
            fast, _ = subscriber(server, "ch", name="fast-sub")
            pub = tracked(server.raw())
            fast.sock.settimeout(10)
            received = bytearray()
            receivers = []
            for start in range(0, count, batch):
                pub.send(b"".join(encode_command("PUBLISH", "ch", payload(i)) for i in range(start, start + batch)))
                receivers += [int(pub.read_reply()[1:-2]) for _ in range(batch)]
                want = (start + batch) * frame_len
                while len(received) < want:        # keep the fast subscriber caught up
                    chunk = fast.sock.recv(1 << 20)
                    if not chunk:
                        break
                    received += chunk
            names = admin.cmd("CLIENT", "LIST")
            gone = bool(wait_until(lambda: b"name=slow-sub " not in admin.cmd("CLIENT", "LIST"), timeout=5))
            closed = slow.closed_by_peer(5)
            last = publish(server, ("ch", "after"))
            slow.close()
            fast_ok = bytes(received) == b"".join(message("ch", payload(i)) for i in range(count))
            tail = reply_within(fast)
            fast.close()
            pub.close()
            return {"fast got everything in order": fast_ok, "fast still subscribed": tail == message("ch", "after"),
                    "slow gone from CLIENT LIST": gone, "slow socket closed": closed,
                    "fast-sub listed": b"name=fast-sub " in names, "receivers at the end": last,
                    "receivers first": receivers[0], "receivers always 1 or 2": set(receivers) <= {1, 2}}
        finally:
            admin.cmd("CONFIG", "SET", "client-output-buffer-limit", DEFAULT_PUBSUB_LIMIT)
            admin.close()

    assert each(servers, scenario) == {
        "fast got everything in order": True, "fast still subscribed": True, "slow gone from CLIENT LIST": True,
        "slow socket closed": True, "fast-sub listed": True, "receivers at the end": [1], "receivers first": 2,
        "receivers always 1 or 2": True}


def test_config_set_pubsub_output_buffer_limit(both):
    assert both("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 0 0") == b"OK"
    assert both("CONFIG", "SET", "client-output-buffer-limit", DEFAULT_PUBSUB_LIMIT) == b"OK"
