#!/usr/bin/env bash
# Smoke test of the benchmarks: each scenario once with --quick. It checks that
# every component starts, serves and stops, and that no request to the
# simulator or through lmlb failed. It asserts nothing about timing. Peers that
# are not installed (scripts/bench-setup.sh installs them) are reported as
# skipped, and their failed requests only print a warning.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p lmstudio-sim -p lmlb -p lmlb-bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for scenario in overhead streaming scheduling; do
    echo "== lmlb-bench $scenario --quick"
    target/release/lmlb-bench "$scenario" --quick --no-build --json "$out/$scenario.json"
    python3 - "$out/$scenario.json" <<'PY'
import json
import sys

failed = False
for record in json.load(open(sys.argv[1])):
    errors = record.get("errors", 0)
    if not errors:
        continue
    name = f"{record['scenario']} {record['target']}"
    if record["target"] in ("direct", "lmlb"):
        print(f"bench-smoke: {name}: {errors} requests failed", file=sys.stderr)
        failed = True
    else:
        print(f"bench-smoke: warning: {name}: {errors} requests failed", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
done
echo "bench-smoke: all scenarios ran"
