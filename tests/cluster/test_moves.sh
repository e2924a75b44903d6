#!/usr/bin/env bash
# test_moves.sh — replica moves between real runneld processes on 127.0.0.1
# (issue 13 item 3): three voters and a fourth broker.
#
#  a. `runnel topic move` replaces one replica of an RF=2 partition
#     (min.insync.replicas=2) while an idempotent acks=all load writes
#     numbered records (workload.c): the move completes (replicas = the
#     target, all in the ISR), the checker finds no acknowledged record lost
#     or duplicated and no offset with two records, the target's copies are
#     byte-identical below the high watermark, and the removed replica's
#     directory is gone from its broker (deleted, as Kafka's StopReplica
#     with delete=true).
#  b. `runnel cluster drain BROKER --throttle` under the same load: afterwards the
#     broker holds no replica of any topic (the internal ones too), leads
#     nothing and keeps no partition directory; the data checks as in (a).
#  c. a move with --throttle: the catch-up rate of the replica being added
#     and the acks=all latency of another partition whose follower is that
#     same broker are printed (figures, never asserted); the move completes
#     and the copies are identical.
#  d. a replica moved away while its broker is stopped is deleted by that
#     broker's start-up sweep when it comes back.
#
#   tests/cluster/test_moves.sh RUNNEL RUNNELD WORKLOAD   (meson passes them; prints TAP)
#
# Every wait polls a condition with a bound (WAIT_S); nothing asserts a time.
set -u

RUNNEL=${1:?usage: test_moves.sh RUNNEL RUNNELD WORKLOAD}
RUNNELD=${2:?usage: test_moves.sh RUNNEL RUNNELD WORKLOAD}
WORKLOAD=${3:?usage: test_moves.sh RUNNEL RUNNELD WORKLOAD}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKER=$HERE/checker.py
. "$HERE/lib.sh" moves
# Throttle sizes for (c), small enough for a loaded 2-core machine;
# tests/cluster/measure_moves.sh measures 200 MiB.
BIG_RECORDS=${RUNNEL_MOVES_BIG_RECORDS:-16384} # 1 KiB records: 16 MiB
THROTTLE=${RUNNEL_MOVES_THROTTLE:-4194304}    # 4 MiB/s

read -r PORT[1] PORT[2] PORT[3] PORT[4] HTTP[1] HTTP[2] HTTP[3] HTTP[4] CTL[1] CTL[2] CTL[3] \
  < <(free_ports 11)
ALL="127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]},127.0.0.1:${PORT[4]}"

start_broker4() { # node 4: process.roles=broker, no controller listener
  "$RUNNELD" --data-dir "$TMP/n4" --listen "127.0.0.1:${PORT[4]}" \
    --http "127.0.0.1:${HTTP[4]}" --node-id 4 --reactors 1 --override process.roles=broker \
    --override "controller.quorum.voters=$(voters)" "${TIMING[@]}" 2>>"$TMP/n4.log" &
  PID[4]=$!
}
for i in 1 2 3; do start_node "$i"; done
start_broker4

four_active() {
  [ "$(rn "$1" cluster status 2>/dev/null | awk '$1=="BROKER"{t=1;next} t && $4=="active"' |
    wc -l)" = 4 ]
}
if wait_for "$WAIT_S" four_active 1 && wait_for "$WAIT_S" four_active 4; then
  ok "four brokers registered and active"
else
  not_ok "four brokers registered and active"
fi

# row TOPIC PARTITION [NODE]: "replicas isr leader adding hw" as NODE (default 1) describes it
row() {
  rn "${3:-1}" topic describe "$1" 2>/dev/null | awk -v p="$2" -F'\t' '
    { delete f; for (i = 1; i <= NF; i++) { split($i, kv, ": "); f[kv[1]] = kv[2] } }
    ("Replicas" in f) && f["Partition"] == p { print f["Replicas"], f["Isr"], f["Leader"], (f["AddingReplicas"] == "" ? "-" : f["AddingReplicas"]), f["HighWatermark"]; exit }'
}
# lrow TOPIC PARTITION: row as the partition's leader describes it (a broker
# without a copy shows no offsets: HighWatermark -1)
lrow() {
  local r s l a h
  read -r r s l a h <<<"$(row "$1" "$2")"
  row "$1" "$2" "$l"
}
sorted() { echo "$1" | tr ',' '\n' | sort -n | paste -sd, -; }

