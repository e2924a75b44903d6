#!/usr/bin/env bash
# test_systemd_unit.sh — tools/systemd/runneld.service is a unit systemd
# accepts (docs/operations.md): `systemd-analyze verify` on a copy whose
# ExecStart names the runneld just built (the installed path need not exist
# here). Skipped (TAP) where systemd-analyze is missing.
#
#   tests/cluster/test_systemd_unit.sh RUNNELD UNIT     (meson passes both; prints TAP)
set -u
RUNNELD=$(realpath "${1:?usage: test_systemd_unit.sh RUNNELD UNIT}")
UNIT=${2:?usage: test_systemd_unit.sh RUNNELD UNIT}
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "1..0 # SKIP systemd-analyze is not installed"
  exit 0
fi
TMP=$(mktemp -d /tmp/rn-unit-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "1..2"
sed "s#^ExecStart=/usr/local/bin/runneld #ExecStart=$RUNNELD #" "$UNIT" >"$TMP/runneld.service"
if grep -q "^ExecStart=$RUNNELD --config " "$TMP/runneld.service"; then
  echo "ok 1 - the unit starts runneld with --config"
else
  echo "not ok 1 - the unit starts runneld with --config"
fi
# verify prints warnings (unknown keys, wrong sections) without failing on
# all of them: any output is a failure here.
out=$(systemd-analyze verify "$TMP/runneld.service" 2>&1)
st=$?
if [ "$st" = 0 ] && [ -z "$out" ]; then
  echo "ok 2 - systemd-analyze verify accepts it, without a warning"
else
  echo "not ok 2 - systemd-analyze verify (exit $st)"
  printf '%s\n' "$out" | sed 's/^/# /'
fi
