"""Streams: XADD XLEN XRANGE XREVRANGE XREAD XDEL XTRIM XSETID XGROUP XREADGROUP XACK XPENDING
XCLAIM XAUTOCLAIM XINFO.

Explicit ids are used wherever replies are compared exactly, so that both servers produce the
same output; replies that contain ids generated with `*` are compared by shape. Times (idle,
seen-time, delivery times) and the radix-tree internals in XINFO are compared by type only.
"""

from __future__ import annotations

import re
import time

import pytest

from harness import (Err, blocked_count, call, close_tracked, each, exchange, reply_within, send_only, silent,
                     wait_blocked, wait_until)

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
SYNTAX = "ERR syntax error"
NOT_INT = "ERR value is not an integer or out of range"
ID_RE = re.compile(rb"^\d+-\d+$")


@pytest.fixture(autouse=True)
def _no_leftover_blocked_clients(servers):
    """Close every raw connection a test opened (also when it failed), so that no blocked
    client survives into the next test."""
    yield
    close_tracked()
    for server in servers:
        wait_until(lambda: blocked_count(server) in (0, None), timeout=1)


def fill(both, key="s", n=5, start=1):
    """Entries <i>-0 with field f<i> = v<i>, i = start .. start+n-1."""
    for i in range(start, start + n):
        assert both("XADD", key, f"{i}-0", f"f{i}", f"v{i}") == f"{i}-0".encode()


def entry(i, *fv):
    return [f"{i}-0".encode(), [x.encode() for x in (fv or (f"f{i}", f"v{i}"))]]


def entries(*ids):
    return [entry(i) for i in ids]


def parse_id(v: bytes):
    ms, seq = v.split(b"-")
    return int(ms), int(seq)


# ---------------------------------------------------------------- XADD


def test_xadd_explicit_ids(both):
    assert both("XADD", "s", "1-1", "f", "v") == b"1-1"
    assert both("XADD", "s", "1-2", "a", "1", "b", "2") == b"1-2"
    assert both("XADD", "s", "2", "f", "v") == b"2-0"           # a bare ms means ms-0
    assert both("XADD", "s", "2-18446744073709551615", "f", "v") == b"2-18446744073709551615"
    assert both("XLEN", "s") == 4
    assert both("TYPE", "s") == b"stream"
    assert both("XRANGE", "s", "-", "+") == [
        [b"1-1", [b"f", b"v"]], [b"1-2", [b"a", b"1", b"b", b"2"]], [b"2-0", [b"f", b"v"]],
        [b"2-18446744073709551615", [b"f", b"v"]]]


def test_xadd_duplicate_fields_and_binary(both):
    assert both("XADD", "s", "1-0", "f", "1", "f", "2", "", "", b"\x00\xff", "\r\n") == b"1-0"
    assert both("XRANGE", "s", "-", "+") == [[b"1-0", [b"f", b"1", b"f", b"2", b"", b"", b"\x00\xff", b"\r\n"]]]


@pytest.mark.parametrize("ident,error", [
    ("1-1", "ERR The ID specified in XADD is equal or smaller than the target stream top item"),
    ("1-0", "ERR The ID specified in XADD is equal or smaller than the target stream top item"),
    ("1", "ERR The ID specified in XADD is equal or smaller than the target stream top item"),
    ("0-5", "ERR The ID specified in XADD is equal or smaller than the target stream top item"),
    ("0-0", "ERR The ID specified in XADD must be greater than 0-0"),
    ("0", "ERR The ID specified in XADD must be greater than 0-0"),
    ("abc", INVALID_ID),
    ("1-x", INVALID_ID),
    ("-1", INVALID_ID),
    ("1-2-3", INVALID_ID),
    ("18446744073709551616-0", INVALID_ID),
    ("", INVALID_ID),
])
def test_xadd_id_errors(both, ident, error):
    both("XADD", "s", "1-1", "f", "v")
    assert both.err("XADD", "s", ident, "f", "v") == error
    assert both("XLEN", "s") == 1


def test_xadd_zero_id_on_new_stream(both):
    assert both.err("XADD", "s", "0-0", "f", "v") == "ERR The ID specified in XADD must be greater than 0-0"
    assert both("EXISTS", "s") == 0
    assert both("XADD", "s", "0-1", "f", "v") == b"0-1"


def test_xadd_ms_star(both):
    assert both("XADD", "s", "5-*", "f", "v") == b"5-0"
    assert both("XADD", "s", "5-*", "f", "v") == b"5-1"
    assert both("XADD", "s", "7-*", "f", "v") == b"7-0"
    assert both.err("XADD", "s", "6-*", "f", "v") == \
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    assert both("XADD", "s2", "0-*", "f", "v") == b"0-1"       # 0-0 is never generated


def test_xadd_exhausted_ids(both):
    top = "18446744073709551615-18446744073709551615"
    assert both("XADD", "s", top, "f", "v") == top.encode()
    msg = "ERR The stream has exhausted the last possible ID, unable to add more items"
    assert both.err("XADD", "s", "*", "f", "v") == msg
    assert both.err("XADD", "s", "18446744073709551615-*", "f", "v") == msg


def test_xadd_star_ids(both):
    """`*` ids: compared by shape (ms-seq, increasing, close to the servers' clock)."""
    for client in (both.oracle, both.target):
        before = int(time.time() * 1000)
        ids = [call(client, "XADD", "s", "*", "n", str(i)) for i in range(20)]
        after = int(time.time() * 1000)
        assert all(isinstance(i, bytes) and ID_RE.match(i) for i in ids), ids
        parsed = [parse_id(i) for i in ids]
        assert parsed == sorted(parsed) and len(set(parsed)) == 20
        assert before - 5000 <= parsed[0][0] <= after + 5000
        assert call(client, "XLEN", "s") == 20
        # an explicit id below the last generated one is refused
        assert call(client, "XADD", "s", "1-1", "f", "v") == \
            Err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
        # ms-* after a * id with the same ms continues its sequence
        ms, seq = parsed[-1]
        assert call(client, "XADD", "s", f"{ms}-*", "f", "v") == f"{ms}-{seq + 1}".encode()
    both("XLEN", "s")


def test_xadd_star_after_future_explicit_id(both):
    far = "99999999999999-5"
    both("XADD", "s", far, "f", "v")
    assert both("XADD", "s", "*", "f", "v") == b"99999999999999-6"


def test_xadd_nomkstream(both):
    assert both("XADD", "s", "NOMKSTREAM", "1-0", "f", "v") is None
    assert both("XADD", "s", "NOMKSTREAM", "*", "f", "v") is None
    assert both("EXISTS", "s") == 0
    both("XADD", "s", "1-0", "f", "v")
    assert both("XADD", "s", "NOMKSTREAM", "2-0", "f", "v") == b"2-0"
    assert both("XLEN", "s") == 2


@pytest.mark.parametrize("trim,expected_ids", [
    (("MAXLEN", "3"), [8, 9, 10]),
    (("MAXLEN", "=", "3"), [8, 9, 10]),
    (("maxlen", "0"), []),
    (("MAXLEN", "100"), list(range(1, 11))),
    (("MINID", "7"), [7, 8, 9, 10]),
    (("MINID", "=", "7-0"), [7, 8, 9, 10]),
    (("MINID", "7-1"), [8, 9, 10]),
    (("MINID", "1"), list(range(1, 11))),
    (("MINID", "100"), []),
])
def test_xadd_trimming(both, trim, expected_ids):
    fill(both, n=9)
    assert both("XADD", "s", *trim, "10-0", "f10", "v10") == b"10-0"
    assert both("XRANGE", "s", "-", "+") == entries(*expected_ids)
    assert both("XLEN", "s") == len(expected_ids)
    assert both("EXISTS", "s") == 1   # a trimmed-empty stream still exists


