#!/usr/bin/env bash
# test_elr.sh — eligible leader replicas (KIP-966) on real brokers
# (issue 13 item 3: "leader election from the ISR, then eligible leader
# replicas"). Five brokers, three of them the metadata quorum's voters
# (1-3), so that two replicas can be down at once while the quorum goes
# on; an RF=3, min.insync.replicas=2 topic placed on brokers 1, 4 and 5:
#   1. acks=all records 1..1000 on all three copies;
#   2. follower A paused (SIGSTOP) past the session timeout: fenced, out of
#      the ISR {L, B}, which still holds min.insync.replicas: A is NOT
#      eligible (records may be acknowledged without it from now on);
#   3. records 1001..1500 with acks=all (ISR {L, B});
#   4. follower B paused: the ISR {L} is below min.insync.replicas, so the
#      high watermark stops and B, holding everything below it, is
#      eligible (describe shows Elr: B); an acks=all produce is not
#      acknowledged (NOT_ENOUGH_REPLICAS, retried until it times out);
#   5. the leader L killed -9: no live ISR member, the partition has no
#      leader; A continued: not eligible, still no leader;
#   6. B continued: elected from the ELR (without KIP-966 the partition
#      would wait for L), and it serves 1..1500, every acknowledged record;
#   7. with A in sync again the ISR reaches min.insync.replicas: acks=all
#      produces go on (1501..1600) and the ELR empties;
#   8. L restarted (a new incarnation: never eligible) truncates to the new
#      leader's log and catches up; the three copies read back by
#      `runnel replay` are the same records, 1..1600 once each.
#
#   tests/cluster/test_elr.sh RUNNEL RUNNELD   (meson passes both; prints TAP)
#
# Ports are free ones chosen here; data lives under a mktemp directory
# (removed at the end); every process is stopped by its pid; every wait
# polls a condition with a bound (WAIT_S).
set -u

RUNNEL=${1:?usage: test_elr.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_elr.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" elr

T=e

# field_is NODE NAME VALUE: NODE's describe says NAME: VALUE ("" = absent)
field_is() {
  [ "$(dfield "$1" "$2" | tr ',' '\n' | sort -n | paste -sd, -)" = "$3" ]
}
produce_seq() { # produce_seq NODE FROM TO: acks=all records FROM..TO through NODE
  seq "$2" "$3" | timeout 120 "$RUNNEL" -b "127.0.0.1:${PORT[$1]}" -X delivery.timeout.ms=60000 \
    produce "$T" -p 0 --acks all 2>>"$TMP/produce.log"
}
five_active() {
  [ "$(rn 2 cluster status 2>/dev/null | awk '$1=="BROKER"{t=1;next} t && $4=="active"' | wc -l)" = 5 ]
}

# The roles below are read once: no preferred-leader rebalancing may move
# the leadership to broker 1 (the move's first replica) under the test.
NODE_ARGS=(--override auto.leader.rebalance.enable=false)
read -r -a P < <(free_ports 15)
for i in 1 2 3 4 5; do
  PORT[$i]=${P[$((i - 1))]}
  HTTP[$i]=${P[$((i + 4))]}
  CTL[$i]=${P[$((i + 9))]}
done
for i in 1 2 3 4 5; do start_node "$i"; done

# 1. The topic on brokers 1, 4, 5 and 1..1000 on all three. Every status
# question goes to broker 2 or 3 (voters that stay up throughout).
wait_for "$WAIT_S" five_active
rn 2 topic create "$T" -p 1 -r 3 -c min.insync.replicas=2 >/dev/null
moved() { field_is 2 Replicas 1,4,5 && field_is 2 Isr 1,4,5 && [ -z "$(dfield 2 AddingReplicas)" ]; }
move_it() { rn 2 topic move "$T" 0 1,4,5 >"$TMP/move.out" 2>&1; }
if wait_for 60 move_it && wait_for "$WAIT_S" moved &&
  L=$(dfield 2 Leader) && [ "$L" -ge 1 ] 2>/dev/null && produce_seq "$L" 1 1000; then
  ok "topic $T: RF=3 on 1,4,5, min.insync.replicas=2, leader $L, 1..1000 acknowledged with acks=all"
else
  not_ok "topic $T on 1,4,5 with 1..1000 ($(cat "$TMP/move.out"); $(describe 2))"
  L=${L:-1}
fi
case $L in 1) A=4 B=5 ;; 4) A=5 B=1 ;; *) A=1 B=4 ;; esac
ISR_LB=$(printf '%s\n' "$L" "$B" | sort -n | paste -sd, -)

# 2. A paused past the session timeout: out of the ISR, not eligible.
kill -STOP "${PID[$A]}"
if wait_for "$WAIT_S" field_is 2 Isr "$ISR_LB" && field_is 2 Elr ""; then
  ok "follower $A paused: ISR $ISR_LB (still min.insync.replicas), $A not eligible"
