#!/bin/sh
# run_e2e.sh — the browser test of the web console (meson suite 'e2e').
#
# Installs what the test needs, then runs console_test.mjs:
#   - Debian's chromium (apt) when /usr/bin/chromium is missing; Playwright never
#     downloads a browser of its own (the machine reaches only package registries);
#   - node + npm (apt) when missing, and playwright-core, pinned in package.json,
#     into tests/e2e/node_modules (npm; no lock file is written).
# Usage: run_e2e.sh RUNNELD OUT_DIR   (OUT_DIR receives console.png)
# Prints TAP's "1..0 # SKIP reason" (meson: skipped) when something is missing
# and cannot be installed (the test speaks TAP, where exit 77 would be a failure).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
runneld=${1:?usage: run_e2e.sh RUNNELD OUT_DIR}
out=${2:?usage: run_e2e.sh RUNNELD OUT_DIR}

skip() {
    echo "e2e: $*: skipping" >&2
    echo "1..0 # SKIP $*"
    exit 0
}

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        skip "need $* but not root"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Another apt may be running (tools/dev installs the tool chain): wait for its lock.
    apt_opts="-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3"
    if ! apt-get $apt_opts install -y --no-install-recommends "$@" >&2; then
        apt-get $apt_opts update >&2
        apt-get $apt_opts install -y --no-install-recommends "$@" >&2 || {
            skip "apt-get install $* failed"
        }
    fi
}

[ -x /usr/bin/chromium ] || apt_install chromium
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm

if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-package-lock \
        --no-audit --no-fund --loglevel=error >&2) || {
        skip "npm install playwright-core failed"
    }
fi

mkdir -p "$out"
exec node "$here/console_test.mjs" "$runneld" "$out"
