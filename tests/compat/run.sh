#!/usr/bin/env bash
# Run the Redis-compatibility suite: redis-server 7.0 (the oracle) vs syncmesh-replica.
#
#   tests/compat/run.sh [pytest args...]
#
# Environment:
#   SYNCMESH_REPLICA_BIN      replica binary (default: target/debug, else target/release)
#   SYNCMESH_COMPAT_TARGET    "replica" (default) or "redis" (a 2nd redis-server stands in,
#                             to validate the suite itself)
#   SYNCMESH_REDIS_SERVER     redis-server binary (default: from PATH)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
PY="${PYTHON:-python3}"

# install the pinned requirements only when something is missing or has another version
if ! "$PY" - <<'PYEOF' 2>/dev/null
import importlib.metadata as md, pathlib, sys
for line in pathlib.Path("requirements.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, ver = line.partition("==")
    if md.version(name) != ver:
        sys.exit(1)
PYEOF
then
    "$PY" -m pip install -q -r requirements.txt
fi

command -v "${SYNCMESH_REDIS_SERVER:-redis-server}" >/dev/null || {
    echo "redis-server not found (needed as the oracle); install redis-server 7.0" >&2; exit 2; }

exec "$PY" -m pytest -q "$@"
