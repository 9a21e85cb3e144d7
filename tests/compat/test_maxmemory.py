"""maxmemory: a server started with --maxmemory 2000000 refuses writes with -OOM once full,
while reads and deletes keep working. Run against redis-server too, to validate the test."""

import pytest

from harness import Err, call, close_client

VALUE = b"v" * 1024


def _fill_until_oom(c, limit=20_000):
    """SET 1 KB values until a write fails; return (number written, the error)."""
    for i in range(limit):
        r = call(c, "SET", f"fill:{i:06d}", VALUE)
        if isinstance(r, Err):
            return i, r
        assert r == b"OK", r
    return limit, None


@pytest.fixture(params=["redis-server", "target"])
def full_server(request, maxmemory_servers):
    server = maxmemory_servers[request.param]
    c = server.client()
    call(c, "FLUSHALL")
    written, err = _fill_until_oom(c)
    yield request.param, c, written, err
    call(c, "FLUSHALL")
    close_client(c)


def test_writes_fail_with_oom(full_server):
    name, c, written, err = full_server
    assert err is not None, f"{name}: 20000 x 1 KB writes accepted with --maxmemory 2000000"
    assert err.msg.startswith("OOM"), f"{name}: {err.msg!r}"
    assert written > 100, f"{name}: refused writes after only {written} keys"
    assert written < 2000, f"{name}: accepted {written} KB of values with a 2 MB limit"


def test_reads_work_when_full(full_server):
    name, c, written, err = full_server
    assert call(c, "GET", "fill:000000") == VALUE
    assert call(c, "EXISTS", "fill:000001") == 1
    assert call(c, "DBSIZE") == written
    assert call(c, "STRLEN", "fill:000002") == len(VALUE)
    assert call(c, "PING") == b"PONG"
    assert isinstance(call(c, "SCAN", "0"), list)


WRITES = {
    "SET": lambda i: ("SET", f"new:{i}", "x" * 64),
    "HSET": lambda i: ("HSET", "nh", f"f{i}", "v" * 64),
    "SADD": lambda i: ("SADD", "ns", f"member-{i:08d}-" + "m" * 48),
    "ZADD": lambda i: ("ZADD", "nz", str(i), f"member-{i:08d}-" + "m" * 48),
    "PFADD": lambda i: ("PFADD", f"np:{i}", "a"),
    "APPEND": lambda i: ("APPEND", "fill:000000", "x" * 256),
    "MSET": lambda i: ("MSET", f"ma:{i}", "1" * 64, f"mb:{i}", "2" * 64),
    "INCR": lambda i: ("INCR", f"counter:{i}"),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_other_writes_refused_when_full(full_server, kind):
    """Once at the limit, every kind of write soon fails with OOM (a little slack is allowed:
    the limit is on total used memory, so a small write may still fit)."""
    name, c, written, err = full_server
    make = WRITES[kind]
    for i in range(400):
        r = call(c, *make(i))
        if isinstance(r, Err):
            assert r.msg.startswith("OOM"), f"{name}: {make(i)} -> {r!r}"
            return
    pytest.fail(f"{name}: 400 more {kind} writes accepted after the first OOM")


def test_delete_works_when_full_and_frees_memory(full_server):
    name, c, written, err = full_server
    assert call(c, "DEL", "fill:000000") == 1
    assert call(c, "GET", "fill:000000") is None
    assert call(c, "UNLINK", "fill:000001", "fill:000002") == 2
    # deleting most keys makes room for new writes again
    p = c.pipeline(transaction=False)
    for i in range(3, written):
        p.execute_command("DEL", f"fill:{i:06d}")
    p.execute()
    assert call(c, "DBSIZE") == 0
    r = call(c, "SET", "again", VALUE)
    assert r == b"OK", f"{name}: write still refused after deleting everything: {r!r}"


def test_oom_inside_transaction(full_server):
    name, c, written, err = full_server
    assert isinstance(call(c, "SET", "probe", VALUE), Err)   # still full for a 1 KB write
    assert call(c, "MULTI") == b"OK"
    r = call(c, "SET", "tx", VALUE)
    # redis-server refuses at queue time (and EXEC then fails with EXECABORT)
    if isinstance(r, Err):
        assert r.msg.startswith("OOM"), r
        e = call(c, "EXEC")
        assert isinstance(e, Err) and e.msg.startswith("EXECABORT"), e
    else:
        assert r == b"QUEUED"
        res = call(c, "EXEC")
        assert isinstance(res, (list, Err))
    assert call(c, "EXISTS", "tx") == 0


def _metric(server, name):
    status, body, _ = server.http("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


def test_metrics_count_oom_rejections(maxmemory_servers):
    """The replica's /metrics counts the writes refused with -OOM (the chart's alert reads it)
    and shows the limit."""
    server = maxmemory_servers["target"]
    if not server.is_replica:
        pytest.skip("the admin port is the replica's")
    c = server.client()
    call(c, "FLUSHALL")
    before = _metric(server, "syncmesh_oom_rejections_total")
    _, err = _fill_until_oom(c)
    assert err is not None
    refused = sum(isinstance(call(c, "SET", f"more:{i}", VALUE), Err) for i in range(5))
    assert _metric(server, "syncmesh_oom_rejections_total") - before == 1 + refused
    assert _metric(server, "syncmesh_maxmemory_bytes") == 2_000_000
    call(c, "FLUSHALL")
    close_client(c)
