#!/usr/bin/env bash
# Install the peers that lmlb-bench compares lmlb with, when they are missing:
# nginx from Debian's packages and the LiteLLM proxy from PyPI in a virtual
# environment under .bench/venv (ignored by git). pip reuses its cache.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so that reruns compare against the same peer. The extra `proxy` of
# 1.110.2 requires `litellm-proxy` and that of 1.108.14 `litellm-proxy-extras`
# 0.4.110.post1, and the package index had neither when this was pinned.
LITELLM_VERSION="1.100.5"
VENV=".bench/venv"

install_nginx() {
    if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
        echo "nginx: present ($(/usr/sbin/nginx -v 2>&1))"
        return
    fi
    echo "nginx: installing from Debian's packages"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null
    # The package starts a system-wide nginx on port 80, but the bench runs its own.
    $sudo service nginx stop >/dev/null 2>&1 || true
}

install_litellm() {
    if [ -x "$VENV/bin/litellm" ] && "$VENV/bin/python" -c "import litellm" 2>/dev/null \
        && [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')" = "$LITELLM_VERSION" ]; then
        echo "litellm: present ($LITELLM_VERSION)"
        return
    fi
    echo "litellm: installing litellm[proxy]==$LITELLM_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
}

install_nginx
if ! install_litellm; then
    # The bench reports LiteLLM as skipped when its executable is missing.
    echo "litellm: installation failed, so the bench will skip it" >&2
fi
