"""HyperLogLog: PFADD PFCOUNT PFMERGE.

The replica need not be byte-compatible with Redis's HLL encoding, so the raw value of an
HLL key is never compared; counts are compared exactly only where any correct HLL is exact
(a handful of elements) and otherwise checked for accuracy.
"""

import pytest

from harness import Err, call


def scenario(*cmds):
    return pytest.param(cmds, id=" | ".join(" ".join(str(a) for a in c)[:40] for c in cmds[-2:]))


HLL_SCENARIOS = [
    scenario(("PFADD", "h", "a", "b", "c"), ("PFADD", "h", "a"), ("PFADD", "h", "d"), ("PFCOUNT", "h")),
    scenario(("PFADD", "h"), ("EXISTS", "h"), ("PFADD", "h"), ("PFCOUNT", "h"), ("TYPE", "h")),
    scenario(("PFADD", "h", "a", "a", "a"), ("PFCOUNT", "h")),
    scenario(("PFADD", "h", ""), ("PFCOUNT", "h")),
    scenario(("PFCOUNT", "nokey"), ("EXISTS", "nokey")),
    scenario(("PFCOUNT", "nokey", "nokey2")),
    scenario(("PFADD", "h1", "a", "b"), ("PFADD", "h2", "b", "c"), ("PFCOUNT", "h1", "h2"), ("PFCOUNT", "h1", "nokey"),
             ("PFCOUNT", "h1", "h1")),
    scenario(("PFADD", "h1", "a", "b"), ("PFADD", "h2", "b", "c"), ("PFMERGE", "d", "h1", "h2"), ("PFCOUNT", "d"),
             ("TYPE", "d")),
    scenario(("PFADD", "h1", "a", "b"), ("PFMERGE", "h1", "nokey"), ("PFCOUNT", "h1")),
    scenario(("PFMERGE", "d"), ("EXISTS", "d"), ("PFCOUNT", "d")),
    scenario(("PFMERGE", "d", "nokey"), ("EXISTS", "d"), ("PFCOUNT", "d")),
    scenario(("PFADD", "h1", "x"), ("PFMERGE", "h1", "h1"), ("PFCOUNT", "h1")),
    scenario(("PFADD", "d", "a"), ("PFADD", "h", "b"), ("PFMERGE", "d", "h"), ("PFCOUNT", "d")),
    scenario(("PFADD", "h", "a"), ("DEL", "h"), ("PFCOUNT", "h"), ("PFADD", "h", "b"), ("PFCOUNT", "h")),
    scenario(("PFADD", "h", "a"), ("EXPIRE", "h", "100"), ("PFADD", "h", "b"), ("TTL", "h")),
    scenario(("PFADD", "h", "a"), ("COPY", "h", "h2"), ("PFADD", "h2", "b"), ("PFCOUNT", "h"), ("PFCOUNT", "h2")),
    scenario(("PFADD", "h", "a"), ("RENAME", "h", "h2"), ("PFCOUNT", "h2")),
    # errors
    scenario(("SET", "s", "not an hll"), ("PFADD", "s", "a")),
    scenario(("SET", "s", "not an hll"), ("PFCOUNT", "s")),
    scenario(("SET", "s", "not an hll"), ("PFMERGE", "d", "s")),
    scenario(("SET", "s", "not an hll"), ("PFADD", "h", "a"), ("PFMERGE", "s", "h")),
    scenario(("SET", "s", ""), ("PFCOUNT", "s")),
    scenario(("SADD", "s", "a"), ("PFADD", "s", "a")),
    scenario(("SADD", "s", "a"), ("PFCOUNT", "s")),
    scenario(("HSET", "s", "f", "v"), ("PFADD", "h", "a"), ("PFCOUNT", "h", "s")),
    scenario(("ZADD", "s", "1", "a"), ("PFMERGE", "d", "s")),
    scenario(("ZADD", "s", "1", "a"), ("PFADD", "h", "a"), ("PFMERGE", "s", "h")),
    scenario(("PFADD",)),
    scenario(("PFCOUNT",)),
    scenario(("PFMERGE",)),
]


@pytest.mark.parametrize("cmds", HLL_SCENARIOS)
def test_hll(both, cmds):
    both.seq(*cmds)


def test_hll_small_counts_exact(both):
    for n in range(1, 11):
        both("PFADD", "h", f"element-{n}")
        assert both("PFCOUNT", "h") == n


def test_hll_pfadd_reports_change(both):
    """PFADD answers 1 only when a register changed: re-adding known elements answers 0."""
    both("PFADD", "h", *[f"e{i}" for i in range(50)])
    assert both("PFADD", "h", *[f"e{i}" for i in range(50)]) == 0
    assert both("PFADD", "h", "e7") == 0


def _fill(client, key, start, stop, batch=1000):
    p = client.pipeline(transaction=False)
    for lo in range(start, stop, batch):
        p.execute_command("PFADD", key, *[f"item:{i}" for i in range(lo, min(stop, lo + batch))])
    p.execute()


@pytest.mark.parametrize("which", ["redis-server", "target"])
def test_hll_accuracy_100k(servers, which):
    server = servers[0] if which == "redis-server" else servers[1]
    c = server.client()
    try:
        _fill(c, "hll", 0, 100_000)
        n = call(c, "PFCOUNT", "hll")
        assert isinstance(n, int)
        assert abs(n - 100_000) <= 2_000, f"{which}: PFCOUNT {n} for 100000 distinct elements"
        # re-adding the same elements changes nothing
        _fill(c, "hll", 0, 100_000, batch=5000)
        assert call(c, "PFCOUNT", "hll") == n
    finally:
        c.close()


@pytest.mark.parametrize("which", ["redis-server", "target"])
def test_hll_union_accuracy(servers, which):
    server = servers[0] if which == "redis-server" else servers[1]
    c = server.client()
    try:
        _fill(c, "a", 0, 60_000)
        _fill(c, "b", 30_000, 90_000)          # union: 90000 distinct
        union = call(c, "PFCOUNT", "a", "b")
        assert abs(union - 90_000) <= 1_800, (which, union)
        assert call(c, "PFMERGE", "m", "a", "b") == b"OK"
        merged = call(c, "PFCOUNT", "m")
        assert abs(merged - 90_000) <= 1_800, (which, merged)
        assert merged == union                 # merging is the same register-wise maximum
        assert call(c, "PFCOUNT", "a", "b", "m") == union
    finally:
        c.close()


@pytest.mark.parametrize("n", [100, 1000, 10_000])
def test_hll_medium_counts_close(servers, n):
    for server in servers:
        c = server.client()
        try:
            _fill(c, "h", 0, n)
            got = call(c, "PFCOUNT", "h")
            assert abs(got - n) <= max(2, n * 0.02), (server.name, n, got)
        finally:
            c.close()
