"""Replica-only commands: SYNCMESH.DIGEST, SYNCMESH.PEERS and the INFO # Mesh section.

SYNCMESH.DIGEST must be equal for two keyspaces iff their visible contents are equal
(keys, types, values, expiry deadlines), whatever order the writes happened in.
"""

import pytest

from harness import Err, call

pytestmark = pytest.mark.replica_only

FAR_MS = 33177117420000


def digest(c):
    d = call(c, "SYNCMESH.DIGEST")
    assert isinstance(d, bytes) and d, f"SYNCMESH.DIGEST answered {d!r}"
    return d


def digest_of(c, writes):
    call(c, "FLUSHALL")
    for w in writes:
        r = call(c, *w)
        assert not isinstance(r, Err), (w, r)
    return digest(c)


def test_digest_is_stable(target):
    empty = digest(target)
    assert digest(target) == empty
    call(target, "SET", "a", "1")
    d = digest(target)
    assert d == digest(target)
    assert d != empty


def test_digest_empty_after_delete(target):
    empty = digest(target)
    call(target, "SET", "a", "1")
    call(target, "HSET", "h", "f", "v")
    call(target, "DEL", "a", "h")
    assert digest(target) == empty        # tombstones are not part of the visible keyspace
    call(target, "SADD", "s", "m")
    call(target, "FLUSHALL")
    assert digest(target) == empty


DIFFERENT = [
    ([("SET", "k", "v1")], [("SET", "k", "v2")]),
    ([("SET", "k", "v")], [("SET", "k2", "v")]),
    ([("SET", "k", "1")], [("SADD", "k", "1")]),
    ([("HSET", "k", "f", "v")], [("HSET", "k", "f", "w")]),
    ([("HSET", "k", "f", "v")], [("HSET", "k", "g", "v")]),
    ([("SADD", "k", "a")], [("SADD", "k", "a", "b")]),
    ([("ZADD", "k", "1", "a")], [("ZADD", "k", "2", "a")]),
    ([("ZADD", "k", "1", "a")], [("SADD", "k", "a")]),
    ([("SET", "k", "v")], [("SET", "k", "v"), ("SET", "extra", "x")]),
    ([("SET", "k", "v", "PXAT", str(FAR_MS))], [("SET", "k", "v", "PXAT", str(FAR_MS + 1000))]),
    ([("SET", "k", "v", "PXAT", str(FAR_MS))], [("SET", "k", "v")]),
    ([("PFADD", "k", "a")], [("PFADD", "k", "b")]),
    ([("SET", "k", "v")], [("SELECT", "1"), ("SET", "k", "v")]),
    ([("SET", "k", "")], []),
    ([("SET", "ab", "c")], [("SET", "a", "bc")]),
    ([("HSET", "k", "ab", "c")], [("HSET", "k", "a", "bc")]),
]


@pytest.mark.parametrize("a,b", DIFFERENT, ids=lambda x: " ; ".join(" ".join(c) for c in x)[:50])
def test_digest_differs_for_different_data(target, a, b):
    assert digest_of(target, a) != digest_of(target, b)


SAME = [
    ([("SET", "a", "1"), ("SET", "b", "2")], [("SET", "b", "2"), ("SET", "a", "1")]),
    ([("HSET", "h", "a", "1", "b", "2")], [("HSET", "h", "b", "2"), ("HSET", "h", "a", "1")]),
    ([("SADD", "s", "x", "y", "z")], [("SADD", "s", "z"), ("SADD", "s", "y", "x")]),
    ([("ZADD", "z", "1", "a", "2", "b")], [("ZADD", "z", "2", "b"), ("ZADD", "z", "5", "a"), ("ZADD", "z", "1", "a")]),
    ([("SET", "k", "final")], [("SET", "k", "first"), ("DEL", "k"), ("SET", "k", "final")]),
    ([("SET", "k", "v", "PXAT", str(FAR_MS))], [("SET", "k", "v"), ("PEXPIREAT", "k", str(FAR_MS))]),
    ([("SADD", "s", "a")], [("SADD", "s", "a", "b"), ("SREM", "s", "b")]),
    ([("HSET", "h", "a", "1")], [("HSET", "h", "a", "1", "b", "2"), ("HDEL", "h", "b")]),
    ([("SET", "c", "5")], [("INCRBY", "c", "2"), ("INCRBY", "c", "3")]),
    ([("SET", "c", "5")], [("SET", "c", "100"), ("SET", "c", "5")]),
    ([("PFADD", "p", "a", "b")], [("PFADD", "p", "b"), ("PFADD", "p", "a")]),
    ([("SET", "k", "v")], [("SET", "k", "v", "EX", "100"), ("PERSIST", "k")]),
    ([("MSET", "a", "1", "b", "2", "c", "3")], [("SET", "c", "3"), ("SET", "a", "1"), ("SET", "b", "2")]),
]


@pytest.mark.parametrize("a,b", SAME, ids=lambda x: " ; ".join(" ".join(c) for c in x)[:50])
def test_digest_same_data_any_order(target, a, b):
    assert digest_of(target, a) == digest_of(target, b)


def test_digest_big_dataset_order_independent(target):
    writes = [("SET", f"k{i}", f"v{i}") for i in range(300)] + \
             [("HSET", "h", f"f{i}", str(i)) for i in range(100)] + \
             [("ZADD", "z", str(i * 1.5), f"m{i}") for i in range(100)]
    d1 = digest_of(target, writes)
    d2 = digest_of(target, list(reversed(writes)))
    assert d1 == d2


def test_digest_changes_after_expiry(target):
    call(target, "SET", "persist", "v")
    base = digest(target)
    call(target, "SET", "short", "v", "PX", "50")
    assert digest(target) != base
    import time
    time.sleep(0.2)
    assert digest(target) == base         # an expired key is no longer visible


def test_digest_arity(target):
    r = call(target, "SYNCMESH.DIGEST", "extra")
    assert isinstance(r, Err) and r.msg.startswith("ERR"), r


def test_peers_returns_array(target):
    r = call(target, "SYNCMESH.PEERS")
    assert isinstance(r, list), r
    assert r == []          # a lone replica started without --peers


def test_info_mesh_section(target, cluster):
    out = call(target, "INFO", "mesh")
    assert isinstance(out, bytes)
    text = out.decode()
    assert "# Mesh" in text
    fields = dict(l.split(":", 1) for l in text.split("\r\n") if ":" in l and not l.startswith("#"))
    assert any("id" in k for k in fields), fields
    assert any("peer" in k for k in fields), fields
    assert any("tombstone" in k for k in fields), fields
    assert "# Mesh" in call(target, "INFO").decode()
    assert "# Mesh" in call(target, "INFO", "all").decode() or "# Mesh" in call(target, "INFO", "everything").decode()


def test_info_mesh_not_in_redis(oracle):
    """Sanity of the oracle: redis-server has no # Mesh section."""
    assert b"# Mesh" not in call(oracle, "INFO")


def test_syncmesh_commands_in_command_table(target):
    names = {n.lower() for n in call(target, "COMMAND", "LIST")}
    assert b"syncmesh.digest" in names and b"syncmesh.peers" in names
