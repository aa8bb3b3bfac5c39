#!/usr/bin/env bash
# Smoke test of the benchmarks: each scenario once with --quick. It checks that
# every component starts, serves and stops; it asserts nothing about timing.
# Peers that are not installed (scripts/bench-setup.sh installs them) are
# reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p lmstudio-sim -p lmlb -p lmlb-bench
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for scenario in overhead streaming scheduling; do
    echo "== lmlb-bench $scenario --quick"
    target/release/lmlb-bench "$scenario" --quick --no-build --json "$out/$scenario.json"
    # Errors count requests that failed; a smoke run must have none.
    if grep -Eq '"errors": [1-9]' "$out/$scenario.json"; then
        echo "bench-smoke: $scenario: some requests failed (see $out/$scenario.json above)" >&2
        cat "$out/$scenario.json" >&2
        exit 1
    fi
done
echo "bench-smoke: all scenarios ran"
