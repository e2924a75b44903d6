# lib.sh — what the three-node cluster tests share, sourced by
# tests/cluster/test_quorum.sh and tests/cluster/test_kafka.sh (not run by
# itself):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh" NAME
#
# It makes a mktemp directory ${TMPDIR:-/tmp}/rn-NAME-XXXXXX ($TMP; node I keeps its
# data in $TMP/nI and its stderr in $TMP/nI.log), removed at exit together
# with every node still running (SIGKILL by its pid in $PID[I], never by
# name; a SIGSTOPped one is continued first). Sanitizer reports get exit
# status 86. Nodes 1-3 are voters; a script may run nodes 4 and 5 (brokers only).
#
# The script sets PORT[I], HTTP[I], CTL[I] (and KPORT[I] for a Kafka
# listener) from one free_ports call, then start_node I. TAP lines come from
# `ok NAME` / `not_ok NAME` (numbered in $N; not_ok adds the end of each
# node's log); every wait is wait_for with a bound (WAIT_S seconds, from
# RUNNEL_CLUSTER_WAIT_S, default 60).
#
# For the fault suite (tests/cluster/run, netns.sh) a node may live in a
# network namespace: HOST[I] is its address (default 127.0.0.1), NS[I] its
# namespace (default none), BIND[I] the address it binds when that is not
# HOST[I] (a proxy then listens on HOST[I]: it advertises HOST[I] and
# keeps the ports), CLIENT_NS the namespace rn() runs the CLI in,
# NODE_ARGS extra runneld arguments for every node, and CLEANUP_HOOKS
# functions the exit trap runs after the nodes are killed, before $TMP goes.
set -u

export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rn-${1:?lib.sh needs a name}-XXXXXX")
WAIT_S=${RUNNEL_CLUSTER_WAIT_S:-60}
# Short timeouts keep the tests quick; the bounds above are generous for a
# loaded machine. Safety never depends on them, only how soon things move.
TIMING=(--override controller.quorum.election.timeout.ms=500
  --override controller.quorum.fetch.timeout.ms=1000
  --override broker.heartbeat.interval.ms=300
  --override broker.session.timeout.ms=2000)
N=0
FAILED=0
declare -a PID PORT HTTP CTL KPORT HOST NS BIND
CLIENT_NS=
NODE_ARGS=()
CLEANUP_HOOKS=()

ok() {
  N=$((N + 1))
  echo "ok $N - $1"
}
not_ok() {
  N=$((N + 1))
  FAILED=$((FAILED + 1))
  echo "not ok $N - $1"
  for i in 1 2 3 4 5; do
    [ -f "$TMP/n$i.log" ] && { echo "# --- n$i.log (tail)"; tail -n 15 "$TMP/n$i.log" | sed 's/^/# /'; }
  done
}

cleanup() {
  for i in 1 2 3 4 5; do
    if [ -n "${PID[$i]:-}" ]; then
      kill -CONT "${PID[$i]}" 2>/dev/null
      kill -KILL "${PID[$i]}" 2>/dev/null
      wait "${PID[$i]}" 2>/dev/null
    fi
  done
  local h
  for h in "${CLEANUP_HOOKS[@]}"; do "$h"; done
  # RUNNEL_CLUSTER_KEEP=1 keeps the logs, histories and data for a post-mortem.
  if [ -n "${RUNNEL_CLUSTER_KEEP:-}" ]; then echo "# kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_ports() { # free_ports N: N distinct free ports, all held open while chosen
  python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

now_ms() {
  date +%s%3N
}

# in_ns NS CMD…: CMD inside network namespace NS ("" = here).
in_ns() {
  local ns=$1
  shift
  if [ -n "$ns" ]; then
    ip netns exec "$ns" "$@"
  else
    "$@"
  fi
}

rn() { # rn NODE ARGS…: the CLI against node NODE, bounded
  local i=$1
  shift
  in_ns "$CLIENT_NS" timeout 10 "$RUNNEL" -b "${HOST[$i]:-127.0.0.1}:${PORT[$i]}" "$@"
}

field() { # field NODE KEY: a key of `cluster status` on NODE ("" when it does not answer)
  rn "$1" cluster status 2>/dev/null | awk -v k="$2:" '$1 == k { print $2 }'
}

# The partition of topic $T that a script follows (partition 0 unless it
# has more): describe NODE prints its line of `topic describe` as NODE sees
# it, dfield NODE NAME one "Name: value" of that line, isr_is LIST holds
# when every live node shows exactly that ISR (sorted, comma-separated),
# leader_is_live [NOT] when every live node names the same live leader (not
# NOT) and sets LEADER. A script may define its own after sourcing this.
describe() {
  rn "$1" topic describe "$T" 2>/dev/null | awk '$1 == "Topic:" && $3 == "Partition:"'
}
dfield() {
  describe "$1" | tr '\t' '\n' | awk -v k="$2:" '$1 == k { print $2 }'
}
isr_is() {
  local i got
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    got=$(dfield "$i" Isr | tr ',' '\n' | sort -n | paste -sd, -)
    [ "$got" = "$1" ] || return 1
  done
}
leader_is_live() {
  local i l f=
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    l=$(dfield "$i" Leader)
    [ -n "$l" ] && [ "$l" != "-1" ] && [ "$l" != "${1:-x}" ] && [ -n "${PID[$l]:-}" ] || return 1
    [ -z "$f" ] && f=$l
    [ "$l" = "$f" ] || return 1
  done
  LEADER=$f
}

voters() {
  local i s=
  for i in 1 2 3; do
    s="$s${s:+,}$i@${HOST[$i]:-127.0.0.1}:${CTL[$i]}"
  done
  echo "$s"
}

# start_node I: voter I (1-3; 4 and 5 are brokers only, process.roles=broker)
# on its ports (chosen once) and data dir, with a Kafka listener when
# KPORT[I] is set.
# In a namespace, `ip netns exec` execs runneld, so $! is runneld's own pid.
start_node() {
  local i=$1
  local kafka=() h=${BIND[$i]:-${HOST[$i]:-127.0.0.1}} pre=() adv=()
  [ -n "${KPORT[$i]:-}" ] && kafka=(--kafka "$h:${KPORT[$i]}")
  [ -n "${NS[$i]:-}" ] && pre=(ip netns exec "${NS[$i]}")
  [ -n "${BIND[$i]:-}" ] && adv=(--override "advertised.listener=${HOST[$i]}:${PORT[$i]}")
  local role=(--override "controller.listener=$h:${CTL[$i]:-0}")
  [ "$i" -gt 3 ] && role=(--override process.roles=broker)
  "${pre[@]}" "$RUNNELD" --data-dir "$TMP/n$i" --listen "$h:${PORT[$i]}" \
    --http "$h:${HTTP[$i]}" "${kafka[@]}" --node-id "$i" --reactors 1 \
    "${role[@]}" \
    --override "controller.quorum.voters=$(voters)" "${TIMING[@]}" "${adv[@]}" "${NODE_ARGS[@]}" \
    2>>"$TMP/n$i.log" &
  PID[$i]=$!
}

stop_node() { # SIGTERM; graceful exit must be 0
  local i=$1 st
  kill -TERM "${PID[$i]}" 2>/dev/null
  wait "${PID[$i]}" 2>/dev/null
  st=$?
  PID[$i]=
  return $st
}

# wait_for SECONDS CMD…: poll CMD every 0.1 s until it succeeds; 1 at the bound.
wait_for() {
  local end=$(($(date +%s) + $1))
  shift
  while ! "$@"; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.1
  done
}
