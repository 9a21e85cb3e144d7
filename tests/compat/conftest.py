"""Fixtures of the compatibility suite.

One real redis-server (the oracle) and one target (syncmesh-replica, or a second
redis-server with SYNCMESH_COMPAT_TARGET=redis) run for the whole session; both
are flushed before every test. Special servers (password, maxmemory) are started
only by the tests that ask for them.
"""

from __future__ import annotations

import time

import pytest

import harness
from harness import Differ, Server, Stats, TARGET_KIND, call, close_client


def pytest_configure(config):
    config.addinivalue_line("markers", "replica_only: behaviour only the syncmesh replica has "
                                       "(skipped when a redis-server stands in for it)")
    if TARGET_KIND not in ("replica", "redis"):
        raise pytest.UsageError(f"SYNCMESH_COMPAT_TARGET must be 'replica' or 'redis', not {TARGET_KIND!r}")


def pytest_report_header(config):
    if TARGET_KIND == "replica":
        where = harness.replica_bin()
        state = "" if where.exists() else "  (MISSING)"
        return f"compat target: syncmesh-replica {where}{state}; oracle: {harness.REDIS_SERVER}"
    return f"compat target: redis-server stand-in ({harness.REDIS_SERVER}); oracle: {harness.REDIS_SERVER}"


def pytest_collection_modifyitems(config, items):
    if TARGET_KIND == "replica":
        return
    skip = pytest.mark.skip(reason="replica-only behaviour; the target is a redis-server stand-in")
    for item in items:
        if "replica_only" in item.keywords:
            item.add_marker(skip)


_CRASHES: list[str] = []
_FLUSH_FALLBACK: list[str] = []


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.write_line(f"compat: target={TARGET_KIND}; differential comparisons made: {Stats.comparisons}, "
                  f"mismatched: {Stats.mismatches}")
    for c in _FLUSH_FALLBACK:
        tr.write_line(f"compat: {c}", red=True)
    for c in _CRASHES:
        tr.write_line(f"compat: TARGET PROCESS DIED: {c}", red=True)


class Cluster:
    def __init__(self, workdir):
        self.workdir = workdir
        self.oracle = Server("redis", "oracle", workdir)
        self.target = Server(TARGET_KIND, "target", workdir)
        self._admin = {}

    def start(self):
        self.oracle.start()
        self.target.start()
        return self

    def stop(self):
        for c in self._admin.values():
            close_client(c)
        self._admin.clear()
        self.target.stop()
        self.oracle.stop()

    def admin(self, server: Server):
        key = (server.name, server.port)
        c = self._admin.get(key)
        if c is None:
            c = self._admin[key] = server.client()
        return c

    def flush(self):
        """Empty both servers. If the target cannot FLUSHALL, restart it instead, so that one
        broken command does not turn into a failure of every test."""
        for server in (self.oracle, self.target):
            ok = False
            for _ in range(2):
                c = self.admin(server)
                if call(c, "FLUSHALL") == b"OK" and call(c, "DBSIZE") == 0:
                    ok = True
                    break
                close_client(c)       # the connection may have been killed by a test: retry once
                self._admin.pop((server.name, server.port), None)
            if not ok:
                if server is self.oracle:
                    raise AssertionError("FLUSHALL failed on redis-server")
                if not _FLUSH_FALLBACK:
                    _FLUSH_FALLBACK.append(f"FLUSHALL/DBSIZE did not work on the target; it is restarted "
                                           f"before each test instead")
                self._admin.pop((server.name, server.port), None)
                server.restart()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("servers")
    c = Cluster(workdir)
    try:
        c.start()
    except RuntimeError as e:
        c.stop()
        pytest.exit(f"cannot start the servers: {e}", returncode=3)
    yield c
    c.stop()


@pytest.fixture(autouse=True)
def _fresh_servers(request, cluster):
    """Both servers alive and empty before each test; a target crash is reported on the test."""
    if not cluster.target.alive():
        _CRASHES.append(f"found dead before {request.node.nodeid}; restarting\n{cluster.target.log_tail(15)}")
        cluster.target.restart()
    if not cluster.oracle.alive():
        cluster.oracle.restart()
    cluster.flush()
    yield
    if not cluster.target.alive():
        time.sleep(0.05)
        tail = cluster.target.log_tail(25)
        _CRASHES.append(f"during {request.node.nodeid}\n{tail}")
        pytest.fail(f"the target process died during this test:\n{tail}", pytrace=False)


@pytest.fixture
def both(cluster):
    """Differential helper on fresh RESP2 connections: both("SET", "k", "v")."""
    d = Differ(cluster.oracle, cluster.target)
    yield d
    d.close()


@pytest.fixture
def both3(cluster):
    """Differential helper on fresh RESP3 connections (after HELLO 3)."""
    d = Differ(cluster.oracle, cluster.target, protocol=3)
    yield d
    d.close()


@pytest.fixture
def target(cluster):
    """A plain RESP2 connection to the target only."""
    c = cluster.target.client()
    yield c
    close_client(c)


@pytest.fixture
def oracle(cluster):
    c = cluster.oracle.client()
    yield c
    close_client(c)


@pytest.fixture
def servers(cluster):
    """(oracle Server, target Server)."""
    return cluster.oracle, cluster.target


@pytest.fixture
def is_replica():
    return TARGET_KIND == "replica"


@pytest.fixture(scope="session")
def auth_cluster(tmp_path_factory):
    """A second pair of servers started with a password (--requirepass)."""
    workdir = tmp_path_factory.mktemp("auth")
    oracle = Server("redis", "oracle-auth", workdir, password=harness.PASSWORD)
    target = Server(TARGET_KIND, "target-auth", workdir, password=harness.PASSWORD)
    try:
        oracle.start()
        target.start()
    except RuntimeError as e:
        oracle.stop()
        target.stop()
        pytest.fail(str(e), pytrace=False)
    yield oracle, target
    target.stop()
    oracle.stop()


@pytest.fixture(scope="module")
def maxmemory_servers(tmp_path_factory):
    """An oracle and a target, each started with --maxmemory 2000000."""
    workdir = tmp_path_factory.mktemp("maxmemory")
    oracle = Server("redis", "oracle-maxmem", workdir, maxmemory=2_000_000)
    target = Server(TARGET_KIND, "target-maxmem", workdir, maxmemory=2_000_000)
    try:
        oracle.start()
        target.start()
    except RuntimeError as e:
        oracle.stop()
        target.stop()
        pytest.fail(str(e), pytrace=False)
    yield {"redis-server": oracle, "target": target}
    target.stop()
    oracle.stop()
