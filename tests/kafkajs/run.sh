#!/bin/sh
# run.sh — kafkajs against runneld under node's test runner (meson test
# `kafkajs`, suite integration):  run.sh RUNNEL RUNNELD [TEST_FILE]
# (TEST_FILE defaults to kafkajs.test.mjs; meson's kafkajs_cluster passes
# cluster.test.mjs).
#
# Installs kafkajs, pinned in package.json, into tests/kafkajs/node_modules
# with npm (no lock file is written), then runs `node --test` on
# kafkajs.test.mjs with the TAP reporter, so meson counts every test.
# When node or npm is missing, or npm cannot reach its registry, it prints
# why and TAP's "1..0 # SKIP reason", which meson reports as skipped (under
# protocol 'tap' an exit status 77 would count as an error; run by hand
# outside meson, set KAFKAJS_SKIP_STATUS=77 to get that status instead).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
RUNNEL=${1:?usage: run.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: run.sh RUNNEL RUNNELD}
TEST_FILE=${3:-kafkajs.test.mjs}

skip() {
    echo "kafkajs: $*: skipping" >&2
    echo "1..0 # SKIP $*"
    exit "${KAFKAJS_SKIP_STATUS:-0}"
}

command -v node >/dev/null 2>&1 || skip "node is not installed (apt-get install nodejs)"
if [ ! -f "$here/node_modules/kafkajs/package.json" ]; then
    command -v npm >/dev/null 2>&1 || skip "npm is not installed (apt-get install npm)"
    (cd "$here" && timeout 180 npm install --no-package-lock --no-audit --no-fund \
        --loglevel=error >&2) || skip "npm install kafkajs failed (is the npm registry reachable?)"
fi
export RUNNEL RUNNELD
exec node --test --test-reporter=tap "$here/$TEST_FILE"
