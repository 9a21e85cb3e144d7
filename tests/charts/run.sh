#!/usr/bin/env bash
# The Helm chart's monitoring (suite `charts` of tests/run-all.sh): renders charts/syncmesh with
# helm, checks that nothing monitoring-related renders unless enabled, lints it, checks the
# PrometheusRule and every dashboard query with promtool, runs the rules' unit tests
# (tests/charts/rules_test.yaml) on made-up series, and checks every metric name the rules and
# the dashboard use against the /metrics of two live replicas (tests/charts/metric_names.py;
# the operator's names are checked against a live operator by the `operator` suite).
# helm and promtool are built from their Go modules and cached by tests/k8s/cluster.sh.
#
#   bash tests/charts/run.sh
#
# Ends with "N passed, M failed"; exits non-zero if a check failed. Environment:
# SYNCMESH_REPLICA_BIN (default: $CARGO_TARGET_DIR/debug/syncmesh-replica, built with cargo first).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHART="$ROOT/charts/syncmesh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-charts.XXXXXX")
STARTED_AT=$SECONDS
REPLICA_PIDS=()

TEST_TAG=charts
# shellcheck source=tests/k8s/testlib.sh
source "$ROOT/tests/k8s/testlib.sh"
# shellcheck source=tests/lib/progress.sh
source "$ROOT/tests/lib/progress.sh"

cleanup() {
  local rc=$? pid
  set +e
  for pid in "${REPLICA_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if (( FAILED > 0 || rc != 0 )); then
    for f in "$WORK"/replica-*.log; do [[ -f "$f" ]] && { echo "---- $f"; tail -n 15 "$f"; }; done
  fi
  rm -rf "$WORK"
  finish "$rc"
}
on_exit cleanup

say "building helm and promtool (cached after the first run)"
"$ROOT/tests/k8s/cluster.sh" build --promtool || { fail "cluster.sh build --promtool"; exit 1; }
BIN=$("$ROOT/tests/k8s/cluster.sh" bin)
HELM=$BIN/helm
PROMTOOL=$BIN/promtool
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
REPLICA_BIN=${SYNCMESH_REPLICA_BIN:-$CARGO_TARGET_DIR/debug/syncmesh-replica}
# Built (or found up to date) unless given: a stale binary would lack metrics the chart reads.
if [[ -z "${SYNCMESH_REPLICA_BIN:-}" ]]; then
  PROGRESS_TAG=charts progress "cargo build of syncmesh-replica" \
    cargo build --color never --manifest-path "$ROOT/Cargo.toml" -p syncmesh-replica || exit 1
fi

MONITORING=(--set monitoring.serviceMonitor.enabled=true --set monitoring.podMonitor.enabled=true
  --set monitoring.prometheusRule.enabled=true --set monitoring.grafanaDashboard.enabled=true)