def _approximate_trim_ok(client, trim, before: list[int], reply_removed=None):
    """The documented contract of a `~` trim (redis removes whole internal nodes only, so it
    may keep more than asked): only the oldest entries go, at least the entries an exact trim
    would keep stay, and with LIMIT n > 0 at most n entries are removed."""
    after = [parse_id(e[0])[0] for e in call(client, "XRANGE", "s", "-", "+")]
    assert after == before[len(before) - len(after):], (trim, after)
    removed = len(before) - len(after)
    kind, threshold = trim[0].upper(), trim[2]
    if kind == "MAXLEN":
        must_keep = min(int(threshold), len(before))
    else:
        must_keep = len([i for i in before if i >= int(threshold)])
    assert len(after) >= must_keep, (trim, after)
    if "LIMIT" in trim and int(trim[trim.index("LIMIT") + 1]) > 0:
        assert removed <= int(trim[trim.index("LIMIT") + 1]), (trim, removed)
    if reply_removed is not None:
        assert reply_removed == removed, (trim, reply_removed, removed)
    return removed


APPROXIMATE_TRIMS = [("MAXLEN", "~", "3"), ("MAXLEN", "~", "3", "LIMIT", "0"), ("MAXLEN", "~", "3", "LIMIT", "1"),
                     ("MAXLEN", "~", "0"), ("MINID", "~", "7"), ("MINID", "~", "150", "LIMIT", "100"),
                     ("maxlen", "~", "10", "limit", "200")]


@pytest.mark.parametrize("n", [9, 250])
@pytest.mark.parametrize("trim", APPROXIMATE_TRIMS, ids=lambda t: " ".join(t))
def test_xadd_approximate_trimming(both, trim, n):
    for client in (both.oracle, both.target):
        for i in range(1, n + 1):
            client.execute_command("XADD", "s", f"{i}-0", "f", "v")
        assert call(client, "XADD", "s", *trim, f"{n + 1}-0", "f", "v") == f"{n + 1}-0".encode()
        removed = _approximate_trim_ok(client, trim, list(range(1, n + 2)))
        # an exact trim afterwards keeps exactly what it asks for
        kept = n + 1 - removed
        assert call(client, "XADD", "s", "MAXLEN", "=", "5", f"{n + 2}-0", "f", "v") == f"{n + 2}-0".encode()
        assert call(client, "XRANGE", "s", "-", "+") == [[f"{i}-0".encode(), [b"f", b"v"]]
                                                         for i in range(max(n + 2 - min(kept + 1, 5), 0) + 1, n + 3)]


@pytest.mark.parametrize("n", [5, 250])
@pytest.mark.parametrize("trim", APPROXIMATE_TRIMS, ids=lambda t: " ".join(t))
def test_xtrim_approximate(both, trim, n):
    for client in (both.oracle, both.target):
        for i in range(1, n + 1):
            client.execute_command("XADD", "s", f"{i}-0", "f", "v")
        removed = call(client, "XTRIM", "s", *trim)
        assert isinstance(removed, int), removed
        _approximate_trim_ok(client, trim, list(range(1, n + 1)), reply_removed=removed)


@pytest.mark.parametrize("args,error", [
    (("MAXLEN", "-1"), "ERR The MAXLEN argument must be >= 0."),
    (("MAXLEN", "x"), NOT_INT),
    (("MAXLEN", "=", "2", "LIMIT", "10"), "ERR syntax error, LIMIT cannot be used without the special ~ option"),
    (("MAXLEN", "2", "LIMIT", "10"), "ERR syntax error, LIMIT cannot be used without the special ~ option"),
    (("MAXLEN", "~", "2", "LIMIT", "-1"), "ERR The LIMIT argument must be >= 0."),
    (("MINID", "x"), INVALID_ID),
    (("MAXLEN", "1", "MINID", "1"), "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"),
    (("NOMKSTREAM", "FOO"), INVALID_ID),
    (("MAXLEN",), NOT_INT),            # "5-0" is taken as the MAXLEN argument
])
def test_xadd_option_errors(both, args, error):
    both("XADD", "s", "1-0", "f", "v")
    assert both.err("XADD", "s", *args, "5-0", "f", "v") == error
    assert both("XLEN", "s") == 1


def test_xadd_arity(both):
    both.err("XADD", "s", "1-0", "f", prefix="ERR wrong number of arguments for 'xadd' command")
    both.err("XADD", "s", "1-0", "f", "v", "g", prefix="ERR wrong number of arguments for 'xadd' command")
    both.err("XADD", "s", "1-0", prefix="ERR wrong number of arguments for 'xadd' command")
    assert both("EXISTS", "s") == 0


def test_xlen(both):
    assert both("XLEN", "nokey") == 0
    fill(both, n=3)
    assert both("XLEN", "s") == 3
    both("SET", "str", "v")
    assert both.err("XLEN", "str") == WRONGTYPE
    both.err("XLEN", prefix="ERR wrong number of arguments for 'xlen' command")


# ---------------------------------------------------------------- XRANGE / XREVRANGE


@pytest.mark.parametrize("start,end,extra,ids", [
    ("-", "+", (), [1, 2, 3, 4, 5]),
    ("2", "4", (), [2, 3, 4]),
    ("2-0", "4-0", (), [2, 3, 4]),
    ("(2-0", "4", (), [3, 4]),
    ("2", "(4-0", (), [2, 3]),
    ("(2", "(4", (), [3, 4]),        # "4" as an end means 4-18446744073709551615
    ("(1-0", "(2-0", (), []),
    ("-", "+", ("COUNT", "2"), [1, 2]),
    ("3", "+", ("COUNT", "10"), [3, 4, 5]),
    ("-", "+", ("COUNT", "0"), None),      # Redis 7.0: a null reply for COUNT 0 / negative
    ("-", "+", ("COUNT", "-1"), None),
    ("4", "2", (), []),
    ("6", "+", (), []),
    ("0", "1", (), [1]),
    ("1-1", "+", (), [2, 3, 4, 5]),
    ("(0-18446744073709551615", "1-0", (), [1]),
])
def test_xrange(both, start, end, extra, ids):
    fill(both)
    assert both("XRANGE", "s", start, end, *extra) == (None if ids is None else entries(*ids))


@pytest.mark.parametrize("end,start,extra,ids", [
    ("+", "-", (), [5, 4, 3, 2, 1]),
    ("4", "2", (), [4, 3, 2]),
    ("(4", "2", (), [4, 3, 2]),       # "(4" as an end: below 4-18446744073709551615
    ("(4-0", "2", (), [3, 2]),
    ("4", "(2", (), [4, 3]),
    ("+", "-", ("COUNT", "2"), [5, 4]),
    ("2", "4", (), []),
    ("+", "(5-0", (), []),
])
def test_xrevrange(both, end, start, extra, ids):
    fill(both)
    assert both("XREVRANGE", "s", end, start, *extra) == entries(*ids)


@pytest.mark.parametrize("cmd,error", [
    (("XRANGE", "s", "x", "+"), INVALID_ID),
    (("XRANGE", "s", "-", "x"), INVALID_ID),
    (("XRANGE", "s", "(-", "+"), INVALID_ID),
    (("XRANGE", "s", "-", "(+"), INVALID_ID),
    (("XRANGE", "s", "(18446744073709551615-18446744073709551615", "+"), "ERR invalid start ID for the interval"),
    (("XRANGE", "s", "-", "(0-0"), "ERR invalid end ID for the interval"),
    (("XRANGE", "s", "-", "+", "COUNT"), SYNTAX),
    (("XRANGE", "s", "-", "+", "COUNT", "x"), NOT_INT),
    (("XRANGE", "s", "-", "+", "FOO", "1"), SYNTAX),
    (("XREVRANGE", "s", "+", "x"), INVALID_ID),
    (("XREVRANGE", "s", "(0-0", "-"), "ERR invalid end ID for the interval"),
    (("XRANGE", "s", "-"), "ERR wrong number of arguments for 'xrange' command"),
    (("XREVRANGE", "s", "+"), "ERR wrong number of arguments for 'xrevrange' command"),
])
def test_xrange_errors(both, cmd, error):
    fill(both, n=2)
    assert both.err(*cmd) == error


