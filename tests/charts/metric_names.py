#!/usr/bin/env python3
"""Checks that every metric name the chart's alert rules and Grafana dashboard query is one a
live replica or operator really exports.

    metric_names.py RENDERED.yaml [--replica URL]... [--operator URL]... [--pending NAME=WHY]...

RENDERED.yaml is `helm template` of charts/syncmesh with the PrometheusRule and the dashboard
enabled. Names starting with `syncmesh_operator_` are looked up in the /metrics of every
--operator URL, other `syncmesh_` names in every --replica URL; names with a colon must be
recording rules the chart defines. A name given with --pending is one the product is known not
to export yet: it is reported, not failed, and the check fails once it does appear (so the list
does not go stale). With no --operator (or no --replica) URL, those names are not checked.
Prints what it checked; exits 1 on any unknown name.
"""

import argparse
import json
import re
import sys
import urllib.request

import yaml

FUNCTION_OR_KEYWORD = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan", "start", "end",
}
LABEL_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT = re.compile(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label names,
    durations and Grafana variables left out)."""
    e = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|`[^`]*`', '""', expr)   # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                        # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                       # ranges, subqueries
    e = LABEL_CLAUSE.sub(" ", e)
    names = set()
    for m in IDENT.finditer(e):
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue                                                        # a function
        if m.group(0) in FUNCTION_OR_KEYWORD:
            continue
        names.add(m.group(0))
    return names


def grafana_query(query: str) -> str:
    """The PromQL inside a Grafana variable query such as label_values(EXPR, label)."""
    m = re.fullmatch(r"\s*(label_values|query_result)\((.*?)(,\s*[A-Za-z_]\w*)?\)\s*", query, re.S)
    return m.group(2) if m else query


def self_test():
    assert metric_names('sum by (cmd, le) (rate(x_bucket{a="b"}[5m])) > 0') == {"x_bucket"}
    assert metric_names("min by (ns) (a) < count by (ns) (a) - 1") == {"a"}
    assert metric_names("b - time() < 14 * 86400") == {"b"}
    assert metric_names('c{namespace=~"$namespace"} or max by (p) (d) * 0') == {"c", "d"}
    assert metric_names("histogram_quantile(0.99, rate(e[$__rate_interval]))") == {"e"}
    assert metric_names("x:y_z offset 5m and on(a) w") == {"x:y_z", "w"}
    assert metric_names("1e3 * f") == {"f"}
    assert grafana_query('label_values(g{namespace=~"$namespace"}, database)') == 'g{namespace=~"$namespace"}'


def queries(rendered: str):
    """(where, PromQL) of every alert, recording rule and dashboard query; the recording rules'
    names."""
    out, recorded = [], set()
    for doc in yaml.safe_load_all(rendered):
        if not doc:
            continue
        kind = doc.get("kind")
        if kind == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    name = rule.get("alert") or rule.get("record")
                    out.append((f"rule {name}", rule["expr"]))
                    if "record" in rule:
                        recorded.add(rule["record"])
        elif kind == "ConfigMap" and any(k.endswith(".json") for k in doc.get("data", {})):
            for key, text in doc["data"].items():
                dash = json.loads(text)
                panels = list(dash.get("panels", []))
                while panels:
                    p = panels.pop()
                    panels.extend(p.get("panels", []))
                    for t in p.get("targets", []):
                        if t.get("expr"):
                            out.append((f"dashboard {key} panel '{p.get('title')}'", t["expr"]))
                for var in dash.get("templating", {}).get("list", []):
                    q = var.get("query")
                    if var.get("type") == "query":
                        q = q.get("query") if isinstance(q, dict) else q
                        out.append((f"dashboard {key} variable {var['name']}", grafana_query(q)))
    return out, recorded


def exported(urls: list[str]) -> set[str]:
    names = set()
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--replica", action="append", default=[])
    ap.add_argument("--operator", action="append", default=[])
    ap.add_argument("--pending", action="append", default=[], help="NAME=why it is not exported yet")
    args = ap.parse_args()
    self_test()
    pending = dict(p.split("=", 1) for p in args.pending)
    found, recorded = queries(open(args.rendered).read())
    if not found:
        print("no rules or dashboard found in the rendered chart", file=sys.stderr)
        return 1
    replica = exported(args.replica) if args.replica else None
    operator = exported(args.operator) if args.operator else None
    uses: dict[str, list[str]] = {}
    for where, expr in found:
        for name in metric_names(expr):
            uses.setdefault(name, []).append(where)
    failed = 0
    for name in sorted(uses):
        if ":" in name:
            source, ok = "recording rule", name in recorded
        elif name.startswith("syncmesh_operator_"):
            source, have = "operator", operator
            ok = None if have is None else name in have
        elif name.startswith("syncmesh_"):
            source, have = "replica", replica
            ok = None if have is None else name in have
        else:
            source, ok = "unknown source", False
        if ok is None:
            continue
        if name in pending:
            if ok:
                print(f"FAIL {name}: listed as pending ({pending[name]}) but the {source} exports it now")
                failed += 1
            else:
                print(f"pending {name} ({source}): {pending[name]}; used by {', '.join(uses[name])}")
            continue
        if ok:
            print(f"ok   {name} ({source})")
        else:
            print(f"FAIL {name}: not exported by the {source}; used by {', '.join(uses[name])}")
            failed += 1
    checked = [n for n in uses if (":" in n) or (n.startswith("syncmesh_operator_") and operator is not None)
               or (n.startswith("syncmesh_") and not n.startswith("syncmesh_operator_") and replica is not None)]
    print(f"{len(found)} queries, {len(uses)} metric names, {len(checked)} checked, {failed} unknown")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
