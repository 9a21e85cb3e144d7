"""The replica processes of a fault run: one `syncmesh-replica` per host namespace.

A replica binds its client and admin ports on the loopback of its own namespace (as in a pod)
and its mesh port on the host's address. `incarnation` counts its starts (it moves before the new
process exists), so a client can tell which process took a write. A durable replica has a
data directory that survives its restarts (when the binary implements `--data-dir`).
"""

import concurrent.futures
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import redis

from network import enter_netns

CLIENT_PORT = 6379
MESH_PORT = 7379
ADMIN_PORT = 9379
# The mesh listens on the hosts' network addresses without TLS: members prove they know this.
MESH_SECRET = "faults-mesh-secret"


def data_dir_supported(binary):
    """Whether the binary keeps data on disk with --data-dir. Until persistence lands, --help
    says it is not implemented (and the replica only warns); detect that wording."""
    text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    if "--data-dir" not in text:
        return False
    section = text.split("--data-dir", 1)[1].split("\n      --", 1)[0].lower()
    return "not implemented" not in section


def connect(timeout=1.0):
    """A redis-py connection to the replica of the calling thread's namespace, without retries:
    an op whose reply does not come is never sent twice."""
    return redis.Connection(host="127.0.0.1", port=CLIENT_PORT, socket_timeout=timeout,
                            socket_connect_timeout=timeout)


def command(conn, *args):
    conn.send_command(*args)
    return conn.read_response()


class Replica:
    def __init__(self, name, host, binary, run_dir, seeds, retire_after, clock_offset_ms=0,
                 data_dir=None, appendfsync="always"):
        self.name = name
        self.host = host
        self.binary = binary
        self.seeds = seeds
        self.retire_after = retire_after
        self.clock_offset_ms = clock_offset_ms
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.log_path = os.path.join(run_dir, f"{name}.log")
        self.incarnation = 0
        self.proc = None
        self.up = False  # clients may use it
        self.gone = False  # left the mesh for good
        self.born = 0.0  # run time the current process was started (set by the harness)
        self.lock = threading.Lock()  # one start, kill or stop at a time
        self.ident = None  # replica id of the first start (kept across restarts if durable)
        # One thread inside the host namespace for the harness's own queries (digests, reads).
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, initializer=enter_netns, initargs=(host.ns,))

    def argv(self):
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(CLIENT_PORT),
                "--admin-bind", "127.0.0.1", "--admin-port", str(ADMIN_PORT),
                "--mesh-bind", self.host.ip, "--mesh-port", str(MESH_PORT),
                "--advertise-addr", f"{self.host.ip}:{MESH_PORT}",
                "--mesh-insecure", "--mesh-secret", MESH_SECRET, "--database", "faults",
                "--peers", ",".join(self.seeds),
                "--retire-after-secs", str(self.retire_after),
                "--clock-offset-ms", str(self.clock_offset_ms)]
        if self.data_dir:
            args += ["--data-dir", self.data_dir, "--appendfsync", self.appendfsync]
        return args

    def launch(self):
        """Starts the process; wait_ready() waits for /readyz, then clients may set `up`."""
        self.incarnation += 1
        if self.data_dir:
            os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "a")
        log.write(f"\n===== {time.strftime('%H:%M:%S')} incarnation {self.incarnation}: "
                  f"{' '.join(self.argv())}\n")
        log.flush()
        # `ip netns exec` execs the replica in place: the pid is the replica's.
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.host.ns, *self.argv()],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited with {self.proc.returncode} "
                                   f"at start; see {self.log_path}")
            if self.pool.submit(self._ready).result():
                return
            time.sleep(0.05)
        raise RuntimeError(f"replica {self.name} not ready after {timeout}s; see {self.log_path}")

    @staticmethod
    def _ready():
        try:
            c = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=1)
            c.request("GET", "/readyz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def kill(self):
        """kill -9: the process dies at once, with whatever it had not sent or written. Clients
        are not warned: the ops they have in flight fail (indeterminate)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.up = False

    def stop(self):
        """A graceful stop (SIGTERM), as when a pod is deleted."""
        self.up = False
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def query(self, *args, timeout=5.0):
        """Runs one command on this replica from inside its namespace."""
        def run():
            conn = connect(timeout)
            try:
                return command(conn, *args)
            finally:
                conn.disconnect()
        return self.pool.submit(run).result()

    def lie_to(self, liar_binary, key):
        """Runs the lying member against this replica (from inside its host, so that no fault
        of the network stands in its way); returns what each of its steps observed."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.host.ns, liar_binary,
             "--target", f"{self.host.ip}:{MESH_PORT}", "--database", "faults",
             "--secret", MESH_SECRET, "--key", key],
            capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"the lying member failed: {out.stderr.strip()}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def identity(self):
        """The replica id it runs under (INFO mesh)."""
        info = self.query("INFO", "mesh").decode()
        for line in info.splitlines():
            if line.startswith("replica_id:"):
                return line.split(":", 1)[1]
        return None

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