def test_xrange_missing_key_and_wrongtype(both):
    assert both("XRANGE", "nokey", "-", "+") == []
    assert both("XREVRANGE", "nokey", "+", "-") == []
    both("RPUSH", "l", "a")
    assert both.err("XRANGE", "l", "-", "+") == WRONGTYPE
    assert both.err("XREVRANGE", "l", "+", "-") == WRONGTYPE


def test_xrange_resp3(both3):
    both3("XADD", "s", "1-0", "a", "1")
    assert both3("XRANGE", "s", "-", "+") == [[b"1-0", [b"a", b"1"]]]


def test_xrange_paging(both):
    fill(both, n=30)
    cursor, seen = "-", []
    while True:
        page = both("XRANGE", "s", cursor, "+", "COUNT", "7")
        if not page:
            break
        seen += page
        cursor = "(" + page[-1][0].decode()
    assert seen == entries(*range(1, 31))


# ---------------------------------------------------------------- XDEL / XTRIM / XSETID


def test_xdel(both):
    fill(both)
    assert both("XDEL", "s", "2-0", "4", "9-0", "2-0") == 2
    assert both("XRANGE", "s", "-", "+") == entries(1, 3, 5)
    assert both("XLEN", "s") == 3
    assert both("XDEL", "s", "1-0", "3-0", "5-0") == 3
    assert both("XLEN", "s") == 0
    assert both("EXISTS", "s") == 1                  # an empty stream is not deleted
    assert both("XADD", "s", "5-0", "f", "v") == \
        Err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    assert both("XDEL", "nokey", "1-0") == 0
    assert both.err("XDEL", "s", "x") == INVALID_ID
    both.err("XDEL", "s", prefix="ERR wrong number of arguments for 'xdel' command")


@pytest.mark.parametrize("args,removed,ids", [
    (("MAXLEN", "2"), 3, [4, 5]),
    (("MAXLEN", "=", "0"), 5, []),
    (("MAXLEN", "10"), 0, [1, 2, 3, 4, 5]),
    (("MINID", "3"), 2, [3, 4, 5]),
    (("MINID", "0"), 0, [1, 2, 3, 4, 5]),
    (("minid", "9"), 5, []),
])
def test_xtrim(both, args, removed, ids):
    fill(both)
    assert both("XTRIM", "s", *args) == removed
    assert both("XRANGE", "s", "-", "+") == entries(*ids)


@pytest.mark.parametrize("args,error", [
    (("MAXLEN", "-1"), "ERR The MAXLEN argument must be >= 0."),
    (("MAXLEN",), "ERR wrong number of arguments for 'xtrim' command"),
    (("FOO", "1"), SYNTAX),
    (("MAXLEN", "1", "LIMIT", "5"), "ERR syntax error, LIMIT cannot be used without the special ~ option"),
    (("MINID", "x"), INVALID_ID),
    (("MINID", "=", "(3"), INVALID_ID),
    (("MAXLEN", "1", "MINID", "1"), "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"),
])
def test_xtrim_errors(both, args, error):
    fill(both, n=3)
    assert both.err("XTRIM", "s", *args) == error
    assert both("XLEN", "s") == 3


def test_xtrim_missing_key(both):
    assert both("XTRIM", "nokey", "MAXLEN", "0") == 0
    assert both("EXISTS", "nokey") == 0


def test_xsetid(both):
    fill(both, n=3)
    assert both("XSETID", "s", "10-0") == b"OK"
    assert both.err("XADD", "s", "9-0", "f", "v") == \
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    assert both("XADD", "s", "10-*", "f", "v") == b"10-1"
    assert both("XSETID", "s", "20-0", "ENTRIESADDED", "10", "MAXDELETEDID", "15-0") == b"OK"
    info = both("XINFO", "STREAM", "s")
    d = dict(zip(info[::2], info[1::2]))
    assert d[b"last-generated-id"] == b"20-0"
    assert d[b"entries-added"] == 10
    assert d[b"max-deleted-entry-id"] == b"15-0"


@pytest.mark.parametrize("args,error", [
    (("2-0",), "ERR The ID specified in XSETID is smaller than the target stream top item"),
    (("x",), INVALID_ID),
    (("10-0", "ENTRIESADDED", "1"),
     "ERR The entries_added specified in XSETID is smaller than the target stream length"),
    (("10-0", "ENTRIESADDED", "5", "MAXDELETEDID", "11-0"),
     "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"),
    (("10-0", "ENTRIESADDED", "-1"), "ERR entries_added must be positive"),
    (("10-0", "ENTRIESADDED", "x"), NOT_INT),
    (("10-0", "MAXDELETEDID", "x"), INVALID_ID),
    (("10-0", "FOO"), SYNTAX),
])
def test_xsetid_errors(both, args, error):
    fill(both, n=3)
    assert both.err("XSETID", "s", *args) == error


def test_xsetid_missing_key_and_arity(both):
    assert both.err("XSETID", "nokey", "1-0") == "ERR no such key"
    both.err("XSETID", "s", prefix="ERR wrong number of arguments for 'xsetid' command")


# ---------------------------------------------------------------- XREAD


def test_xread(both):
    fill(both, n=4)
    fill(both, key="t", n=2, start=3)
    assert both("XREAD", "STREAMS", "s", "0") == [[b"s", entries(1, 2, 3, 4)]]
    assert both("XREAD", "STREAMS", "s", "2-0") == [[b"s", entries(3, 4)]]
    assert both("XREAD", "COUNT", "1", "STREAMS", "s", "t", "0", "0") == [[b"s", entries(1)], [b"t", entries(3)]]
    assert both("XREAD", "STREAMS", "s", "t", "3", "3") == [[b"s", entries(4)], [b"t", entries(4)]]
    assert both("XREAD", "STREAMS", "s", "t", "4", "0") == [[b"t", entries(3, 4)]]
    assert both("XREAD", "STREAMS", "s", "nokey", "t", "9", "0", "4") is None
    assert both("XREAD", "STREAMS", "s", "$") is None
    assert both.err("XREAD", "count", "2", "streams", "s", "-") == INVALID_ID
    assert both("XREAD", "STREAMS", "s", "s", "0", "3") == [[b"s", entries(1, 2, 3, 4)], [b"s", entries(4)]]


def test_xread_resp3_map(both3):
    both3("XADD", "s", "1-0", "f", "v")
    assert both3("XREAD", "STREAMS", "s", "0") == {b"s": [[b"1-0", [b"f", b"v"]]]}
    assert both3("XREAD", "STREAMS", "s", "1") is None


def test_xread_raw_bytes(servers):
    cmds = [("XADD", "s", "1-0", "f", "v"), ("XREAD", "STREAMS", "s", "0"), ("XREAD", "STREAMS", "s", "$"),
            ("XREAD", "BLOCK", "10", "STREAMS", "s", "$")]
    a, b = (exchange(s.port, cmds) for s in servers)
    assert a == b
    assert a[1:] == [b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
                     b"*-1\r\n", b"*-1\r\n"]


