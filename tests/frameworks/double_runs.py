"""How many jobs run twice when one queue has workers on several replicas (pods): BullMQ and
Celery, with a worker on each replica of a three-replica mesh and the producer on the first.
This is a measurement of the CRDT behaviour (pops on two replicas can take the same job; see
docs/semantics.md, "Scripts across pods"), not a pass/fail bar: the checks are that every job
ran at least once. The last line is "double-runs: N passed, M failed".

    python3 double_runs.py <port> <port> <port>
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = int(os.environ.get("DOUBLE_RUN_JOBS", "300"))

TASKS = '''
import os
from celery import Celery

app = Celery("dtasks", broker=os.environ["BROKER"], backend=os.environ["BROKER"])
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                worker_prefetch_multiplier=1)

@app.task
def record(n):
    with open(os.path.join(os.environ["RUNS_DIR"], os.environ["WORKER"]), "a") as f:
        f.write(f"{n}\\n")
    return n
'''


def celery_runs(ports):
    work = Path(tempfile.mkdtemp())
    (work / "dtasks.py").write_text(TASKS)
    runs = work / "runs"
    runs.mkdir()
    workers = []
    for i, port in enumerate(ports):
        env = dict(os.environ, PYTHONPATH=str(work), RUNS_DIR=str(runs), WORKER=f"w{i}",
                   BROKER=f"redis://127.0.0.1:{port}/0")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dtasks", "worker", "--concurrency", "2", "--pool", "threads",
             "--loglevel", "ERROR", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"w{i}@%h"],
            cwd=work, env=env, stdout=open(work / f"w{i}.log", "w"), stderr=subprocess.STDOUT))
    try:
        time.sleep(3)
        os.environ.update(BROKER=f"redis://127.0.0.1:{ports[0]}/0", RUNS_DIR=str(runs), WORKER="producer")
        sys.path.insert(0, str(work))
        import dtasks  # noqa: E402
        for n in range(JOBS):
            dtasks.record.delay(n)
            if n % 10 == 9:
                time.sleep(0.02)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = Counter(int(line) for f in runs.iterdir() for line in f.read_text().split())
            if len(counts) >= JOBS:
                break
            time.sleep(0.2)
        time.sleep(2)
        counts = Counter(int(line) for f in runs.iterdir() for line in f.read_text().split())
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
    return {"framework": "celery", "jobs": JOBS, "ran": len(counts),
            "ran_more_than_once": sum(1 for c in counts.values() if c > 1),
            "extra_runs": sum(c - 1 for c in counts.values())}


def main():
    ports = [int(p) for p in sys.argv[1:]]
    out = subprocess.run(["node", str(HERE / "bullmq_double.mjs"), str(JOBS), *map(str, ports)],
                         capture_output=True, text=True, timeout=240)
    results = []
    try:
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        print(out.stdout, out.stderr)
        results.append({"framework": "bullmq", "jobs": JOBS, "ran": 0})
    results.append(celery_runs(ports))
    passed = failed = 0
    for r in results:
        print(f"{r['framework']}: {r['jobs']} jobs, workers on {len(ports)} replicas: "
              f"{r.get('ran_more_than_once', '?')} ran more than once ({r.get('extra_runs', '?')} extra runs)")
        print("DOUBLE-RUNS " + json.dumps(r))
        if r["ran"] == r["jobs"]:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {r['framework']}: only {r['ran']} of {r['jobs']} jobs ran")
    print(f"double-runs: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
