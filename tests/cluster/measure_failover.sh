#!/usr/bin/env bash
# measure_failover.sh — by hand, for the report (not in the suite): the time
# from kill -9 of the metadata leader to the moment both survivors name the
# same new leader (`runnel cluster status`, polled every 20 ms), over ROUNDS
# kills of three local runneld with the given timing overrides (runneld's
# defaults when none: election 500 ms, fetch 1000 ms; a follower whose
# leader's socket refuses it campaigns at once). The killed broker is
# restarted and caught up before the next round.
#
#   tests/cluster/measure_failover.sh RUNNEL RUNNELD [ROUNDS] [--override K=V …]
set -u
RUNNEL=$1
RUNNELD=$2
ROUNDS=${3:-10}
shift 3 2>/dev/null || shift $#
EXTRA=("$@")
TMP=$(mktemp -d /tmp/rn-failover-XXXXXX)
declare -a PID PORT CTL
cleanup() {
  for i in 1 2 3; do
    if [ -n "${PID[$i]:-}" ]; then kill -KILL "${PID[$i]}" 2>/dev/null; fi
  done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for i in 1 2 3; do PORT[$i]=$(free_port); CTL[$i]=$(free_port); done
V="1@127.0.0.1:${CTL[1]},2@127.0.0.1:${CTL[2]},3@127.0.0.1:${CTL[3]}"
start() {
  "$RUNNELD" --data-dir "$TMP/n$1" --listen "127.0.0.1:${PORT[$1]}" --http "127.0.0.1:$(free_port)" \
    --node-id "$1" --reactors 1 --override "controller.listener=127.0.0.1:${CTL[$1]}" \
    --override "controller.quorum.voters=$V" "${EXTRA[@]}" >/dev/null 2>>"$TMP/n$1.log" &
  PID[$1]=$!
}
leader_of() { timeout 5 "$RUNNEL" -b "127.0.0.1:${PORT[$1]}" cluster status 2>/dev/null | awk '$1=="controller:"{print $2}'; }
agree_not() { # agree_not X: every live node names the same leader, not X
  local i l f=
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    l=$(leader_of "$i")
    [ -n "$l" ] && [ "$l" != "-" ] && [ "$l" != "$1" ] || return 1
    [ -z "$f" ] && f=$l
    [ "$l" = "$f" ] || return 1
  done
  LEADER=$f
}
for i in 1 2 3; do start "$i"; done
until agree_not 0; do sleep 0.05; done
times=()
for r in $(seq 1 "$ROUNDS"); do
  old=$LEADER
  kill -KILL "${PID[$old]}"; wait "${PID[$old]}" 2>/dev/null; PID[$old]=
  t0=$(date +%s%3N)
  end=$((t0 + 60000))
  until agree_not "$old"; do
    [ "$(date +%s%3N)" -gt "$end" ] && { echo "round $r: no leader in 60 s"; exit 1; }
    sleep 0.02
  done
  ms=$(($(date +%s%3N) - t0))
  times+=("$ms")
  echo "round $r: killed $old, new leader $LEADER after $ms ms"
  start "$old"
  until [ "$(leader_of "$old")" = "$LEADER" ]; do sleep 0.05; done
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "n=%d min=%d p50=%d max=%d ms\n", NR, a[1], a[int((NR+1)/2)], a[NR]}'