# ------------------------------------------------------------------ rendering
kinds() { "$HELM" template syncmesh "$CHART" --namespace syncmesh-system "$@" | sed -n 's/^kind: //p' | sort | tr '\n' ' '; }
off_by_default() {
  local got; got=$(kinds); echo "kinds: $got"
  [[ "$got" != *ServiceMonitor* && "$got" != *PodMonitor* && "$got" != *PrometheusRule* && "$got" != *"ConfigMap"* ]]
}
check "by default the chart renders no ServiceMonitor, PodMonitor, PrometheusRule or dashboard" off_by_default
each_alone() {
  local part kind
  for part in serviceMonitor:ServiceMonitor podMonitor:PodMonitor prometheusRule:PrometheusRule grafanaDashboard:ConfigMap; do
    kind=${part#*:}
    [[ "$(kinds --set "monitoring.${part%%:*}.enabled=true")" == *"$kind"* ]] || { echo "${part%%:*} did not render a $kind"; return 1; }
  done
}
check "each of them renders when enabled in values" each_alone
check "helm lint --strict with monitoring enabled" "$HELM" lint --strict "$CHART" "${MONITORING[@]}"
bad_interval() {
  local out
  if out=$("$HELM" template t "$CHART" --set monitoring.podMonitor.interval=often 2>&1); then echo "rendered"; return 1; fi
  echo "$out"; grep -q "monitoring/podMonitor/interval" <<<"$out"
}
check "the values schema refuses a bad scrape interval" bad_interval
"$HELM" template syncmesh "$CHART" --namespace syncmesh-system "${MONITORING[@]}" >"$WORK/rendered.yaml" 2>"$WORK/render.err" ||
  { fail "helm template with monitoring enabled" "$(cat "$WORK/render.err")"; exit 1; }
podmonitor() {
  python3 - "$WORK/rendered.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pm = next(d for d in docs if d["kind"] == "PodMonitor")
sm = next(d for d in docs if d["kind"] == "ServiceMonitor")
svc = next(d for d in docs if d["kind"] == "Service")
ep = pm["spec"]["podMetricsEndpoints"][0]
assert pm["spec"]["selector"] == {"matchExpressions": [{"key": "syncmesh.io/member", "operator": "Exists"}]}, pm["spec"]["selector"]
assert pm["spec"]["namespaceSelector"] == {"any": True}
assert ep["port"] == "syncmesh-admin", ep
assert ep["relabelings"][0]["targetLabel"] == "database"
# the ServiceMonitor selects the operator's Service by its labels and scrapes its metrics port
assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
assert any(p["name"] == sm["spec"]["endpoints"][0]["port"] for p in svc["spec"]["ports"])
cm = next(d for d in docs if d["kind"] == "ConfigMap")
assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
print("ok")
EOF
}
check "the monitors select the replicas' admin port and the operator's Service; the dashboard carries the sidecar label" podmonitor
# The webhook's patch (pinned by the golden files) names the admin port as the PodMonitor expects.
admin_port_name() {
  python3 - "$ROOT/operator/tests/golden/plain-pod/patch.json" <<'EOF'
import json, sys
ops = json.load(open(sys.argv[1]))
sidecar = next(op["value"][0] for op in ops if op["path"] == "/spec/initContainers")
assert {"name": "syncmesh-admin", "containerPort": 9379, "protocol": "TCP"} in sidecar["ports"], sidecar["ports"]
EOF
}
check "the injected replica's admin port is named syncmesh-admin" admin_port_name

# ------------------------------------------------------------------ promtool
python3 - "$WORK/rendered.yaml" "$WORK" <<'EOF' || { fail "extracting the rules and the dashboard queries"; exit 1; }
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
rule = next(d for d in docs if d["kind"] == "PrometheusRule")
open(f"{sys.argv[2]}/rules.yaml", "w").write(yaml.safe_dump(rule["spec"], sort_keys=False))
# Every dashboard query as a recording rule, Grafana's variables replaced, so promtool parses it.
dash = json.loads(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["syncmesh.json"])
rules = []
for p in dash["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "1m").replace("$namespace", ".*").replace("$database", ".*")
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId']}", "expr": e})
open(f"{sys.argv[2]}/dashboard-queries.yaml", "w").write(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
print(len(rules))
EOF
check "promtool check rules: the PrometheusRule is valid" "$PROMTOOL" check rules "$WORK/rules.yaml"
check "promtool check rules: every dashboard query parses" "$PROMTOOL" check rules "$WORK/dashboard-queries.yaml"
cp "$HERE/rules_test.yaml" "$WORK/rules_test.yaml"
check "promtool test rules: every alert fires on made-up series as tests/charts/rules_test.yaml says" \
  "$PROMTOOL" test rules "$WORK/rules_test.yaml"
every_alert_tested() {
  local alert missing=()
  for alert in $(sed -n 's/^ *- alert: //p' "$WORK/rules.yaml"); do
    grep -q "alertname: $alert\$" "$HERE/rules_test.yaml" || missing+=("$alert")
  done
  [[ ${#missing[@]} == 0 ]] || { echo "alerts without a test: ${missing[*]}"; return 1; }
}
check "every alert has a unit test" every_alert_tested

# ------------------------------------------------------------------ names against live replicas
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
declare -a ADMIN MESH
for i in 0 1; do MESH[i]=$(free_port); done
peers="127.0.0.1:${MESH[0]},127.0.0.1:${MESH[1]}"
for i in 0 1; do
  ADMIN[i]=$(free_port)
  extra=()
  [[ $i == 0 ]] && extra=(--data-dir "$WORK/data-0" --maxmemory 64mb)
  "$REPLICA_BIN" --bind 127.0.0.1 --port "$(free_port)" --admin-bind 127.0.0.1 --admin-port "${ADMIN[i]}" \
    --mesh-bind 127.0.0.1 --mesh-port "${MESH[i]}" --mesh-insecure --peers "$peers" --database charts \
    "${extra[@]}" >"$WORK/replica-$i.log" 2>&1 &
  REPLICA_PIDS+=($!)
done
meshed() {
  local i
  for i in 0 1; do
    curl -sf "http://127.0.0.1:${ADMIN[i]}/metrics" | grep -q '^syncmesh_mesh_peers_connected 1$' || return 1
  done
}
check "two live replicas (one with --data-dir and --maxmemory) form a mesh" eventually 30 meshed
check "every replica metric the rules and the dashboard use is exported by a live replica" \
  python3 "$HERE/metric_names.py" "$WORK/rendered.yaml" \
    --replica "http://127.0.0.1:${ADMIN[0]}/metrics" --replica "http://127.0.0.1:${ADMIN[1]}/metrics"
