"""The replica's admin HTTP port: /healthz /readyz /metrics /status (replica only)."""

import json
import re

import pytest

from harness import call

pytestmark = pytest.mark.replica_only

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')


@pytest.fixture
def replica(cluster):
    return cluster.target


def _metrics(replica):
    status, body, headers = replica.http("/metrics")
    assert status == 200
    return body.decode(), headers


def test_healthz(replica):
    status, body, _ = replica.http("/healthz")
    assert status == 200


def test_readyz(replica):
    status, body, _ = replica.http("/readyz")
    assert status == 200, body


def test_unknown_path_is_404(replica):
    status, _, _ = replica.http("/no-such-page")
    assert status == 404


def test_metrics_is_prometheus_text(replica):
    text, headers = _metrics(replica)
    assert headers.get("Content-Type", "").startswith("text/plain"), headers.get("Content-Type")
    samples = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line) or line.startswith("# "), line
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        value = m.group(3)
        assert value in ("+Inf", "-Inf", "NaN") or re.match(r"^-?[0-9.eE+-]+$", value), line
        samples += 1
    assert samples > 0
    assert re.search(r"^# TYPE syncmesh_\w+ (counter|gauge|histogram|summary)$", text, re.M)


def _names(text):
    return {m.group(1) for m in (SAMPLE.match(l) for l in text.splitlines() if l and not l.startswith("#")) if m}


def test_metrics_names(replica, target):
    for _ in range(5):
        call(target, "SET", "metric-key", "v")
        call(target, "GET", "metric-key")
    text, _ = _metrics(replica)
    names = _names(text)
    ours = {n for n in names if n.startswith("syncmesh_")}
    assert ours, "no syncmesh_ metrics"
    # commands counted by name
    assert re.search(r'^syncmesh_\w+\{[^}]*="(get|GET)"[^}]*\}\s+\d', text, re.M), "no per-command metric for GET"
    # a latency histogram
    assert any(n.endswith("_bucket") for n in ours), "no histogram (_bucket) metric"
    assert re.search(r'^syncmesh_\w*(latency|duration)\w*_bucket\{[^}]*le="', text, re.M), "no latency histogram"
    # connections, keys, memory
    assert any("connection" in n or "client" in n for n in ours), sorted(ours)
    assert any("key" in n for n in ours), sorted(ours)
    assert any("memory" in n or "bytes" in n for n in ours), sorted(ours)


def test_metrics_command_counter_increases(replica, target):
    def count_get(text):
        total = 0.0
        for line in text.splitlines():
            if line.startswith("syncmesh_") and re.search(r'="(get|GET)"', line) and "_bucket" not in line \
                    and "_sum" not in line and ("total" in line.split("{")[0] or "_count" in line.split("{")[0]):
                total = max(total, float(line.rsplit(" ", 1)[1]))
        return total
    before = count_get(_metrics(replica)[0])
    for _ in range(10):
        call(target, "GET", "x")
    after = count_get(_metrics(replica)[0])
    assert after >= before + 10, (before, after)


def test_metrics_keys_gauge_tracks_dataset(replica, target):
    p = target.pipeline(transaction=False)
    for i in range(123):
        p.execute_command("SET", f"gauge:{i}", "v")
    p.execute()
    text, _ = _metrics(replica)
    values = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith("syncmesh_") and "key" in l.split("{")[0].split(" ")[0] and not l.startswith("#")]
    assert 123 in [int(v) for v in values], f"no keys metric equal to 123 in {values}"


def test_status_json(replica):
    status, body, headers = replica.http("/status")
    assert status == 200
    doc = json.loads(body)
    assert isinstance(doc, dict)
    keys = {k.lower().replace("-", "_") for k in doc}
    assert keys & {"replica_id", "replicaid", "id"}, sorted(doc)
    rid = next(doc[k] for k in doc if k.lower().replace("-", "_") in ("replica_id", "replicaid", "id"))
    assert isinstance(rid, (str, int)) and str(rid)
    assert "database" in keys, sorted(doc)
    assert "peers" in keys and isinstance(doc[next(k for k in doc if k.lower() == "peers")], list), sorted(doc)
    assert any("vector" in k or k in ("vv",) for k in keys), f"no version vector in {sorted(doc)}"


def test_status_replica_id_matches_info(replica, target):
    status, body, _ = replica.http("/status")
    doc = json.loads(body)
    rid = str(next(doc[k] for k in doc if k.lower().replace("-", "_") in ("replica_id", "replicaid", "id")))
    info = call(target, "INFO", "mesh").decode()
    assert rid in info, f"replica id {rid!r} not in INFO mesh:\n{info}"