# settled TOPIC PARTITION LIST: replicas are LIST, all of them in sync, no
# move left, a leader among them; every broker sees it so.
settled() {
  local i r s l a h
  for i in 1 2 3 4; do
    read -r r s l a h <<<"$(row "$1" "$2" "$i")"
    [ "$(sorted "$r")" = "$(sorted "$3")" ] && [ "$(sorted "$s")" = "$(sorted "$3")" ] &&
      [ "$a" = - ] && echo ",$3," | grep -q ",$l," || return 1
  done
}

rn_settled_live() { # rn_settled_live TOPIC LIST: settled as the live brokers see it
  local i r s l a h
  for i in 1 2 3 4; do
    [ -n "${PID[$i]:-}" ] || continue
    read -r r s l a h <<<"$(row "$1" 0 "$i")"
    [ "$(sorted "$r")" = "$(sorted "$2")" ] && [ "$(sorted "$s")" = "$(sorted "$2")" ] &&
      [ "$a" = - ] || return 1
  done
}

created() { # created TOPIC PARTITIONS: every partition has a leader on every broker
  local i p r s l a h
  for i in 1 2 3 4; do
    for p in $(seq 0 $(($2 - 1))); do
      read -r r s l a h <<<"$(row "$1" "$p" "$i")"
      [ -n "$l" ] && [ "$l" != -1 ] && [ "$(sorted "$r")" = "$(sorted "$s")" ] || return 1
    done
  done
}

hw_at_least() { local r s l a h; read -r r s l a h <<<"$(lrow "$1" "$2")"; [ "${h:-0}" -ge "$3" ] 2>/dev/null; }

# load TOPIC SECONDS RECORDS: the idempotent acks=all load, in the background (LOAD)
load() {
  "$WORKLOAD" load --brokers "$ALL" --topic "$1" --history "$TMP/$1.jsonl" --acks all \
    --producers 2 --consumers 1 --members 0 --records "$3" --rate 200 --seconds "$2" \
    --delivery-ms 60000 --prefix "$1-" 2>>"$TMP/workload.err" &
  LOAD=$!
}

# wait_load: the load ends (bounded), then the final read after the move
wait_load() {
  local end=$(($(date +%s) + 180))
  while kill -0 "$LOAD" 2>/dev/null; do
    [ "$(date +%s)" -ge "$end" ] && { kill -KILL "$LOAD"; wait "$LOAD" 2>/dev/null; return 1; }
    sleep 0.2
  done
  wait "$LOAD" || return 1
  timeout 120 "$WORKLOAD" final --brokers "$ALL" --topic "$1" --history "$TMP/$1.jsonl" \
    --seconds 60 2>>"$TMP/workload.err"
}

# check TOPIC PARTITIONS: the history and, per partition, its replicas'
# bytes below the high watermark (the replicas as describe has them now)
check() {
  local t=$1 p r s l a h args=()
  for p in $(seq 0 $(($2 - 1))); do
    read -r r s l a h <<<"$(lrow "$t" "$p")"
    [ "${h:--1}" -gt 0 ] 2>/dev/null || return 1 # no high watermark: nothing would be compared
    args+=(--replicas "$(echo "$r" | tr ',' '\n' | sed "s|^|$TMP/n|" | paste -sd, -)"
      --partition-dir "$t-$p" --hw "$h")
  done
  python3 "$CHECKER" "$TMP/$t.jsonl" "${args[@]}" >"$TMP/$t.checker" 2>&1
}
figures() { grep -E '^(acknowledged|lost|duplicate|offset_conflict|replica_mismatch|read)' "$TMP/$1.checker" | tr '\n' ' '; }

batch_bytes() { # batch_bytes PARTITION_DIR: bytes of record batches in its segments (not preallocated room)
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from checker import read_batches
print(sum(len(b) for _, _, b in read_batches(sys.argv[2])))' "$HERE" "$1"
}

