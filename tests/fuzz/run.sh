#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET CORPUS SECONDS — one bounded libFuzzer run (suite 'fuzz').
#
# Starts from the checked-in corpus (read only; new inputs go to a temporary
# directory that is removed), stops after SECONDS, and prints one summary line:
# executions, coverage (edges) and features. A crash, leak, timeout or
# sanitizer report fails the test; the input that caused it is kept under
# $FUZZ_ARTIFACTS (default build dir's fuzz-artifacts/) to be copied into the
# corpus as a regression case once fixed.
set -uo pipefail
target=$1 corpus=$2 seconds=$3
name=$(basename "$target")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=${FUZZ_ARTIFACTS:-$(dirname "$target")/fuzz-artifacts}
mkdir -p "$artifacts"

UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  "$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$work" "$corpus" >"$work.log" 2>&1
rc=$?
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$')
cov=$(grep -o 'cov: [0-9]*' "$work.log" | tail -1 | grep -o '[0-9]*')
ft=$(grep -o 'ft: [0-9]*' "$work.log" | tail -1 | grep -o '[0-9]*')
echo "$name: ${execs:-?} executions in ${seconds}s, coverage ${cov:-?} edges, ${ft:-?} features, exit $rc"
if [ $rc -ne 0 ]; then
  tail -60 "$work.log"
  ls "$artifacts" | sed 's/^/artifact: /'
fi
rm -f "$work.log"
exit $rc
