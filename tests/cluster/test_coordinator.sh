#!/usr/bin/env bash
# test_coordinator.sh — the group coordinator in a three-broker cluster
# (DESIGN §6/§8, issue 13): the coordinator of a group is the leader of the
# group's partition of __offsets, on real runneld processes on 127.0.0.1.
#
#   1. FindCoordinator from every broker, native (`runnel group
#      coordinator`) and Kafka (FindCoordinator v0), names the same broker:
#      the leader of __offsets-0.
#   2. A group API sent to another broker answers NOT_COORDINATOR (Kafka
#      Heartbeat: 16); the leader answers it for itself (UNKNOWN_MEMBER_ID).
#   3. Two group members (librunnel, tests/cluster/workload.c) consume an
#      RF=3 topic and commit every 300 ms while a producer writes; the
#      __offsets leader is killed -9 mid-run. A new leader takes over (every
#      live broker names it), commits go on through it, the old leader
#      returns, and the checker (checker.py) finds no committed offset moved
#      back (commit_backwards: the new coordinator forgot nothing that was
#      acknowledged), no record skipped by a member (poll_skip), none lost or
#      duplicated.
#
#   tests/cluster/test_coordinator.sh RUNNEL RUNNELD RN_WORKLOAD  (meson passes them; TAP)
#
# Every wait polls a condition with a bound (WAIT_S); no time is asserted.
set -u

RUNNEL=${1:?usage: test_coordinator.sh RUNNEL RUNNELD RN_WORKLOAD}
RUNNELD=${2:?usage: test_coordinator.sh RUNNEL RUNNELD RN_WORKLOAD}
WORKLOAD=${3:?usage: test_coordinator.sh RUNNEL RUNNELD RN_WORKLOAD}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh" coord
PY=/usr/bin/python3
G=cg
T=c
HIST=$TMP/history.jsonl

brokers() { echo "127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}"; }

live() { local i; for i in 1 2 3; do [ -n "${PID[$i]:-}" ] && echo "$i"; done; }

# The leader of __offsets-0 as node I sees it ("" when it does not answer).
offsets_leader_on() {
  rn "$1" topic describe __offsets 2>/dev/null |
    awk -F'\t' '{ for (k = 1; k <= NF; k++) if ($k ~ /^Leader: /) { sub(/^Leader: /, "", $k); print $k } }' |
    head -1
}

# Every live node names the same live leader of __offsets-0, not $1: OL.
offsets_leader_agreed() {
  local i l f=
  for i in $(live); do
    l=$(offsets_leader_on "$i")
    [ -n "$l" ] && [ "$l" != -1 ] && [ "$l" != "${1:-x}" ] && [ -n "${PID[$l]:-}" ] || return 1
    [ -z "$f" ] && f=$l
    [ "$l" = "$f" ] || return 1
  done
  OL=$f
}

# Every live node's FindCoordinator (native) names $1.
native_coordinator_is() {
  local i got
  for i in $(live); do
    got=$(rn "$i" group coordinator "$G" 2>/dev/null | awk '{ print $2, $3 }')
    [ "$got" = "$1 127.0.0.1:${PORT[$1]}" ] || return 1
  done
}

# Every live node's FindCoordinator (Kafka v0) names $1 and its Kafka listener.
kafka_coordinator_is() {
  local i got
  for i in $(live); do
    got=$("$PY" "$HERE/kafka_coord.py" 127.0.0.1 "${KPORT[$i]}" find "$G" 2>/dev/null)
    [ "$got" = "0 $1 127.0.0.1:${KPORT[$1]}" ] || return 1
  done
}

commits() {
  local n
  n=$(grep -c '"type":"ok","f":"commit"' "$HIST" 2>/dev/null)
  echo "${n:-0}"
}
commits_past() { [ "$(commits)" -ge "$1" ]; }

three_active() {
  [ "$(rn "$1" cluster status 2>/dev/null | awk '$1=="BROKER"{t=1;next} t && $4=="active"' |
    wc -l)" = 3 ]
}

read -r PORT[1] PORT[2] PORT[3] HTTP[1] HTTP[2] HTTP[3] CTL[1] CTL[2] CTL[3] \
  KPORT[1] KPORT[2] KPORT[3] < <(free_ports 12)
for i in 1 2 3; do start_node "$i"; done
if wait_for "$WAIT_S" three_active 1 && wait_for "$WAIT_S" offsets_leader_agreed; then
  ok "three brokers active; __offsets-0 led by $OL"
else
  not_ok "three brokers active and one leader of __offsets-0"
fi
OL=${OL:-1}

# 1. One coordinator, whoever is asked.
if wait_for "$WAIT_S" native_coordinator_is "$OL"; then
  ok "native FindCoordinator from every broker names broker $OL"
else
  not_ok "native FindCoordinator from every broker names broker $OL ($(for i in 1 2 3; do rn "$i" group coordinator "$G" 2>&1 | tr '\n' ' '; done))"
fi
if wait_for "$WAIT_S" kafka_coordinator_is "$OL"; then
  ok "Kafka FindCoordinator from every broker names broker $OL and its Kafka listener"
else
  not_ok "Kafka FindCoordinator from every broker names broker $OL ($(for i in 1 2 3; do "$PY" "$HERE/kafka_coord.py" 127.0.0.1 "${KPORT[$i]}" find "$G" 2>&1 | tr '\n' ' '; done))"
fi