gone() { # gone NODE DIR: no DIR and no DIR.deleted-* under NODE's data dir
  [ ! -e "$TMP/n$1/$2" ] && ! compgen -G "$TMP/n$1/$2.deleted-*" >/dev/null
}

# ---- a. topic move under load ---------------------------------------------------------

rn 1 topic create mv -p 1 -r 2 -c min.insync.replicas=2 >/dev/null 2>&1
if wait_for "$WAIT_S" created mv 1; then
  read -r R _ L _ _ <<<"$(row mv 0)"
  ok "topic mv: replicas $R, leader $L"
else
  not_ok "topic mv created with two replicas in sync ($(row mv 0))"
  R=1,2 L=1
fi
# Replace the leader's replica (the harder case: it hands over) by a broker
# that has none.
OLD=$L
KEEP=$(echo "$R" | tr ',' '\n' | grep -vx "$OLD" | head -1)
NEW=$(printf '1\n2\n3\n4\n' | grep -vxF -f <(echo "$R" | tr ',' '\n') | head -1)
load mv 25 5000
wait_for "$WAIT_S" hw_at_least mv 0 400
t0=$(now_ms)
if rn 1 topic move mv 0 "$NEW,$KEEP" >"$TMP/move-a.out" 2>&1 &&
  wait_for "$WAIT_S" settled mv 0 "$NEW,$KEEP"; then
  ok "mv-0 moved from $R to $NEW,$KEEP under load ($(($(now_ms) - t0)) ms): replicas = target, all in sync"
else
  not_ok "mv-0 moved from $R to $NEW,$KEEP under load ($(row mv 0); $(cat "$TMP/move-a.out"))"
fi
if wait_load mv && check mv 1; then
  ok "mv: no acknowledged record lost or duplicated, no offset with two records, copies identical ($(figures mv))"
else
  not_ok "mv: data checks ($(figures mv); see below)"
  sed 's/^/# /' "$TMP/mv.checker" | head -30
fi
if wait_for "$WAIT_S" gone "$OLD" mv-0 && [ -d "$TMP/n$NEW/mv-0" ]; then
  ok "the removed replica's directory is gone from broker $OLD"
else
  not_ok "the removed replica's directory is gone from broker $OLD ($(ls "$TMP/n$OLD" | tr '\n' ' '))"
fi

# ---- b. cluster drain under load --------------------------------------------------------

rn 1 topic create dr -p 2 -r 2 -c min.insync.replicas=2 >/dev/null 2>&1
wait_for "$WAIT_S" created dr 2 || not_ok "topic dr created ($(row dr 0); $(row dr 1))"
read -r _ _ D _ _ <<<"$(row dr 0)" # drain the leader of dr-0
load dr 25 5000
wait_for "$WAIT_S" hw_at_least dr 0 200
topics() { rn 1 topic list -i 2>/dev/null; }
# drained NODE: no partition of any topic names NODE as a replica or leader
drained() {
  local t
  for t in $(topics); do
    rn 1 topic describe "$t" 2>/dev/null | awk -F'\t' -v d="$1" '
      { delete f; for (i = 1; i <= NF; i++) { split($i, kv, ": "); f[kv[1]] = kv[2] } }
      ("Replicas" in f) {
        if (f["Leader"] == d || ("," f["Replicas"] ",") ~ ("," d ",") || f["AddingReplicas"] != "") bad = 1 }
      END { exit bad }' || return 1
  done
}
no_partition_dirs() { # the drained broker keeps no partition directory (its metadata log only)
  [ -z "$(ls "$TMP/n$1" | grep -E -e '-[0-9]+$|\.deleted-' | grep -v '^__cluster_metadata-0$')" ]
}
t0=$(now_ms)
# With a throttle well above the load's rate (50 MiB/s): the flag's path, not its effect.
if rn 2 cluster drain "$D" --throttle 52428800 >"$TMP/drain.out" 2>&1 &&
  grep -q 'throttled to 52428800 bytes/s' "$TMP/drain.out" && wait_for "$WAIT_S" drained "$D"; then
  ok "broker $D drained under load ($(($(now_ms) - t0)) ms): it holds no replica and leads nothing ($(grep -c '^moving' "$TMP/drain.out") moves)"
