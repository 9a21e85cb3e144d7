#!/usr/bin/env python3
"""Quantiles of a Prometheus histogram, from metrics text on stdin.

    quantiles.py METRIC [LABEL=VALUE ...]     prints "count=N p50=X p99=Y" (seconds)

Buckets of every series that matches the labels are summed; a quantile is interpolated
linearly inside its bucket, as PromQL's histogram_quantile does.
"""
import re
import sys


def main() -> int:
    metric, wanted = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
    line_re = re.compile(r'^' + re.escape(metric) + r'_bucket\{(.*)\}\s+(\S+)$')
    buckets: dict[float, float] = {}
    for line in sys.stdin:
        m = line_re.match(line.strip())
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if any(labels.get(k) != v for k, v in wanted.items()):
            continue
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        buckets[le] = buckets.get(le, 0.0) + float(m.group(2))
    if not buckets:
        print("count=0")
        return 1
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]

    def quantile(q: float) -> float:
        rank, lower, below = q * total, 0.0, 0.0
        for b in bounds:
            if buckets[b] >= rank:
                if b == float("inf"):
                    return lower
                span = buckets[b] - below
                return lower + (b - lower) * ((rank - below) / span if span else 1.0)
            lower, below = b, buckets[b]
        return bounds[-1]

    print(f"count={int(total)} p50={quantile(0.5):.6f} p99={quantile(0.99):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