@pytest.mark.parametrize("args,error", [
    (("STREAMS", "s"), "ERR wrong number of arguments for 'xread' command"),
    (("STREAMS", "s", "t", "0"), "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must "
                                 "be specified."),
    (("COUNT", "1", "STREAMS"), SYNTAX),
    (("STREAMS", "s", "x"), INVALID_ID),
    (("COUNT", "x", "STREAMS", "s", "0"), NOT_INT),
    (("BLOCK", "x", "STREAMS", "s", "0"), "ERR timeout is not an integer or out of range"),
    (("BLOCK", "-1", "STREAMS", "s", "0"), "ERR timeout is negative"),
    (("FOO", "STREAMS", "s", "0"), SYNTAX),
    (("COUNT", "1", "s", "0"), SYNTAX),
    (("STREAMS", "s", ">"), "ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                            "<group> <consumer> option."),
    (("NOACK", "STREAMS", "s", "0"), "ERR The NOACK option is only supported by XREADGROUP. You called "
                                     "XREAD instead."),
])
def test_xread_errors(both, args, error):
    fill(both, n=2)
    assert both.err("XREAD", *args) == error


def test_xread_wrongtype(both):
    both("SET", "str", "v")
    assert both.err("XREAD", "STREAMS", "str", "0") == WRONGTYPE
    assert both.err("XREAD", "BLOCK", "10", "STREAMS", "str", "$") == WRONGTYPE


def test_xread_block_woken_by_xadd(servers):
    def scenario(server):
        exchange(server.port, [("XADD", "s", "1-0", "old", "1")])
        c = send_only(server, "XREAD", "BLOCK", "0", "STREAMS", "nokey", "s", "$", "$")
        wait_blocked(server, 1)
        quiet = silent(c, 0.05)
        added = exchange(server.port, [("XADD", "s", "2-0", "new", "2"), ("XADD", "s", "3-0", "newer", "3")])
        got = reply_within(c)
        c.close()
        return quiet, added, got
    quiet, added, got = each(servers, scenario)
    assert quiet
    assert got == b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$3\r\nnew\r\n$1\r\n2\r\n"


def test_xread_block_new_stream_and_count(servers):
    def scenario(server):
        c = send_only(server, "XREAD", "COUNT", "2", "BLOCK", "5000", "STREAMS", "s", "0-0")
        wait_blocked(server, 1)
        exchange(server.port, [("MULTI",), ("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "2-0", "b", "2"),
                               ("XADD", "s", "3-0", "c", "3"), ("EXEC",)])
        return reply_within(c)
    got = each(servers, scenario)
    assert got.count(b"-0\r\n") == 2 and b"3-0" not in got


def test_xread_block_timeout(servers):
    def scenario(server):
        exchange(server.port, [("XADD", "s", "1-0", "f", "v")])
        c = send_only(server, "XREAD", "BLOCK", "100", "STREAMS", "s", "$")
        t0 = time.monotonic()
        r = reply_within(c, 3)
        elapsed = time.monotonic() - t0
        assert 0.08 <= elapsed < 1.5, f"{server.name}: XREAD BLOCK 100 answered after {elapsed:.3f}s"
        return r
    assert each(servers, scenario) == b"*-1\r\n"


def test_xread_block_inside_multi_is_nonblocking(both):
    both("XADD", "s", "1-0", "f", "v")
    both("MULTI")
    both("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
    both("XREAD", "BLOCK", "0", "STREAMS", "s", "0")
    assert both("EXEC") == [None, [[b"s", [[b"1-0", [b"f", b"v"]]]]]]


# ---------------------------------------------------------------- XGROUP


def test_xgroup_create(both):
    fill(both, n=3)
    assert both("XGROUP", "CREATE", "s", "g1", "0") == b"OK"
    assert both("XGROUP", "CREATE", "s", "g2", "$") == b"OK"
    assert both("XGROUP", "CREATE", "s", "g3", "2-0", "ENTRIESREAD", "2") == b"OK"
    assert both("XGROUP", "CREATE", "s", "g4", "0", "ENTRIESREAD", "-1") == b"OK"
    assert both.err("XGROUP", "CREATE", "s", "g1", "$") == "BUSYGROUP Consumer Group name already exists"
    assert both("XINFO", "GROUPS", "s") == [
        [b"name", b"g1", b"consumers", 0, b"pending", 0, b"last-delivered-id", b"0-0", b"entries-read", None,
         b"lag", 3],
        [b"name", b"g2", b"consumers", 0, b"pending", 0, b"last-delivered-id", b"3-0", b"entries-read", None,
         b"lag", 0],
        [b"name", b"g3", b"consumers", 0, b"pending", 0, b"last-delivered-id", b"2-0", b"entries-read", 2,
         b"lag", 1],
        [b"name", b"g4", b"consumers", 0, b"pending", 0, b"last-delivered-id", b"0-0", b"entries-read", None,
         b"lag", 3],
    ]


def test_xgroup_create_mkstream(both):
    assert both.err("XGROUP", "CREATE", "s", "g", "$") == (
        "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the "
        "MKSTREAM option to create an empty stream automatically.")
    assert both("EXISTS", "s") == 0
    assert both("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM") == b"OK"
    assert both("TYPE", "s") == b"stream"
    assert both("XLEN", "s") == 0
    assert both("XGROUP", "CREATE", "s2", "g", "0", "MKSTREAM", "ENTRIESREAD", "0") == b"OK"
    both("XINFO", "GROUPS", "s2")


@pytest.mark.parametrize("args,error", [
    (("CREATE", "s", "g", "x"), INVALID_ID),
    (("CREATE", "s", "g", "0", "ENTRIESREAD", "-5"), "ERR value for ENTRIESREAD must be positive or -1"),
    (("CREATE", "s", "g", "0", "ENTRIESREAD", "x"), NOT_INT),
    (("CREATE", "s", "g", "0", "FOO"), "ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try "
                                       "XGROUP HELP."),
    (("CREATE", "s", "g"), "ERR wrong number of arguments for 'xgroup|create' command"),
    (("SETID", "s", "nog", "0"), "NOGROUP No such consumer group 'nog' for key name 's'"),
    (("CREATECONSUMER", "s", "nog", "c"), "NOGROUP No such consumer group 'nog' for key name 's'"),
    (("DELCONSUMER", "s", "nog", "c"), "NOGROUP No such consumer group 'nog' for key name 's'"),
    (("SETID", "nokey", "g", "0"), "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE "
                                   "you may want to use the MKSTREAM option to create an empty stream automatically."),
    (("FOO",), "ERR unknown subcommand 'FOO'. Try XGROUP HELP."),
    (("SETID", "s", "g", "0", "ENTRIESREAD", "-2"), "ERR value for ENTRIESREAD must be positive or -1"),
])
def test_xgroup_errors(both, args, error):
    fill(both, n=2)
    both("XGROUP", "CREATE", "s", "g", "0")
    assert both.err("XGROUP", *args) == error


def test_xgroup_wrongtype(both):
    both("SET", "str", "v")
    assert both.err("XGROUP", "CREATE", "str", "g", "$") == WRONGTYPE
    assert both.err("XGROUP", "CREATE", "str", "g", "$", "MKSTREAM") == WRONGTYPE


def test_xgroup_destroy(both):
    fill(both, n=2)
    both("XGROUP", "CREATE", "s", "g", "0")
    assert both("XGROUP", "DESTROY", "s", "g") == 1
    assert both("XGROUP", "DESTROY", "s", "g") == 0
    assert both("XINFO", "GROUPS", "s") == []
    assert both.err("XGROUP", "DESTROY", "nokey", "g").startswith("ERR The XGROUP subcommand requires the key")


def test_xgroup_consumers(both):
    fill(both, n=3)
    both("XGROUP", "CREATE", "s", "g", "0")
    assert both("XGROUP", "CREATECONSUMER", "s", "g", "c1") == 1
    assert both("XGROUP", "CREATECONSUMER", "s", "g", "c1") == 0
    assert both("XGROUP", "CREATECONSUMER", "s", "g", "c2") == 1
    both("XREADGROUP", "GROUP", "g", "c2", "COUNT", "2", "STREAMS", "s", ">")
    assert both("XGROUP", "DELCONSUMER", "s", "g", "c1") == 0
    assert both("XGROUP", "DELCONSUMER", "s", "g", "c2") == 2        # its pending entries
    assert both("XGROUP", "DELCONSUMER", "s", "g", "nobody") == 0
    assert both("XPENDING", "s", "g") == [0, None, None, None]
    assert both("XINFO", "CONSUMERS", "s", "g") == []


def test_xgroup_setid(both):
    fill(both, n=4)
    both("XGROUP", "CREATE", "s", "g", "$")
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">") is None
    assert both("XGROUP", "SETID", "s", "g", "2-0") == b"OK"
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">") == [[b"s", entries(3, 4)]]
    assert both("XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "0") == b"OK"
    assert both("XINFO", "GROUPS", "s") == [[b"name", b"g", b"consumers", 1, b"pending", 2,
                                             b"last-delivered-id", b"0-0", b"entries-read", 0, b"lag", 4]]
    assert both("XGROUP", "SETID", "s", "g", "$") == b"OK"
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">") is None


def test_xgroup_help(servers):
    # HELP texts are prose; the replica writes its own, so only their shape is compared.
    for server in servers:
        c = server.client()
        r = c.execute_command("XGROUP", "HELP")
        assert isinstance(r, list) and r and r[0].startswith(b"XGROUP"), r


# ---------------------------------------------------------------- XREADGROUP / XACK


def test_xreadgroup_new_and_history(both):
    fill(both, n=5)
    both("XGROUP", "CREATE", "s", "g", "0")
    assert both("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">") == [[b"s", entries(1, 2)]]
    assert both("XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "STREAMS", "s", ">") == [[b"s", entries(3)]]
    # history: the consumer's own pending entries, from an id on
    assert both("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0") == [[b"s", entries(1, 2)]]
    assert both("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "1-0") == [[b"s", entries(2)]]
    assert both("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", "0") == [[b"s", entries(1)]]
    assert both("XREADGROUP", "GROUP", "g", "carol", "STREAMS", "s", "0") == [[b"s", []]]
    assert both("XACK", "s", "g", "1-0", "2-0", "3-0", "9-0") == 3
    assert both("XACK", "s", "g", "1-0") == 0
    assert both("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0") == [[b"s", []]]
    assert both("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">") == [[b"s", entries(4, 5)]]
    assert both("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">") is None
    assert both("XPENDING", "s", "g") == [2, b"4-0", b"5-0", [[b"alice", b"2"]]]


def test_xreadgroup_deleted_entry_in_history(both):
    fill(both, n=3)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
    both("XDEL", "s", "2-0")
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0") == [[b"s", [entry(1), [b"2-0", None],
                                                                                     entry(3)]]]


def test_xreadgroup_noack(both):
    fill(both, n=3)
    both("XGROUP", "CREATE", "s", "g", "0")
    assert both("XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "s", ">") == [[b"s", entries(1, 2, 3)]]
    assert both("XPENDING", "s", "g") == [0, None, None, None]
    assert both("XINFO", "GROUPS", "s") == [[b"name", b"g", b"consumers", 1, b"pending", 0,
                                             b"last-delivered-id", b"3-0", b"entries-read", 3, b"lag", 0]]


def test_xreadgroup_multiple_streams(both):
    fill(both, key="a", n=2)
    fill(both, key="b", n=2, start=5)
    both("XGROUP", "CREATE", "a", "g", "0")
    both("XGROUP", "CREATE", "b", "g", "$")
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "b", ">", ">") == [[b"a", entries(1, 2)]]
    both("XADD", "b", "7-0", "f7", "v7")
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "b", ">", ">") == [[b"b", entries(7)]]
    assert both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "b", "0", "0") == [[b"a", entries(1, 2)],
                                                                                  [b"b", entries(7)]]


@pytest.mark.parametrize("args,error", [
    (("GROUP", "nog", "c", "STREAMS", "s", ">"), "NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP "
                                                 "with GROUP option"),
    (("GROUP", "g", "c", "STREAMS", "nokey", ">"), "NOGROUP No such key 'nokey' or consumer group 'g' in "
                                                   "XREADGROUP with GROUP option"),
    (("GROUP", "g", "c", "STREAMS", "s", "$"), "ERR The $ ID is meaningless in the context of XREADGROUP: you want "
                                               "to read the history of this consumer by specifying a proper ID, or "
                                               "use the > ID to get new messages. The $ ID would just return an "
                                               "empty result set."),
    (("GROUP", "g", "c", "STREAMS", "s"), "ERR wrong number of arguments for 'xreadgroup' command"),
    (("GROUP", "g", "STREAMS", "s", ">"), "ERR wrong number of arguments for 'xreadgroup' command"),
    (("STREAMS", "s", ">"), "ERR wrong number of arguments for 'xreadgroup' command"),
    (("COUNT", "1", "BLOCK", "0", "STREAMS", "s", ">"), "ERR Missing GROUP option for XREADGROUP"),
    (("GROUP", "g", "c", "STREAMS", "s", "x"), INVALID_ID),
    (("GROUP", "g", "c", "STREAMS", "s", "t", ">"), "ERR Unbalanced XREAD list of streams: for each stream key an "
                                                    "ID or '$' must be specified."),
])
def test_xreadgroup_errors(both, args, error):
    fill(both, n=2)
    both("XGROUP", "CREATE", "s", "g", "0")
    assert both.err("XREADGROUP", *args) == error


def test_xreadgroup_block(servers):
    def scenario(server):
        exchange(server.port, [("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")])
        c = send_only(server, "XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", "s", ">")
        wait_blocked(server, 1)
        quiet = silent(c, 0.05)
        exchange(server.port, [("XADD", "s", "1-0", "job", "1")])
        got = reply_within(c)
        c.close()
        t = send_only(server, "XREADGROUP", "GROUP", "g", "bob", "BLOCK", "100", "STREAMS", "s", ">")
        timeout_reply = reply_within(t, 3)
        t.close()
        return quiet, got, timeout_reply, exchange(server.port, [("XPENDING", "s", "g")])
    quiet, got, timeout_reply, pending = each(servers, scenario)
    assert quiet
    assert got == b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$3\r\njob\r\n$1\r\n1\r\n"
    assert timeout_reply == b"*-1\r\n"
    assert pending == [b"*4\r\n:1\r\n$3\r\n1-0\r\n$3\r\n1-0\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n"]


def test_xreadgroup_block_two_consumers(servers):
    """Two consumers blocked on the same group: each new entry goes to one of them, the first
    blocked first."""
    def scenario(server):
        exchange(server.port, [("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")])
        a = send_only(server, "XREADGROUP", "GROUP", "g", "a", "BLOCK", "0", "STREAMS", "s", ">")
        wait_blocked(server, 1)
        b = send_only(server, "XREADGROUP", "GROUP", "g", "b", "BLOCK", "0", "STREAMS", "s", ">")
        wait_blocked(server, 2)
        exchange(server.port, [("XADD", "s", "1-0", "n", "1")])
        ra = reply_within(a)
        quiet = silent(b, 0.1)
        exchange(server.port, [("XADD", "s", "2-0", "n", "2")])
        rb = reply_within(b)
        return ra, quiet, rb
    ra, quiet, rb = each(servers, scenario)
    assert b"1-0" in ra and quiet and b"2-0" in rb


def test_xack(both):
    fill(both, n=3)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
    assert both("XACK", "s", "g", "2-0") == 1
    assert both("XACK", "s", "g", "2-0", "3-0", "3-0") == 1
    assert both("XACK", "s", "nog", "1-0") == 0
    assert both("XACK", "nokey", "g", "1-0") == 0
    assert both.err("XACK", "s", "g", "x") == INVALID_ID
    both.err("XACK", "s", "g", prefix="ERR wrong number of arguments for 'xack' command")
    assert both("XPENDING", "s", "g") == [1, b"1-0", b"1-0", [[b"c", b"1"]]]


# ---------------------------------------------------------------- XPENDING


def _norm_pending(reply):
    """Extended XPENDING: [id, consumer, idle ms, deliveries] with the idle time as a type."""
    if not isinstance(reply, list):
        return reply
    return [[e[0], e[1], "idle" if isinstance(e[2], int) and e[2] >= 0 else ("bad idle", e[2])] + e[3:]
            for e in reply]


def _pel_setup(both):
    fill(both, n=6)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">")
    both("XREADGROUP", "GROUP", "g", "bob", "COUNT", "3", "STREAMS", "s", ">")
    both("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0")   # a 2nd delivery of 1-0 and 2-0