else
  not_ok "broker $D drained under load ($(sed 's/^/# /' "$TMP/drain.out"))"
fi
if wait_load dr && check dr 2; then
  ok "dr: no acknowledged record lost or duplicated, no offset with two records, copies identical ($(figures dr))"
else
  not_ok "dr: data checks ($(figures dr); see below)"
  sed 's/^/# /' "$TMP/dr.checker" | head -30
fi
if wait_for "$WAIT_S" no_partition_dirs "$D"; then
  ok "the drained broker $D keeps no partition directory"
else
  not_ok "the drained broker $D keeps no partition directory ($(ls "$TMP/n$D" | tr '\n' ' '))"
fi

# ---- c. the throttle ----------------------------------------------------------------------

# A partition of BIG_RECORDS KiB on one broker A (not D: drained brokers
# stay usable, but keep the figures apart), moved to A,B with --throttle
# while an acks=all bench writes to another RF=2 partition followed by B.
LIVE=$(printf '1\n2\n3\n4\n' | grep -vx "$D" | paste -sd' ' -)
read -r A B C <<<"$LIVE"
rn "$A" topic create big -p 1 -r 1 >/dev/null 2>&1
rn "$A" topic create lat -p 1 -r 2 >/dev/null 2>&1
if wait_for "$WAIT_S" created big 1 && wait_for "$WAIT_S" created lat 1; then
  read -r BA _ _ _ _ <<<"$(row big 0)"
  read -r LR _ LL _ _ <<<"$(row lat 0)"
  A=$BA
  B=$(echo "$LIVE" | tr ' ' '\n' | grep -vx "$A" | head -1)
  ok "topics big (on $A) and lat (replicas $LR) created"
else
  not_ok "topics big and lat created"
fi
# lat's follower is B when it can be: move it there first (no throttle; tiny).
LF=$(echo "$LR" | tr ',' '\n' | grep -vx "$LL" | head -1)
if [ "$LF" != "$B" ] && [ "$LL" != "$B" ]; then
  rn 1 topic move lat 0 "$LL,$B" >/dev/null 2>&1
  wait_for "$WAIT_S" settled lat 0 "$LL,$B"
fi
timeout 300 "$RUNNEL" -b "127.0.0.1:${PORT[$A]}" bench produce big -p 0 --records "$BIG_RECORDS" \
  --record-size 1024 --acks 1 --json >"$TMP/big.json" 2>>"$TMP/bench.err"
read -r _ _ _ _ BIGHW <<<"$(lrow big 0)"
BYTES=$(batch_bytes "$TMP/n$A/big-0")
t0=$(now_ms)
if rn 1 topic move big 0 "$A,$B" --throttle "$THROTTLE" >"$TMP/move-c.out" 2>&1; then
  # Until the move completes (SIGINT ends it with its figures), bounded.
  timeout 300 "$RUNNEL" -b "$ALL" bench produce lat -p 0 --records 30000 --record-size 1024 \
    --acks all --throughput 300 --time-limit 120 --json >"$TMP/lat.json" 2>>"$TMP/bench.err" &
  BENCH=$!
  # Under way for seconds at least (16 MiB at 4 MiB/s): describe shows it.
  shows_throttle() { rn 1 topic describe big 2>/dev/null | grep -q "AddingReplicas: $B.*Throttle: $THROTTLE"; }
  if wait_for 10 shows_throttle; then
    ok "describe shows the move under way with its throttle"
  else
    not_ok "describe shows the move under way with its throttle ($(rn 1 topic describe big 2>&1 | tail -1))"
  fi
  if wait_for 300 settled big 0 "$A,$B"; then
    ms=$(($(now_ms) - t0))
    kill -INT "$BENCH" 2>/dev/null
    wait "$BENCH"
    ok "big-0 ($BIGHW records) moved to $A,$B with --throttle $THROTTLE: in sync after $ms ms"
    awk -v b="$BYTES" -v ms="$ms" -v t="$THROTTLE" 'BEGIN {
      printf "# figure: catch-up %.1f MiB/s with a throttle of %.1f MiB/s (%.1f MiB in %.1f s)\n",
        b / 1048576 / (ms / 1000), t / 1048576, b / 1048576, ms / 1000 }'
    echo "# figure: acks=all on lat-0 (follower $B) during the move: $(cat "$TMP/lat.json")"
  else
    kill "$BENCH" 2>/dev/null
    wait "$BENCH" 2>/dev/null
    not_ok "big-0 moved to $A,$B with --throttle ($(row big 0))"
  fi
