#!/usr/bin/env python3
"""Background write load for bench/mesh.sh: pipelines SETs (12-byte keys `bg:NNNNNNNNN`,
16-byte values) to one server at a steady rate, until SIGTERM/SIGINT or --seconds.

    python3 bench/mesh_load.py --port 6379 --rate 10000 [--seconds 60] [--keys 100000]

Every --tick seconds it sends the SETs that are due by the wall clock since start (so a late
tick catches up, the average rate stays at --rate) in one write, then reads their replies. On
exit it prints one JSON line: sent, ok, errors, seconds, rate (acknowledged SETs per second),
max_batch and late_ticks (ticks that started more than one tick late).
"""

import argparse
import json
import signal
import socket
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--rate", type=float, default=10000)
p.add_argument("--seconds", type=float, default=600)
p.add_argument("--keys", type=int, default=100000)
p.add_argument("--tick", type=float, default=0.005)
args = p.parse_args()

stop = False


def on_signal(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

# pre-encode one SET per key of the key space
cmds = [b"*3\r\n$3\r\nSET\r\n$12\r\nbg:%09d\r\n$16\r\nbgval:%010d\r\n" % (i, i) for i in range(args.keys)]

sent = ok = errors = 0
max_batch = late_ticks = 0
t0 = time.perf_counter()
next_tick = t0
buf = b""
while not stop:
    now = time.perf_counter()
    elapsed = now - t0
    if elapsed >= args.seconds:
        break
    if now - next_tick > args.tick:
        late_ticks += 1
    due = int(args.rate * elapsed) - sent
    if due > 0:
        due = min(due, 5000)
        start = sent % args.keys
        batch = cmds[start:start + due]
        if len(batch) < due:
            batch += cmds[:due - len(batch)]
        try:
            sock.sendall(b"".join(batch))
            # every reply to SET is one line: +OK\r\n or -ERR ...\r\n
            got = 0
            while got < due:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
                lines = buf.split(b"\r\n")
                buf = lines.pop()
                for line in lines:
                    got += 1
                    if line == b"+OK":
                        ok += 1
                    else:
                        errors += 1
        except (OSError, ConnectionError) as e:
            print(json.dumps({"error": str(e)}), file=sys.stderr)
            break
        sent += due
        max_batch = max(max_batch, due)
    next_tick += args.tick
    delay = next_tick - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    else:
        next_tick = time.perf_counter()

secs = time.perf_counter() - t0
print(json.dumps({"sent": sent, "ok": ok, "errors": errors, "seconds": round(secs, 3),
                  "rate": round(ok / secs, 1) if secs > 0 else 0.0, "max_batch": max_batch,
                  "late_ticks": late_ticks}), flush=True)
