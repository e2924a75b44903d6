# lib.sh — what every shell test of a real runneld needs, sourced by
# tests/cli/test_*.sh and tests/gateway/test_rest.sh (not run by itself).
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh" NAME
#
# It makes a mktemp directory /tmp/rn-NAME-XXXXXX ($TMP, data in $DATA, the
# broker's output appended to $LOG), removed at exit together with the broker
# (stopped by its pid, never by name). Sanitizer reports get exit status 86,
# so a report fails a test even where exit 1 is the expected outcome.
#
# The harness: `t NAME FUNC [ARGS…]` runs one test function, which returns
# non-zero on failure and says why on stderr; t turns that into TAP lines
# numbered in $N (ONLY=GLOB in the environment runs only the matching
# functions, for working on one). `finish` prints the plan and exits 1 if any
# test failed.
#
# Hooks a script may define (after sourcing) to change one step:
#   broker_extra   sets BROKER_EXTRA=(…) on each start try: ports and flags
#                  beyond --data-dir, --listen $PORT and --http $HTTP_PORT
#   broker_ready   succeeds once the broker answers (default: $PORT accepts)
#   t_skip         prints a reason to skip the current test, or nothing
#   t_ok_extra     runs after an ok line (e.g. prints timings from $TMP/diag)
#   t_done         runs after each test that ran, passed or not (e.g. stops
#                  the clients it left in the background)
#   rn_cleanup     runs at exit before the broker is killed
# and variables: RN_TIMEOUT (seconds for each `r` call, default 30),
# RUNNELD_WRAP=(CMD…) to start runneld under CMD, KEEP_PORTS=1 for one
# start_broker on the ports of the last (a restart clients must find at the
# same address; broker_extra sees it too).
set -u

export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86
TMP=$(mktemp -d "/tmp/rn-${1:?lib.sh needs a name}-XXXXXX")
DATA=$TMP/data
LOG=$TMP/runneld.log
BROKER_PID=
BROKER_EXTRA=()
RUNNELD_WRAP=() # a command runneld runs under (e.g. prlimit), for one start
N=0
FAILED=0
RN_TIMEOUT=30
# The system interpreter, where Debian's python3 modules live.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

broker_extra() { BROKER_EXTRA=(); }
broker_ready() { port_open "$PORT"; }
t_skip() { :; }
t_ok_extra() { :; }
t_done() { :; }
rn_cleanup() { :; }

# kill9_broker: SIGKILL and reap the broker, if one runs.
kill9_broker() {
  if [ -n "$BROKER_PID" ]; then
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
  fi
}

# stop_broker: SIGTERM; runneld must exit 0 (graceful; in the sanitizer build
# also no leak or report).
stop_broker() {
  local st=0
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    st=$?
    BROKER_PID=
  fi
  [ "$st" = 0 ] || { echo "runneld exited with status $st" >&2; return 1; }
}

cleanup() {
  rn_cleanup
  kill9_broker
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# port_open PORT: something accepts on 127.0.0.1:PORT.
port_open() {
  $PY - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.2)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

# start_broker [RUNNELD ARGS…]: runneld on $DATA with free ports ($PORT native,
# $HTTP_PORT HTTP, more from broker_extra), waiting at most 10 s for it to
# answer; retried with new ports if one was taken in between. Exports
# RUNNEL_BROKERS for the CLI.
start_broker() {
  local try i
  for try in 1 2 3; do
    if [ "${KEEP_PORTS:-0}" != 1 ]; then
      PORT=$(free_port)
      HTTP_PORT=$(free_port)
    fi
    broker_extra
    "${RUNNELD_WRAP[@]}" "$RUNNELD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HTTP_PORT" \
      "${BROKER_EXTRA[@]}" "$@" >>"$LOG" 2>&1 &
    BROKER_PID=$!
    for i in $(seq 1 200); do
      if broker_ready; then
        export RUNNEL_BROKERS=127.0.0.1:$PORT
        return 0
      fi
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill9_broker
  done
  echo "runneld did not start:" >&2
  tail -20 "$LOG" >&2
  return 1
}

# r ARGS…: runnel with a time bound, so a hang fails the test, not the suite.
r() { timeout "$RN_TIMEOUT" "$RUNNEL" "$@"; }

# expect_status WANT CMD…: run CMD (stdout in $TMP/out, stderr in $TMP/err),
# compare its exit status.
expect_status() {
  local want=$1 got
  shift
  "$@" >"$TMP/out" 2>"$TMP/err"
  got=$?
  if [ "$got" != "$want" ]; then
    echo "exit $got, wanted $want: $*" >&2
    sed 's/^/  stderr: /' "$TMP/err" | head -5 >&2
    return 1
  fi
}

# t NAME FUNC [ARGS…]: one TAP test; on failure its stderr and the end of the
# broker's log as comments.
t() {
  local name=$1 skip
  shift
  case "$1" in ${ONLY:-*}) ;; *) return 0 ;; esac
  N=$((N + 1))
  skip=$(t_skip)
  if [ -n "$skip" ]; then
    echo "ok $N - $name # SKIP $skip"
    return 0
  fi
  if "$@" 2>"$TMP/diag"; then
    echo "ok $N - $name"
    t_ok_extra
  else
    echo "not ok $N - $name"
    sed 's/^/# /' "$TMP/diag"
    echo "# runneld log:"
    tail -15 "$LOG" | sed 's/^/#   /'
    FAILED=$((FAILED + 1))
  fi
  t_done
}

# finish: the TAP plan; exit 1 if a test failed.
finish() {
  echo "1..$N"
  exit $((FAILED > 0))
}