# 2. NOT_COORDINATOR from the others, never an answer from local state.
codes=
for i in 1 2 3; do
  codes="$codes $i:$("$PY" "$HERE/kafka_coord.py" 127.0.0.1 "${KPORT[$i]}" heartbeat "$G" 2>&1)"
done
bad=0
for i in 1 2 3; do
  c=$(echo "$codes" | tr ' ' '\n' | awk -F: -v n="$i" '$1 == n { print $2 }')
  if [ "$i" = "$OL" ]; then [ "$c" = 25 ] || bad=1; else [ "$c" = 16 ] || bad=1; fi
done
if [ "$bad" = 0 ]; then
  ok "a group API on a broker that is not the coordinator answers NOT_COORDINATOR (codes$codes)"
else
  not_ok "a group API on a broker that is not the coordinator answers NOT_COORDINATOR (codes$codes; 16 expected but on $OL, 25 there)"
fi

# 3. kill -9 of the coordinator under two committing members.
rn 1 topic create "$T" -p 3 -r 3 -c min.insync.replicas=2 >/dev/null 2>&1
have_topic() { [ "$(rn 1 topic describe "$T" 2>/dev/null | grep -c 'Leader: [1-3]')" = 3 ]; }
wait_for "$WAIT_S" have_topic || not_ok "topic $T created with three led partitions"
"$WORKLOAD" load --brokers "$(brokers)" --topic "$T" --history "$HIST" --producers 1 --acks all \
  --records 4000 --rate 150 --seconds 24 --consumers 1 --members 2 --group "$G" --commit-ms 300 \
  --delivery-ms 30000 2>>"$TMP/workload.err" &
LOAD=$!
if wait_for "$WAIT_S" commits_past 10; then
  ok "two members commit through broker $OL ($(commits) commits)"
else
  not_ok "two members commit through broker $OL ($(commits) commits)"
fi
OLD=$OL
before=$(commits)
kill -KILL "${PID[$OLD]}"
wait "${PID[$OLD]}" 2>/dev/null
PID[$OLD]=
t0=$(now_ms)
if wait_for "$WAIT_S" offsets_leader_agreed "$OLD"; then
  ok "__offsets-0 has a new leader, broker $OL ($(($(now_ms) - t0)) ms after the kill -9 of $OLD)"
else
  not_ok "__offsets-0 has a new leader after the kill -9 of $OLD"
fi
if wait_for "$WAIT_S" native_coordinator_is "$OL" && wait_for "$WAIT_S" kafka_coordinator_is "$OL"; then
  ok "FindCoordinator from both live brokers names the new leader $OL"
else
  not_ok "FindCoordinator from both live brokers names the new leader $OL"
fi
if wait_for "$WAIT_S" commits_past $((before + 10)); then
  ok "commits go on through the new coordinator ($(($(commits) - before)) since the kill, first after $(($(now_ms) - t0)) ms at most)"
else
  not_ok "commits go on through the new coordinator ($(($(commits) - before)) since the kill)"
fi
start_node "$OLD"
if wait_for "$WAIT_S" three_active "$OL"; then
  ok "broker $OLD back"
else
  not_ok "broker $OLD back"
fi
end=$(($(date +%s) + 150))
while kill -0 "$LOAD" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; done
if kill -0 "$LOAD" 2>/dev/null; then
  kill -KILL "$LOAD"
  wait "$LOAD" 2>/dev/null
  not_ok "the load ended by itself"
elif wait "$LOAD"; then
  ok "the load ended ($(grep -c '"type":"ok","f":"send"' "$HIST") acknowledged, $(commits) commits)"
else
  not_ok "the load exited badly: $(tail -3 "$TMP/workload.err" | tr '\n' ' ')"
fi
timeout 120 "$WORKLOAD" final --brokers "$(brokers)" --topic "$T" --history "$HIST" --seconds 60 \
  2>>"$TMP/workload.err" || not_ok "the final read completed"
# Figures (printed, not asserted): how long commits and polls took.
"$PY" - "$HIST" <<'PY' | sed 's/^/# /'
import json, sys
t0, lat = {}, {"commit": [], "poll": [], "send": []}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    k = (e.get("f"), e.get("proc"), e.get("id"))
    if e.get("type") == "invoke":
        t0[k] = e["t"]
    elif k in t0 and e.get("f") in lat:
        lat[e["f"]].append(e["t"] - t0.pop(k))
for f, v in lat.items():
    if v:
        v.sort()
        print(f"{f}: n={len(v)} p50={v[len(v) // 2]} ms p99={v[len(v) * 99 // 100]} ms max={v[-1]} ms")
PY
[ -n "${RUNNEL_CLUSTER_KEEP:-}" ] && cp "$HIST" "$RUNNEL_CLUSTER_KEEP/coordinator-history.jsonl"
"$PY" "$HERE/checker.py" "$HIST" >"$TMP/checker.out" 2>&1
rc=$?
sed 's/^/# /' "$TMP/checker.out" | grep -v ': 0$' | head -40
if [ "$rc" = 0 ]; then
  ok "checker: no commit_backwards, no poll_skip, nothing lost or duplicated"
else
  not_ok "checker: exit $rc"
  cp "$HIST" "/tmp/coord-history-$$.jsonl" 2>/dev/null && echo "# history kept in /tmp/coord-history-$$.jsonl"
fi

echo "1..$N"
[ "$FAILED" = 0 ]
