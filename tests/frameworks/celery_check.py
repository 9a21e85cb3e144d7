"""Celery with the Redis broker and result backend, through two replicas of one mesh: the
producer sends tasks through one replica, a worker (a real `celery worker` process) takes them
from the other, and every result comes back to the producer. The last line is
"celery: N passed, M failed".

    python3 celery_check.py <producer port> <worker port>
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

TASKS = '''
import os
from celery import Celery

app = Celery("tasks", broker=os.environ["BROKER"], backend=os.environ["BROKER"])
app.conf.update(broker_connection_retry_on_startup=True, result_expires=600,
                worker_hijack_root_logger=False, task_acks_late=False)

@app.task
def add(x, y):
    return x + y

@app.task(bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self, key):
    # Fails until it has been tried twice (counted in the worker's own log file).
    path = os.path.join(os.environ["RUNS_DIR"], key)
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        tries = len(f.read())
    if tries < 3:
        raise self.retry(exc=RuntimeError(f"try {tries}"))
    return tries
'''


def main():
    producer_port, worker_port = map(int, sys.argv[1:3])
    work = Path(tempfile.mkdtemp())
    (work / "tasks.py").write_text(TASKS)
    runs = work / "runs"
    runs.mkdir()
    env = dict(os.environ, PYTHONPATH=str(work), RUNS_DIR=str(runs),
               BROKER=f"redis://127.0.0.1:{worker_port}/0")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--concurrency", "2", "--pool", "threads",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=work, env=env, stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"PASS {name}")
        else:
            failed += 1
            print(f"FAIL {name} {detail}")

    try:
        os.environ["BROKER"] = f"redis://127.0.0.1:{producer_port}/0"
        os.environ["RUNS_DIR"] = str(runs)
        sys.path.insert(0, str(work))
        import tasks  # noqa: E402  (the module written above, with the producer's broker)

        results = [tasks.add.delay(i, i) for i in range(40)]
        values = []
        for r in results:
            try:
                values.append(r.get(timeout=60))
            except Exception as e:  # noqa: BLE001
                values.append(repr(e))
        check("celery: 40 tasks sent through one replica run on a worker of the other",
              values == [2 * i for i in range(40)], str(values[:5]))
        states = {r.state for r in results}
        check("celery: every result is SUCCESS in the backend", states == {"SUCCESS"}, str(states))
        r = tasks.flaky.delay("flaky-1")
        try:
            v = r.get(timeout=60)
        except Exception as e:  # noqa: BLE001
            v = repr(e)
        check("celery: a task that fails twice is retried and succeeds", v == 3, str(v))
        rc = worker.poll()
        check("celery: the worker is still running", rc is None, f"exit code {rc}")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        if failed:
            print((work / "worker.log").read_text()[-3000:])
    print(f"celery: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"({time.monotonic() - start:.1f} s)")
    sys.exit(code)