else
  not_ok "follower $A paused: ISR $ISR_LB, no ELR ($(describe 2))"
fi

# 3. 1001..1500 without A.
if produce_seq "$L" 1001 1500; then
  ok "1001..1500 acknowledged with acks=all by the ISR $ISR_LB"
else
  not_ok "1001..1500 acknowledged with acks=all by the ISR $ISR_LB"
fi

# 4. B paused: ISR {L} below min.insync.replicas, B eligible, acks=all refused.
kill -STOP "${PID[$B]}"
if wait_for "$WAIT_S" field_is 2 Isr "$L" && field_is 2 Elr "$B"; then
  ok "follower $B paused: ISR $L is below min.insync.replicas, Elr: $B"
else
  not_ok "follower $B paused: ISR $L, Elr $B ($(describe 2))"
fi
echo 9999 | timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[$L]}" -X delivery.timeout.ms=3000 \
  produce "$T" -p 0 --acks all >/dev/null 2>"$TMP/nes.err"
st=$?
# (librunnel retries NOT_ENOUGH_REPLICAS, retriable as in Kafka, until its
# delivery timeout.) The high watermark stays where it was.
if [ "$st" != 0 ] && field_is "$L" HighWatermark 1500; then
  ok "an acks=all produce with the ISR below min.insync.replicas is not acknowledged: $(head -c 160 "$TMP/nes.err")"
else
  not_ok "an acks=all produce with the ISR below min.insync.replicas is not acknowledged (exit $st: $(head -c 200 "$TMP/nes.err"); leader $L: $(describe "$L"))"
fi

# 5. L killed -9: no leader; A back (not eligible): still none.
kill -KILL "${PID[$L]}"
wait "${PID[$L]}" 2>/dev/null
PID[$L]=
kill -CONT "${PID[$A]}"
leaderless() { field_is 2 Leader -1 && field_is 3 Leader -1; }
if wait_for "$WAIT_S" leaderless && sleep 3 && leaderless; then
  ok "leader $L killed, follower $A back: no leader ($A may miss acknowledged records)"
else
  not_ok "leader $L killed, follower $A back: no leader ($(describe 2))"
fi

# 6. B back: elected from the ELR; it serves every acknowledged record.
kill -CONT "${PID[$B]}"
if wait_for "$WAIT_S" field_is 2 Leader "$B" && wait_for "$WAIT_S" field_is "$B" Leader "$B"; then
  ok "follower $B back: elected from the ELR ($(describe "$B" | tr '\t' ' ' | sed 's/^ *//'))"
else
  not_ok "follower $B back: elected from the ELR ($(describe 2))"
fi
timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[$B]}" consume "$T" -p 0 -e -f '%s\n' >"$TMP/got" 2>/dev/null
seq 1 1500 >"$TMP/want"
if cmp -s "$TMP/want" "$TMP/got"; then
  ok "the new leader $B serves 1..1500: every acknowledged record, once"
else
  not_ok "the new leader $B serves 1..1500 ($(wc -l <"$TMP/got") records, last $(tail -1 "$TMP/got"))"
fi

# 7. A catches up: the ISR reaches min.insync.replicas, acks=all goes on.
ISR_AB=$(printf '%s\n' "$A" "$B" | sort -n | paste -sd, -)
if wait_for "$WAIT_S" field_is "$B" Isr "$ISR_AB" && produce_seq "$B" 1501 1600 &&
  field_is "$B" Elr ""; then
  ok "follower $A in sync again: ISR $ISR_AB, 1501..1600 acknowledged, the ELR empty"
else
  not_ok "ISR $ISR_AB, 1501..1600 acknowledged, ELR empty ($(describe "$B"))"
fi

# 8. L back: a follower that truncates and catches up; three equal copies.
start_node "$L"
if wait_for "$WAIT_S" field_is "$B" Isr 1,4,5; then
  ok "the killed leader $L back in sync as a follower"
else
  not_ok "the killed leader $L back in sync ($(describe "$B"))"
fi
for i in 5 4 3 2 1; do stop_node "$i" || not_ok "node $i stops cleanly on SIGTERM"; done
seq 1 1600 >"$TMP/want"
same=1
for i in 1 4 5; do
  "$RUNNEL" replay "$TMP/n$i" "$T" --format raw >"$TMP/replay$i" 2>/dev/null
  cmp -s "$TMP/want" "$TMP/replay$i" || { same=0; echo "# node $i: $(wc -l <"$TMP/replay$i") records"; }
done
if [ "$same" = 1 ]; then
  ok "three copies, read back offline, hold 1..1600 once each"
else
  not_ok "three copies hold 1..1600 once each"
fi
echo "1..$N"
[ "$FAILED" = 0 ]
