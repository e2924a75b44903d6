#!/usr/bin/env bash
# test_quorum.sh — the metadata quorum between three real runneld processes
# on 127.0.0.1 (DESIGN §8, issue 13 item 3): one leader is elected and every
# broker agrees on it; a topic created through a follower reaches all three;
# kill -9 of the leader gives a new leader, the metadata survives, and the
# old one restarts and catches up; a broker silent past
# broker.session.timeout.ms is fenced, and unfenced when it speaks again; a
# fourth, broker-only node (an observer) follows the log and forwards.
#
#   tests/cluster/test_quorum.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# Ports are free ones chosen here; data lives under a mktemp directory
# (removed at the end); every process is stopped by its pid. Nothing sleeps
# to synchronise: every wait polls a condition with a bound (WAIT_S), and
# times are printed as TAP comments, never asserted.
set -u

RUNNEL=${1:?usage: test_quorum.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_quorum.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cluster
LEADER=1 # until agree() sets them (a failed step must not end the script)
EPOCH=0

start_observer() { # node 4: process.roles=broker, no controller listener
  "$RUNNELD" --data-dir "$TMP/n4" --listen "127.0.0.1:${PORT[4]}" \
    --http "127.0.0.1:${HTTP[4]}" --node-id 4 --reactors 1 --override process.roles=broker \
    --override "controller.quorum.voters=$(voters)" "${TIMING[@]}" 2>>"$TMP/n4.log" &
  PID[4]=$!
}

broker_state() { # broker_state NODE ID: active | fenced | "" as NODE shows broker ID
  rn "$1" cluster status 2>/dev/null | awk -v id="$2" '
    $1 == "BROKER" { t = 1; next }
    t && $1 == id { print $4 }'
}

# Every live node names the same controller (not "-") in the same epoch,
# and (optionally) it is not $1. Sets LEADER and EPOCH.
agree() {
  local not=${1:-0} i l e first_l= first_e=
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    l=$(field "$i" controller)
    e=$(field "$i" epoch)
    [ -n "$l" ] && [ "$l" != "-" ] || return 1
    [ "$l" != "$not" ] || return 1
    if [ -z "$first_l" ]; then
      first_l=$l
      first_e=$e
    elif [ "$l" != "$first_l" ] || [ "$e" != "$first_e" ]; then
      return 1
    fi
  done
  LEADER=$first_l
  EPOCH=$first_e
}

has_topic() { # has_topic NODE TOPIC
  rn "$1" topic list 2>/dev/null | grep -qx "$2"
}

all_have_topic() {
  local i
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    has_topic "$i" "$1" || return 1
  done
}

all_see_state() { # all_see_state ID STATE: every live node shows broker ID in STATE
  local i
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    [ "$(broker_state "$i" "$1")" = "$2" ] || return 1
  done
}

registered_all() { # NODE lists three active brokers
  [ "$(rn "$1" cluster status 2>/dev/null | awk '$1=="BROKER"{t=1;next} t && $4=="active"' |
    wc -l)" = 3 ]
}

echo "1..20"
# One call for every port: ports picked one at a time may repeat (seen: a
# controller listener on the port another node's listener had).
read -r -a PORTS <<<"$(free_ports 12)"
for i in 1 2 3 4; do
  PORT[$i]=${PORTS[$(((i - 1) * 3 + 0))]}
  HTTP[$i]=${PORTS[$(((i - 1) * 3 + 1))]}
  CTL[$i]=${PORTS[$(((i - 1) * 3 + 2))]}
done

# 0. One voter alone cannot form the quorum and waits before listening;
#    SIGTERM still stops it at once, cleanly.
start_node 1
waiting_logged() { grep -q "waiting for the metadata quorum" "$TMP/n1.log"; }
if wait_for "$WAIT_S" waiting_logged && stop_node 1; then
  ok "a lone voter waits for the quorum, and SIGTERM stops it cleanly"
else
  not_ok "a lone voter waits for the quorum, and SIGTERM stops it cleanly"
fi

# 0b. A quorum-state file that does not parse is refused at start with a
#     message naming it (a vote must never be forgotten silently).
printf 'epoch=banana\n' >"$TMP/n1/__cluster_metadata-0/quorum-state"
: >"$TMP/n1.log"
timeout 30 "$RUNNELD" --data-dir "$TMP/n1" --listen "127.0.0.1:${PORT[1]}" \
  --http "127.0.0.1:${HTTP[1]}" --node-id 1 --reactors 1 \
  --override "controller.listener=127.0.0.1:${CTL[1]}" \
  --override "controller.quorum.voters=$(voters)" "${TIMING[@]}" 2>>"$TMP/n1.log"
st=$?
if [ "$st" = 1 ] && grep -q "quorum-state" "$TMP/n1.log"; then
  ok "a corrupt quorum-state file stops the start with a message naming it"
else
  not_ok "a corrupt quorum-state file stops the start with a message naming it (exit $st)"
fi
rm -rf "$TMP/n1"

# 1. Three brokers elect one leader, and all three say so.
t0=$(now_ms)
for i in 1 2 3; do start_node "$i"; done
if wait_for "$WAIT_S" agree; then
  echo "# first leader: node $LEADER, epoch $EPOCH, $(($(now_ms) - t0)) ms after start"
  ok "three runneld elect one leader that every broker names"
else
  not_ok "three runneld elect one leader that every broker names"
fi

# 2. cluster status agrees on every broker: the same controller and epoch,
#    three voters, three registered active brokers.
if wait_for "$WAIT_S" registered_all 1 && wait_for "$WAIT_S" registered_all 2 &&
  wait_for "$WAIT_S" registered_all 3 && agree &&
  [ "$(rn 1 cluster status | grep -c '^[0-9].*127.0.0.1')" -ge 6 ]; then
  ok "cluster status agrees on every broker: controller $LEADER, epoch $EPOCH, 3 active brokers"
else
  not_ok "cluster status agrees on every broker"
fi

# 3. A topic created through a follower appears on all three.
FOLLOWER=$((LEADER % 3 + 1))
if rn "$FOLLOWER" topic create via-follower -p 3 >/dev/null &&
  wait_for "$WAIT_S" all_have_topic via-follower; then
  ok "a topic created through follower $FOLLOWER appears on all three"
else
  not_ok "a topic created through follower $FOLLOWER appears on all three"
fi

# 3b. The same name created through all three brokers at once: exactly one
#     create succeeds, the others are told it exists, and every broker holds
#     the winner's partition count (each broker validates against its own
#     image; the log's order decides, applied the same way everywhere).
for i in 1 2 3; do
  (rn "$i" topic create race -p "$i" >"$TMP/race$i.out" 2>&1; echo $? >"$TMP/race$i.rc") &
done
wait_race() { [ -s "$TMP/race1.rc" ] && [ -s "$TMP/race2.rc" ] && [ -s "$TMP/race3.rc" ]; }
race_parts() { rn "$1" topic describe race 2>/dev/null | awk -F'PartitionCount: ' 'NF > 1 { split($2, a, "\t"); print a[1]; exit }'; }
if wait_for "$WAIT_S" wait_race; then
  wins=$(cat "$TMP"/race?.rc | grep -cx 0)
  winner=$(grep -lx 0 "$TMP"/race?.rc | sed 's/.*race\([0-9]\).rc/\1/')
  exists=$(cat "$TMP"/race?.out | grep -c "already exists")
  same() { [ "$(race_parts 1)" = "$winner" ] && [ "$(race_parts 2)" = "$winner" ] && [ "$(race_parts 3)" = "$winner" ]; }
  if [ "$wins" = 1 ] && [ "$exists" = 2 ] && wait_for "$WAIT_S" same; then
    ok "one name created through three brokers at once: one wins ($winner partitions) everywhere"
  else
    not_ok "one name created through three brokers at once (wins=$wins exists=$exists winner=$winner)"
  fi
else
  not_ok "one name created through three brokers at once: the creates did not end"
fi

# 3c. Metadata lists every registered broker: a record produced through a
#     broker that does not lead the partition reaches its leader (where the
#     controller placed it), and is read back through a third.
LEAD_P=$(rn 1 topic describe via-follower 2>/dev/null | sed -n 's/.*Partition: 0\tLeader: \([0-9]*\).*/\1/p')
LEAD_P=${LEAD_P:-1}
OTHER=$((LEAD_P % 3 + 1))
THIRD=$((OTHER % 3 + 1))
if printf 'routed\n' | rn "$OTHER" produce via-follower -p 0 >/dev/null 2>"$TMP/produce.err" &&
  [ "$(rn "$THIRD" consume via-follower -p 0 -e -f '%s\n' 2>/dev/null)" = routed ]; then
  ok "a record produced through broker $OTHER reaches leader $LEAD_P and reads back through $THIRD"
else
  not_ok "a record produced through broker $OTHER reaches leader $LEAD_P and reads back through $THIRD ($(cat "$TMP/produce.err"))"
fi

# 3d. A broker that does not lead a partition does not write it: a REST
#     produce to partition 0 through broker $OTHER's gateway answers 503
#     (NOT_LEADER) instead of appending to a local copy no one reads, and the
#     leader still holds the one record above.
code=$(timeout 10 curl -s -o "$TMP/rest.out" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/vnd.kafka.json.v2+json' \
  -d '{"records":[{"value":"lost?"}]}' \
  "http://127.0.0.1:${HTTP[$OTHER]}/topics/via-follower/partitions/0")
if [ "$code" = 503 ] && grep -qi "leader" "$TMP/rest.out" &&
  [ "$(rn "$LEAD_P" consume via-follower -p 0 -e -f '%s\n' 2>/dev/null)" = routed ]; then
  ok "a produce through broker $OTHER's gateway to a partition $LEAD_P leads is refused (503, not leader)"
else
  not_ok "a produce through broker $OTHER's gateway to a partition $LEAD_P leads is refused (got $code: $(head -c 200 "$TMP/rest.out"))"
fi

# 4. kill -9 of the leader: the other two agree on a new leader within the bound.
OLD=$LEADER
kill -KILL "${PID[$OLD]}"
wait "${PID[$OLD]}" 2>/dev/null
PID[$OLD]=
t0=$(now_ms)
if wait_for "$WAIT_S" agree "$OLD"; then
  echo "# new leader: node $LEADER, epoch $EPOCH, $(($(now_ms) - t0)) ms after kill -9 of node $OLD"
  ok "kill -9 of leader $OLD: a new leader ($LEADER) within ${WAIT_S} s"
else
  not_ok "kill -9 of leader $OLD: a new leader within ${WAIT_S} s"
fi

# 4b. The killed broker's sockets closed with it: the new controller fences
#     it as unreachable (no link, two heartbeats missed), not after a whole
#     session of silence, so its partitions move in about a second.
unreachable() { grep -q "msg=\"broker unreachable\" node=$OLD " "$TMP/n$LEADER.log"; }
if wait_for "$WAIT_S" unreachable; then
  ok "the new controller $LEADER fences killed broker $OLD as unreachable (its links closed)"
else
  not_ok "the new controller $LEADER fences killed broker $OLD as unreachable (its links closed)"
  grep -E 'unreachable|session expired' "$TMP/n$LEADER.log" | sed 's/^/# /'
fi

# 5. The metadata survives, and changes go on with two of three.
if all_have_topic via-follower && rn "$LEADER" topic create after-kill -p 1 >/dev/null &&
  wait_for "$WAIT_S" all_have_topic after-kill; then
  ok "metadata survives the kill; a topic created after it reaches both survivors"
else
  not_ok "metadata survives the kill; a topic created after it reaches both survivors"
fi

# 6. The old leader restarts and catches up: both topics, the same leader.
start_node "$OLD"
if wait_for "$WAIT_S" has_topic "$OLD" after-kill && has_topic "$OLD" via-follower &&
  wait_for "$WAIT_S" agree; then
  ok "node $OLD restarts, catches up (both topics) and follows leader $LEADER"
else
  not_ok "node $OLD restarts, catches up and follows the leader"
fi

# 7. A broker silent past broker.session.timeout.ms (SIGSTOP: alive but
#    mute) is fenced by the controller; every live broker shows it.
wait_for "$WAIT_S" agree
QUIET=$((LEADER % 3 + 1))
kill -STOP "${PID[$QUIET]}"
t0=$(now_ms)
SAVED=${PID[$QUIET]}
PID[$QUIET]= # not asked while stopped
if wait_for "$WAIT_S" all_see_state "$QUIET" fenced; then
  echo "# broker $QUIET fenced $(($(now_ms) - t0)) ms after SIGSTOP (session 2000 ms)"
  ok "broker $QUIET stopped past the session timeout is shown fenced"
else
  not_ok "broker $QUIET stopped past the session timeout is shown fenced"
fi

# 7b. /metrics: the controller says it is active and counts the fenced
#     broker; another broker says it is not the controller.
metric() { # metric NODE NAME: the value, "" when absent
  timeout 10 curl -s "http://127.0.0.1:${HTTP[$1]}/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
OTHER_LIVE=$((QUIET % 3 + 1))
[ "$OTHER_LIVE" = "$LEADER" ] && OTHER_LIVE=$((OTHER_LIVE % 3 + 1))
if [ "$(metric "$LEADER" runnel_controller_active)" = 1 ] &&
  [ "$(metric "$LEADER" runnel_brokers_fenced)" = 1 ] &&
  [ "$(metric "$LEADER" runnel_controller_epoch)" = "$EPOCH" ] &&
  { [ "$OTHER_LIVE" = "$QUIET" ] || [ "$(metric "$OTHER_LIVE" runnel_controller_active)" = 0 ]; }; then
  ok "/metrics: the controller is active, epoch $EPOCH, one broker fenced"
else
  not_ok "/metrics: the controller is active, epoch $EPOCH, one broker fenced"
fi

# 8. It comes back (SIGCONT): unfenced on every broker, itself included.
PID[$QUIET]=$SAVED
kill -CONT "${PID[$QUIET]}"
if wait_for "$WAIT_S" all_see_state "$QUIET" active; then
  ok "broker $QUIET back: unfenced on every broker"
else
  not_ok "broker $QUIET back: unfenced on every broker"
fi

# 9. A broker-only node (an observer of the quorum) catches up, registers,
#    and a topic created through it reaches the voters.
start_observer
observer_registered() { [ "$(broker_state "$LEADER" 4)" = active ]; }
voters_have() { has_topic 1 "$1" && has_topic 2 "$1" && has_topic 3 "$1"; }
if wait_for "$WAIT_S" has_topic 4 after-kill && has_topic 4 via-follower &&
  [ "$(field 4 role)" = observer ] && wait_for "$WAIT_S" agree &&
  wait_for "$WAIT_S" observer_registered &&
  rn 4 topic create via-observer -p 1 >/dev/null && wait_for "$WAIT_S" voters_have via-observer; then
  ok "a broker-only node observes the log, registers, and forwards a topic create"
else
  not_ok "a broker-only node observes the log, registers, and forwards a topic create"
fi

# 9b. Replica placement and elections: a topic with -r 3 gets three replicas
#     per partition, its leaders spread over the brokers, every replica in
#     sync. SIGTERM of a broker is a controlled shutdown: the controller
#     fences it first, so on the others no partition is led by it and it is
#     in no ISR before it exits (0); restarted, it registers again.
plan() { # plan NODE: "partition leader epoch replicas isr" lines of topic elect
  rn "$1" topic describe elect 2>/dev/null |
    sed -n 's/.*Partition: \([0-9]*\)\tLeader: \([-0-9]*\)\tLeaderEpoch: \([0-9]*\)\tReplicas: \([0-9,]*\)\tIsr: \([0-9,]*\).*/\1 \2 \3 \4 \5/p'
}
placed() {
  plan 1 >"$TMP/plan1" && [ "$(wc -l <"$TMP/plan1")" = 3 ] || return 1
  plan 2 | cmp -s - "$TMP/plan1" && plan 3 | cmp -s - "$TMP/plan1" || return 1
  [ "$(awk '{print $2}' "$TMP/plan1" | sort -u | wc -l)" = 3 ] || return 1
  ! awk '{ if (split($4, r, ",") != 3 || split($5, i, ",") != 3) exit 1 }' "$TMP/plan1" && return 1
  return 0
}
if rn 2 topic create elect -p 3 -r 3 >/dev/null && wait_for "$WAIT_S" placed; then
  ok "a topic with -r 3: three replicas per partition, in sync, leaders $(awk '{print $2}' "$TMP/plan1" | tr '\n' ' ')spread, the same on every broker"
else
  not_ok "a topic with -r 3: three replicas per partition, in sync, leaders spread"
  sed 's/^/# /' "$TMP/plan1"
fi
GONE=$(awk '$2 >= 1 && $2 <= 3 {print $2; exit}' "$TMP/plan1") # a voter (start_node restarts it)
GONE=${GONE:-1}
STAY=$((GONE % 3 + 1))
moved_off() { # no partition led by $GONE, and $GONE in no ISR, on $STAY
  plan "$STAY" >"$TMP/plan2" && [ "$(wc -l <"$TMP/plan2")" = 3 ] || return 1
  ! awk -v g="$GONE" '{ if ($2 == g || $2 == -1) exit 1; n = split($5, i, ","); for (k = 1; k <= n; k++) if (i[k] == g) exit 1 }' "$TMP/plan2" && return 1
  return 0
}
kill -TERM "${PID[$GONE]}"
wait "${PID[$GONE]}" 2>/dev/null
st=$?
PID[$GONE]=
if [ "$st" = 0 ] && grep -q 'left the cluster: leaderships moved' "$TMP/n$GONE.log" &&
  wait_for "$WAIT_S" moved_off; then
  ok "SIGTERM of broker $GONE: fenced first, its leaderships moved to ISR members, exit 0"
  sed 's/^/# after: /' "$TMP/plan2"
else
  not_ok "SIGTERM of broker $GONE: fenced first, its leaderships moved to ISR members, exit 0 (exit $st)"
  grep -E 'leav|left' "$TMP/n$GONE.log" | sed 's/^/# /'
  sed 's/^/# /' "$TMP/plan2" 2>/dev/null
fi
start_node "$GONE"
back() { [ "$(broker_state "$STAY" "$GONE")" = active ]; }
if wait_for "$WAIT_S" back; then
  ok "broker $GONE restarted: registered and active again"
else
  not_ok "broker $GONE restarted: registered and active again"
fi

# 10. Every broker stops gracefully (exit 0).
st=0
for i in 4 1 2 3; do
  stop_node "$i" || { st=1; echo "# node $i exited badly"; }
done
if [ "$st" = 0 ]; then
  ok "all four stop gracefully"
else
  not_ok "all four stop gracefully"
fi

[ "$FAILED" = 0 ]