def test_xpending_summary(both):
    _pel_setup(both)
    assert both("XPENDING", "s", "g") == [5, b"1-0", b"5-0", [[b"alice", b"2"], [b"bob", b"3"]]]
    both("XGROUP", "CREATE", "s", "empty", "$")
    assert both("XPENDING", "s", "empty") == [0, None, None, None]


def test_xpending_extended(both):
    _pel_setup(both)
    assert both("XPENDING", "s", "g", "-", "+", "10", norm=_norm_pending) == [
        [b"1-0", b"alice", "idle", 2], [b"2-0", b"alice", "idle", 2], [b"3-0", b"bob", "idle", 1],
        [b"4-0", b"bob", "idle", 1], [b"5-0", b"bob", "idle", 1]]
    assert both("XPENDING", "s", "g", "-", "+", "2", norm=_norm_pending) == [
        [b"1-0", b"alice", "idle", 2], [b"2-0", b"alice", "idle", 2]]
    assert both("XPENDING", "s", "g", "(2-0", "4", "10", norm=_norm_pending) == [
        [b"3-0", b"bob", "idle", 1], [b"4-0", b"bob", "idle", 1]]
    assert both("XPENDING", "s", "g", "-", "+", "10", "bob", norm=_norm_pending) == [
        [b"3-0", b"bob", "idle", 1], [b"4-0", b"bob", "idle", 1], [b"5-0", b"bob", "idle", 1]]
    assert both("XPENDING", "s", "g", "-", "+", "10", "nobody") == []
    assert both("XPENDING", "s", "g", "-", "+", "0") == []
    # IDLE filters by minimum idle time
    assert both("XPENDING", "s", "g", "IDLE", "3600000", "-", "+", "10") == []
    assert both("XPENDING", "s", "g", "IDLE", "0", "-", "+", "10", "alice", norm=_norm_pending) == [
        [b"1-0", b"alice", "idle", 2], [b"2-0", b"alice", "idle", 2]]


