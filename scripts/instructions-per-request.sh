#!/usr/bin/env bash
# Counts the user-space instructions lmlb executes per forwarded request, under callgrind.
#
# Unlike requests per second, the count hardly changes between runs on a busy machine, so it
# shows the effect of a code change that a throughput run would lose in noise. The simulator
# runs in instant mode, and 8 keep-alive connections send small non-streaming chat requests:
# 400 to warm up, then callgrind's counters are zeroed and 4,000 more are counted.
#
# Usage: bash scripts/instructions-per-request.sh [LMLB_BINARY]
# Needs valgrind (Debian package `valgrind`) and python3. Everything runs on 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/.."
binary=${1:-}
if [[ -z "$binary" ]]; then
    cargo build --release -p lmlb -p lmstudio-sim >&2
    binary=target/release/lmlb
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    for _ in $(seq 100); do
        python3 -c "import urllib.request; urllib.request.urlopen('$1', timeout=1)" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "no response from $1" >&2
    exit 1
}

sim_port=$(free_port)
target/release/lmstudio-sim --port "$sim_port" --tokens-per-second 0 --ttft-ms 0 \
    --model "qwen2.5-7b-instruct,instances=1,parallel=64" >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$sim_port/v1/models"

lmlb_port=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" "$binary" \
    --port "$lmlb_port" --log-level warn --upstream "http://127.0.0.1:$sim_port" >"$work/lmlb.log" 2>&1 &
lmlb_pid=$!
pids+=("$lmlb_pid")
wait_for "http://127.0.0.1:$lmlb_port/health"

send() {
    python3 - "$1" "$lmlb_port" <<'EOF'
import http.client, sys, threading
total, port = int(sys.argv[1]), int(sys.argv[2])
body = '{"model":"qwen2.5-7b-instruct","messages":[{"role":"user","content":"Say hello to the load balancer"}],"max_tokens":16}'
def worker(count):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(count):
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
threads = [threading.Thread(target=worker, args=(total // 8,)) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
EOF
}

send 400
callgrind_control -z "$lmlb_pid" >/dev/null 2>&1
send 4000
callgrind_control -d "$lmlb_pid" >/dev/null 2>&1
sleep 1

total=$(grep -h '^totals:\|^summary:' "$work"/callgrind.*.* | awk '{print $2}' | sort -n | tail -1)
python3 -c "print(f'lmlb: {$total / 4000:,.0f} instructions per request ({$total:,} for 4,000 requests)')"