else
  not_ok "big-0 move with --throttle accepted ($(cat "$TMP/move-c.out"))"
fi
# The same catch-up unthrottled, for comparison: C joins.
C=$(echo "$LIVE" | tr ' ' '\n' | grep -vx "$A" | grep -vx "$B" | head -1)
t0=$(now_ms)
if rn 1 topic move big 0 "$A,$B,$C" >"$TMP/move-c2.out" 2>&1 && wait_for 300 settled big 0 "$A,$B,$C"; then
  ms=$(($(now_ms) - t0))
  ok "big-0 moved to $A,$B,$C without a throttle: in sync after $ms ms"
  awk -v b="$BYTES" -v ms="$ms" 'BEGIN {
    printf "# figure: catch-up %.1f MiB/s without a throttle (%.1f MiB in %.1f s)\n",
      b / 1048576 / (ms / 1000), b / 1048576, ms / 1000 }'
else
  not_ok "big-0 moved to $A,$B,$C without a throttle ($(row big 0))"
fi
if [ "${BIGHW:--1}" -gt 0 ] 2>/dev/null &&
  python3 "$CHECKER" --replicas "$TMP/n$A,$TMP/n$B,$TMP/n$C" --partition-dir big-0 --hw "$BIGHW" \
    >"$TMP/big.checker" 2>&1; then
  ok "big-0: the throttled and the unthrottled copies are byte-identical to the leader's"
else
  not_ok "big-0: copies identical"
  sed 's/^/# /' "$TMP/big.checker" | head -20
fi

# ---- d. a replica moved away while its broker is down ---------------------------------

# Its broker learns it only on coming back, from the metadata it catches up
# with before it opens anything: the start-up sweep deletes the copy (no
# move happens while it runs, so no role change would).
rn 1 topic create dn -p 1 -r 2 >/dev/null 2>&1
if wait_for "$WAIT_S" created dn 1; then
  read -r DR _ DL _ _ <<<"$(row dn 0)"
  F=$(echo "$DR" | tr ',' '\n' | grep -vx "$DL" | head -1)
  X=$(printf '1\n2\n3\n4\n' | grep -vxF -f <(echo "$DR" | tr ',' '\n') | head -1)
  echo x | timeout 30 "$RUNNEL" -b "$ALL" produce dn -p 0 >/dev/null 2>&1
  wait_for "$WAIT_S" test -d "$TMP/n$F/dn-0"
  stop_node "$F"
  if rn "$DL" topic move dn 0 "$DL,$X" >"$TMP/move-d.out" 2>&1 && wait_for "$WAIT_S" rn_settled_live dn "$DL,$X" &&
    [ -d "$TMP/n$F/dn-0" ]; then
    ok "dn-0 moved off broker $F while it was down (its copy still on its disk)"
  else
    not_ok "dn-0 moved off broker $F while it was down ($(row dn 0 "$DL"); $(cat "$TMP/move-d.out"))"
  fi
  if [ "$F" = 4 ]; then start_broker4; else start_node "$F"; fi
  if wait_for "$WAIT_S" four_active "$DL" && wait_for "$WAIT_S" gone "$F" dn-0; then
    ok "broker $F back: the copy it no longer holds is deleted at start"
  else
    not_ok "broker $F back: the copy it no longer holds is deleted at start ($(ls "$TMP/n$F" | tr '\n' ' '))"
  fi
else
  not_ok "topic dn created"
fi

for i in 1 2 3 4; do
  if stop_node "$i"; then ok "node $i stops cleanly on SIGTERM"; else not_ok "node $i stops cleanly on SIGTERM"; fi
done
echo "1..$N"
[ "$FAILED" = 0 ]