def test_xpending_idle_grows(both):
    _pel_setup(both)
    time.sleep(0.12)
    for client in (both.oracle, both.target):
        r = call(client, "XPENDING", "s", "g", "IDLE", "100", "-", "+", "10")
        assert [e[0] for e in r] == [b"1-0", b"2-0", b"3-0", b"4-0", b"5-0"], r
        assert all(100 <= e[2] < 5000 for e in r), r


@pytest.mark.parametrize("args,error", [
    (("nog",), "NOGROUP No such key 's' or consumer group 'nog'"),
    (("g", "-", "+"), SYNTAX),
    (("g", "-", "+", "x"), NOT_INT),
    (("g", "x", "+", "10"), INVALID_ID),
    (("g", "IDLE", "x", "-", "+", "10"), NOT_INT),
    (("g", "IDLE", "10"), SYNTAX),
    (("g", "IDLE", "10", "-", "+"), SYNTAX),
    (("g", "(18446744073709551615-18446744073709551615", "+", "10"), "ERR invalid start ID for the interval"),
])
def test_xpending_errors(both, args, error):
    _pel_setup(both)
    assert both.err("XPENDING", "s", *args) == error


def test_xpending_missing_key(both):
    assert both.err("XPENDING", "nokey", "g") == "NOGROUP No such key 'nokey' or consumer group 'g'"
    both.err("XPENDING", "s", prefix="ERR wrong number of arguments for 'xpending' command")


# ---------------------------------------------------------------- XCLAIM / XAUTOCLAIM


def test_xclaim(both):
    _pel_setup(both)
    assert both("XCLAIM", "s", "g", "carol", "0", "1-0", "3-0") == entries(1, 3)
    assert both("XPENDING", "s", "g", "-", "+", "10", "carol", norm=_norm_pending) == [
        [b"1-0", b"carol", "idle", 3], [b"3-0", b"carol", "idle", 2]]
    # min-idle-time not reached: nothing claimed
    assert both("XCLAIM", "s", "g", "dave", "3600000", "1-0", "2-0") == []
    # JUSTID does not increment the delivery counter
    assert both("XCLAIM", "s", "g", "dave", "0", "2-0", "4-0", "JUSTID") == [b"2-0", b"4-0"]
    assert both("XPENDING", "s", "g", "-", "+", "10", "dave", norm=_norm_pending) == [
        [b"2-0", b"dave", "idle", 2], [b"4-0", b"dave", "idle", 1]]
    # ids not in the PEL are ignored
    assert both("XCLAIM", "s", "g", "dave", "0", "6-0", "9-0") == []
    assert both("XPENDING", "s", "g") == [5, b"1-0", b"5-0", [[b"bob", b"1"], [b"carol", b"2"], [b"dave", b"2"]]]


def test_xclaim_options(both):
    _pel_setup(both)
    assert both("XCLAIM", "s", "g", "c", "0", "1-0", "RETRYCOUNT", "7", "JUSTID") == [b"1-0"]
    assert both("XCLAIM", "s", "g", "c", "0", "6-0", "FORCE", "JUSTID") == [b"6-0"]     # not pending: FORCE adds it
    assert both("XCLAIM", "s", "g", "c", "0", "2-0", "IDLE", "3600000", "JUSTID") == [b"2-0"]
    assert both("XPENDING", "s", "g", "-", "+", "10", "c", norm=_norm_pending) == [
        [b"1-0", b"c", "idle", 7], [b"2-0", b"c", "idle", 2], [b"6-0", b"c", "idle", 1]]
    assert both("XPENDING", "s", "g", "IDLE", "3000000", "-", "+", "10", norm=_norm_pending) == [
        [b"2-0", b"c", "idle", 2]]
    assert both("XCLAIM", "s", "g", "c", "0", "3-0", "LASTID", "5-0", "JUSTID") == [b"3-0"]
    both("XINFO", "GROUPS", "s")


def test_xclaim_deleted_entry(both):
    _pel_setup(both)
    both("XDEL", "s", "1-0")
    assert both("XCLAIM", "s", "g", "c", "0", "1-0", "2-0") == entries(2)
    assert both("XPENDING", "s", "g", "-", "+", "10", "c", norm=_norm_pending) == [[b"2-0", b"c", "idle", 3]]
    assert both("XPENDING", "s", "g")[0] == 4


@pytest.mark.parametrize("args,error", [
    (("nog", "c", "0", "1-0"), "NOGROUP No such key 's' or consumer group 'nog'"),
    (("g", "c", "x", "1-0"), "ERR Invalid min-idle-time argument for XCLAIM"),
    (("g", "c", "0", "x"), "ERR Unrecognized XCLAIM option 'x'"),   # the ids end at the first non-id
    (("g", "c", "0", "1-0", "x"), "ERR Unrecognized XCLAIM option 'x'"),
    (("g", "c", "0", "1-0", "IDLE", "x"), "ERR Invalid IDLE option argument for XCLAIM"),
    (("g", "c", "0", "1-0", "TIME", "x"), "ERR Invalid TIME option argument for XCLAIM"),
    (("g", "c", "0", "1-0", "RETRYCOUNT", "x"), "ERR Invalid RETRYCOUNT option argument for XCLAIM"),
    (("g", "c", "0", "1-0", "LASTID", "x"), INVALID_ID),
    (("g", "c", "0", "1-0", "FOO"), "ERR Unrecognized XCLAIM option 'FOO'"),
])
def test_xclaim_errors(both, args, error):
    _pel_setup(both)
    assert both.err("XCLAIM", "s", *args) == error


def test_xautoclaim(both):
    _pel_setup(both)
    assert both("XAUTOCLAIM", "s", "g", "carol", "0", "0-0", "COUNT", "2") == [b"3-0", entries(1, 2), []]
    assert both("XAUTOCLAIM", "s", "g", "carol", "0", "3-0", "COUNT", "2", "JUSTID") == [b"5-0", [b"3-0", b"4-0"], []]
    assert both("XAUTOCLAIM", "s", "g", "carol", "0", "5-0") == [b"0-0", entries(5), []]
    assert both("XAUTOCLAIM", "s", "g", "dave", "3600000", "0-0") == [b"0-0", [], []]
    assert both("XPENDING", "s", "g") == [5, b"1-0", b"5-0", [[b"carol", b"5"]]]
    assert both("XPENDING", "s", "g", "-", "+", "10", norm=_norm_pending) == [
        [b"1-0", b"carol", "idle", 3], [b"2-0", b"carol", "idle", 3], [b"3-0", b"carol", "idle", 1],
        [b"4-0", b"carol", "idle", 1], [b"5-0", b"carol", "idle", 2]]
    # an exclusive start id is accepted; JUSTID keeps the delivery count
    assert both("XAUTOCLAIM", "s", "g", "dave", "0", "(1-0", "COUNT", "1", "JUSTID") == [b"3-0", [b"2-0"], []]
    assert both("XPENDING", "s", "g") == [5, b"1-0", b"5-0", [[b"carol", b"4"], [b"dave", b"1"]]]
    assert both("XPENDING", "s", "g", "-", "+", "1", "dave", norm=_norm_pending) == [[b"2-0", b"dave", "idle", 3]]


def test_xautoclaim_deleted_entries(both):
    _pel_setup(both)
    assert both("XDEL", "s", "2-0", "4-0") == 2
    assert both("XAUTOCLAIM", "s", "g", "carol", "0", "0-0", "COUNT", "10") == [b"0-0", entries(1, 3, 5),
                                                                                 [b"2-0", b"4-0"]]
    assert both("XPENDING", "s", "g") == [3, b"1-0", b"5-0", [[b"carol", b"3"]]]


@pytest.mark.parametrize("args,error", [
    (("nog", "c", "0", "0"), "NOGROUP No such key 's' or consumer group 'nog'"),
    (("g", "c", "x", "0"), "ERR Invalid min-idle-time argument for XAUTOCLAIM"),
    (("g", "c", "0", "x"), INVALID_ID),
    (("g", "c", "0", "0", "COUNT", "0"), "ERR COUNT must be > 0"),
    (("g", "c", "0", "0", "COUNT", "x"), "ERR COUNT must be > 0"),
    (("g", "c", "0", "0", "FOO"), SYNTAX),
    (("g", "c", "0"), "ERR wrong number of arguments for 'xautoclaim' command"),
])
def test_xautoclaim_errors(both, args, error):
    _pel_setup(both)
    assert both.err("XAUTOCLAIM", "s", *args) == error


# ---------------------------------------------------------------- XINFO

TIME_FIELDS = {b"seen-time", b"active-time", b"idle", b"inactive"}
IMPL_FIELDS = {b"radix-tree-keys", b"radix-tree-nodes"}


def _fields(flat):
    assert isinstance(flat, list) and len(flat) % 2 == 0, flat
    return list(zip(flat[::2], flat[1::2]))


def _norm_consumer(flat):
    out = []
    for k, v in _fields(flat):
        if k in TIME_FIELDS:
            v = "time" if isinstance(v, int) and v >= 0 else ("bad time", v)
        elif k == b"pending" and isinstance(v, list):      # FULL: [id, delivery time, count]
            v = [[e[0], "time", e[2]] for e in v]
        out.append((k, v))
    return out


def _norm_group(flat):
    out = []
    for k, v in _fields(flat):
        if k == b"pending" and isinstance(v, list):        # FULL: [id, consumer, delivery time, count]
            v = [[e[0], e[1], "time", e[3]] for e in v]
        elif k == b"consumers" and isinstance(v, list):
            v = [_norm_consumer(c) for c in v]
        out.append((k, v))
    return out


def norm_xinfo_stream(reply):
    if not isinstance(reply, list):
        return reply
    out = []
    for k, v in _fields(reply):
        if k in IMPL_FIELDS:
            v = "int" if isinstance(v, int) else ("not an int", v)
        elif k == b"groups" and isinstance(v, list):
            v = [_norm_group(g) for g in v]
        out.append((k, v))
    return out


def norm_xinfo_consumers(reply):
    if not isinstance(reply, list):
        return reply
    return [_norm_consumer(c) for c in reply]


def test_xinfo_stream(both):
    fill(both, n=4)
    both("XDEL", "s", "2-0")
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XGROUP", "CREATE", "s", "h", "$")
    info = both("XINFO", "STREAM", "s", norm=norm_xinfo_stream)
    assert [k for k, _ in info] == [b"length", b"radix-tree-keys", b"radix-tree-nodes", b"last-generated-id",
                                    b"max-deleted-entry-id", b"entries-added", b"recorded-first-entry-id",
                                    b"groups", b"first-entry", b"last-entry"]
    d = dict(info)
    assert d[b"length"] == 3
    assert d[b"last-generated-id"] == b"4-0"
    assert d[b"max-deleted-entry-id"] == b"2-0"
    assert d[b"entries-added"] == 4
    assert d[b"recorded-first-entry-id"] == b"1-0"
    assert d[b"groups"] == 2
    assert d[b"first-entry"] == entry(1)
    assert d[b"last-entry"] == entry(4)


def test_xinfo_stream_empty(both):
    both("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
    d = dict(both("XINFO", "STREAM", "s", norm=norm_xinfo_stream))
    assert d[b"length"] == 0 and d[b"first-entry"] is None and d[b"last-entry"] is None
    assert d[b"last-generated-id"] == b"0-0" and d[b"recorded-first-entry-id"] == b"0-0"


def test_xinfo_stream_full(both):
    fill(both, n=4)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">")
    both("XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "STREAMS", "s", ">")
    both("XGROUP", "CREATECONSUMER", "s", "g", "idle-one")
    full = both("XINFO", "STREAM", "s", "FULL", norm=norm_xinfo_stream)
    d = dict(full)
    assert [k for k, _ in full] == [b"length", b"radix-tree-keys", b"radix-tree-nodes", b"last-generated-id",
                                    b"max-deleted-entry-id", b"entries-added", b"recorded-first-entry-id",
                                    b"entries", b"groups"]
    assert d[b"entries"] == entries(1, 2, 3, 4)
    (group,) = d[b"groups"]
    g = dict(group)
    assert [k for k, _ in group] == [b"name", b"last-delivered-id", b"entries-read", b"lag", b"pel-count",
                                     b"pending", b"consumers"]
    assert g[b"name"] == b"g" and g[b"last-delivered-id"] == b"3-0" and g[b"entries-read"] == 3
    assert g[b"lag"] == 1 and g[b"pel-count"] == 3
    assert g[b"pending"] == [[b"1-0", b"alice", "time", 1], [b"2-0", b"alice", "time", 1],
                             [b"3-0", b"bob", "time", 1]]
    names = [dict(c)[b"name"] for c in g[b"consumers"]]
    assert names == [b"alice", b"bob", b"idle-one"]
    alice = dict(g[b"consumers"][0])
    assert alice[b"pel-count"] == 2 and alice[b"pending"] == [[b"1-0", "time", 1], [b"2-0", "time", 1]]
    assert dict(g[b"consumers"][2])[b"pending"] == []
    # COUNT limits the entries and the PEL entries listed
    d1 = dict(both("XINFO", "STREAM", "s", "FULL", "COUNT", "1", norm=norm_xinfo_stream))
    assert d1[b"entries"] == entries(1)
    assert dict(d1[b"groups"][0])[b"pending"] == [[b"1-0", b"alice", "time", 1]]


def test_xinfo_stream_full_times_are_plausible(both):
    fill(both, n=1)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
    for client in (both.oracle, both.target):
        now = int(time.time() * 1000)
        full = dict(_fields(call(client, "XINFO", "STREAM", "s", "FULL")))
        group = dict(_fields(full[b"groups"][0]))
        delivery = group[b"pending"][0][2]
        seen = dict(_fields(group[b"consumers"][0]))[b"seen-time"]
        assert abs(delivery - now) < 60_000 and abs(seen - now) < 60_000, (delivery, seen, now)


def test_xinfo_groups(both):
    fill(both, n=5)
    both("XGROUP", "CREATE", "s", "g1", "0")
    both("XGROUP", "CREATE", "s", "g2", "$")
    both("XREADGROUP", "GROUP", "g1", "a", "COUNT", "2", "STREAMS", "s", ">")
    both("XREADGROUP", "GROUP", "g1", "b", "COUNT", "1", "STREAMS", "s", ">")
    both("XACK", "s", "g1", "1-0")
    assert both("XINFO", "GROUPS", "s") == [
        [b"name", b"g1", b"consumers", 2, b"pending", 2, b"last-delivered-id", b"3-0", b"entries-read", 3,
         b"lag", 2],
        [b"name", b"g2", b"consumers", 0, b"pending", 0, b"last-delivered-id", b"5-0", b"entries-read", None,
         b"lag", 0],
    ]
    both("XDEL", "s", "4-0")
    both("XINFO", "GROUPS", "s")    # the lag after a deletion in the unread part


def test_xinfo_consumers(both):
    fill(both, n=3)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">")
    both("XGROUP", "CREATECONSUMER", "s", "g", "bob")
    r = both("XINFO", "CONSUMERS", "s", "g", norm=norm_xinfo_consumers)
    assert [[(k, v) for k, v in c if k not in TIME_FIELDS] for c in r] == [
        [(b"name", b"alice"), (b"pending", 2)], [(b"name", b"bob"), (b"pending", 0)]]
    assert [k for k, _ in r[0]][:2] == [b"name", b"pending"]


@pytest.mark.parametrize("args,error", [
    (("STREAM", "nokey"), "ERR no such key"),
    (("GROUPS", "nokey"), "ERR no such key"),
    (("CONSUMERS", "nokey", "g"), "ERR no such key"),
    (("CONSUMERS", "s", "nog"), "NOGROUP No such consumer group 'nog' for key name 's'"),
    (("STREAM", "s", "FOO"), "ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP."),
    (("STREAM", "s", "FULL", "FOO", "1"), "ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try "
                                          "XINFO HELP."),
    (("STREAM", "s", "FULL", "COUNT", "x"), NOT_INT),
    (("STREAM", "str"), WRONGTYPE),
    (("GROUPS", "str"), WRONGTYPE),
    (("FOO",), "ERR unknown subcommand 'FOO'. Try XINFO HELP."),
    (("STREAM",), "ERR wrong number of arguments for 'xinfo|stream' command"),
])
def test_xinfo_errors(both, args, error):
    fill(both, n=1)
    both("SET", "str", "v")
    assert both.err("XINFO", *args) == error


def test_xinfo_resp3_maps(both3):
    both3("XADD", "s", "1-0", "f", "v")
    both3("XGROUP", "CREATE", "s", "g", "0")
    assert both3("XINFO", "GROUPS", "s") == [{b"name": b"g", b"consumers": 0, b"pending": 0,
                                              b"last-delivered-id": b"0-0", b"entries-read": None, b"lag": 1}]
    r = call(both3.target, "XINFO", "STREAM", "s")
    assert isinstance(r, dict) and r[b"length"] == 1 and r[b"first-entry"] == [b"1-0", [b"f", b"v"]]


# ---------------------------------------------------------------- generic


STREAM_WRONGTYPE = [
    ("XADD", "k", "1-0", "f", "v"), ("XLEN", "k"), ("XRANGE", "k", "-", "+"), ("XREVRANGE", "k", "+", "-"),
    ("XDEL", "k", "1-0"), ("XTRIM", "k", "MAXLEN", "0"), ("XSETID", "k", "1-0"), ("XREAD", "STREAMS", "k", "0"),
    ("XGROUP", "CREATE", "k", "g", "0"), ("XACK", "k", "g", "1-0"), ("XPENDING", "k", "g"),
    ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "k", ">"), ("XCLAIM", "k", "g", "c", "0", "1-0"),
    ("XAUTOCLAIM", "k", "g", "c", "0", "0"), ("XINFO", "STREAM", "k"),
]


@pytest.mark.parametrize("cmd", STREAM_WRONGTYPE, ids=lambda c: c[0])
def test_stream_commands_on_a_list(both, cmd):
    both("RPUSH", "k", "a")
    assert both.err(*cmd) == WRONGTYPE


def test_list_commands_on_a_stream(both):
    both("XADD", "k", "1-0", "f", "v")
    for cmd in [("LPUSH", "k", "a"), ("GET", "k"), ("LLEN", "k"), ("SADD", "k", "m")]:
        assert both.err(*cmd) == WRONGTYPE


def test_stream_key_commands(both):
    fill(both, n=3)
    both("XGROUP", "CREATE", "s", "g", "0")
    both("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">")
    assert both("RENAME", "s", "s2") == b"OK"
    assert both("XRANGE", "s2", "-", "+") == entries(1, 2, 3)
    assert both("XPENDING", "s2", "g") == [1, b"1-0", b"1-0", [[b"c", b"1"]]]
    assert both("COPY", "s2", "s3") == 1
    assert both("XADD", "s3", "9-0", "f", "v") == b"9-0"
    assert both("XLEN", "s2") == 3
    group = [b"name", b"g", b"consumers", 1, b"pending", 1, b"last-delivered-id", b"1-0", b"entries-read", 1]
    assert both("XINFO", "GROUPS", "s2") == [group + [b"lag", 2]]
    assert both("XINFO", "GROUPS", "s3") == [group + [b"lag", 3]]
    assert both("DEL", "s2", "s3") == 2
    assert both("DBSIZE") == 0


def test_streams_in_transaction(both):
    both("MULTI")
    for c in [("XADD", "s", "1-0", "a", "1"), ("XADD", "s", "1-0", "a", "1"), ("XGROUP", "CREATE", "s", "g", "0"),
              ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"), ("XACK", "s", "g", "1-0"), ("XLEN", "s")]:
        assert both(*c) == b"QUEUED"
    assert both("EXEC") == [b"1-0",
                            Err("ERR The ID specified in XADD is equal or smaller than the target stream top item"),
                            b"OK", [[b"s", [[b"1-0", [b"a", b"1"]]]]], 1, 1]
