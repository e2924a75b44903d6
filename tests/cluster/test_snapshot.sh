#!/usr/bin/env bash
# test_snapshot.sh — metadata snapshots in a three-broker cluster (issue 13
# item 1, KRaft's): with a low metadata.log.max.record.bytes.between.snapshots
# every broker snapshots its image and deletes the metadata log below the
# previous snapshot; broker 3, stopped while many topics are created,
# deleted and altered, comes back behind the others' log start, fetches the
# snapshot (FetchSnapshot), installs it, and then lists and describes the
# same topics as the others, its partition directories following (topics
# deleted while it was away are gone from its disk); then every broker
# restarts and loads its own snapshot; a damaged newest snapshot falls back
# to the older one; a paused broker installs a snapshot while it runs, its
# partitions following; with every snapshot damaged and the log trimmed,
# runneld refuses to start and says why.
#
#   tests/cluster/test_snapshot.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# Ports are free ones chosen here; data lives under a mktemp directory
# (removed at the end); every process is stopped by its pid. Every wait
# polls a condition with a bound (WAIT_S); figures are printed, never asserted.
set -u

RUNNEL=${1:?usage: test_snapshot.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_snapshot.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" snapshot
# A snapshot every few KiB of metadata, and small metadata segments are not
# needed: each snapshot rolls the metadata log.
NODE_ARGS=(--override metadata.log.max.record.bytes.between.snapshots=4096)
# And a FetchSnapshot answer larger than this goes in parts (8 MiB in
# production): every install here takes the chunked path.
export RN_QUORUM_PART_BYTES=512
MD=__cluster_metadata-0

field_of() { # field_of NODE KEY: cluster status KEY on NODE
  rn "$1" cluster status 2>/dev/null | awk -v k="$2:" '$1 == k { print $2 }'
}

quorum_formed() {
  local i l
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    l=$(field_of "$i" controller)
    [ -n "$l" ] && [ "$l" != "-" ] || return 1
  done
}

# log_start NODE: the base offset of the first segment of NODE's metadata log.
log_start() {
  local f
  f=$(ls "$TMP/n$1/$MD" 2>/dev/null | grep -E '^[0-9]{20}\.log$' | sort | head -n 1)
  [ -n "$f" ] && echo $((10#${f%.log}))
}

snapshots_of() { # snapshots_of NODE: its snapshot files
  ls "$TMP/n$1/$MD" 2>/dev/null | grep -cE '^[0-9]{20}-[0-9]{10}\.checkpoint$'
}

# What a broker says about the cluster, without what moves on its own
# (offsets, heartbeat ages): its brokers, the topic names, then each topic's
# partitions, replicas and configs.
view() {
  local i=$1 t
  # The brokers as the controller registered them: id, endpoint, broker
  # epoch (the registration's offset, which snapshots must keep), state.
  rn "$i" cluster status 2>/dev/null |
    awk '$1 == "BROKER" { b = 1; next } b && NF >= 4 { print "broker", $1, $2, $3, $4 }' | sort
  rn "$i" topic list -i 2>/dev/null || return 1
  for t in $(rn "$i" topic list -i 2>/dev/null); do
    rn "$i" topic describe "$t" 2>/dev/null |
      awk '{ print $1, $2, $3, $4, $5 }' || return 1
  done
}

same_view() { # every live broker's view is the same and not empty
  local a b c
  a=$(view 1) && b=$(view 2) && c=$(view 3) || return 1
  [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ]
}

echo "1..10"
read -r -a PORTS <<<"$(free_ports 9)"
for i in 1 2 3; do
  PORT[$i]=${PORTS[$(((i - 1) * 3 + 0))]}
  HTTP[$i]=${PORTS[$(((i - 1) * 3 + 1))]}
  CTL[$i]=${PORTS[$(((i - 1) * 3 + 2))]}
done

# 1. Three brokers with a low snapshot threshold form the quorum; topics
#    made now are known to broker 3 before it goes.
start_node 1
start_node 2
start_node 3
all_have() { # all_have TOPIC: every live broker lists it
  local i
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    rn "$i" topic list 2>/dev/null | grep -qx "$1" || return 1
  done
}
ok_all=1
wait_for "$WAIT_S" quorum_formed || ok_all=0
for t in gone-1 gone-2 kept-1 kept-2; do
  wait_for "$WAIT_S" rn 1 topic create "$t" -p 2 -r 3 >/dev/null 2>&1 || ok_all=0
done
wait_for "$WAIT_S" all_have kept-2 || ok_all=0
wait_for "$WAIT_S" test -d "$TMP/n3/gone-1-0" || ok_all=0
if [ $ok_all = 1 ]; then
  ok "three brokers form the quorum; broker 3 holds gone-1's partitions"
else
  not_ok "three brokers form the quorum; broker 3 holds gone-1's partitions"
fi

# 2. Broker 3 stops (cleanly: it writes a snapshot of its own). The others
#    go on: many topics created, some deleted (two broker 3 knew), configs
#    altered, partitions added. Their snapshots move the log start past
#    every record broker 3 ever saw.
seen3=$(field_of 3 applied-offset)
stop_node 3
st3=$?
# Broker 3 may have led: each change is retried (bounded) through whichever
# broker answers, made idempotent so a retry of one that landed is no error.
change() { # change CMD…: the topic command through broker 1 or 2 until one succeeds
  local tries=0
  while [ $tries -lt 100 ]; do
    rn $((1 + tries % 2)) topic "$@" >/dev/null 2>&1 && return 0
    tries=$((tries + 1))
    sleep 0.2
  done
  return 1
}
t0=$(now_ms)
churn_ok=1
for n in $(seq 1 40); do
  change create "churn-$n" -p 1 -r 2 --if-not-exists || churn_ok=0
  if [ $((n % 5)) = 0 ]; then
    change alter "churn-$n" -c retention.ms=$((3600000 + n)) || churn_ok=0
  fi
  if [ $((n % 3)) = 0 ]; then
    change delete "churn-$n" --if-exists || churn_ok=0
  fi
done
# Two live brokers: what is added now has two replicas.
change delete gone-1 gone-2 --if-exists || churn_ok=0
change alter kept-1 -c retention.ms=7200000 || churn_ok=0
change alter churn-40 -p 3 || churn_ok=0
change create late -p 3 -r 2 --if-not-exists || churn_ok=0
echo "# churn: 41 creates, 15 deletes, 10 alters, $(($(now_ms) - t0)) ms; broker 3 had applied ${seen3:-?}"
metric() { # metric NODE NAME: its value in NODE's /metrics
  timeout 10 curl -s "http://127.0.0.1:${HTTP[$1]}/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
moved_past() { # both live brokers' metadata logs start past what broker 3 saw
  local a b
  a=$(log_start 1) && b=$(log_start 2) || return 1
  [ "$a" -gt "${seen3:-0}" ] && [ "$b" -gt "${seen3:-0}" ]
}
metrics_agree() { [ "$(metric 1 runnel_metadata_log_start_offset)" = "$(log_start 1)" ]; }
if [ "$st3" = 0 ] && [ $churn_ok = 1 ] && wait_for "$WAIT_S" moved_past &&
  wait_for "$WAIT_S" metrics_agree; then
  echo "# metadata log start: node 1 $(log_start 1), node 2 $(log_start 2); snapshot files: $(snapshots_of 1), $(snapshots_of 2); node 1 wrote $(metric 1 runnel_metadata_snapshots_written_total) snapshots, the latest ending at $(metric 1 runnel_metadata_snapshot_end_offset)"
  ok "with broker 3 away the others snapshot and delete their metadata log past what it saw"
else
  echo "# st3=$st3 churn_ok=$churn_ok log_start: $(log_start 1) $(log_start 2) seen3=${seen3:-?}"
  not_ok "with broker 3 away the others snapshot and delete their metadata log past what it saw"
fi

# 3. Broker 3 restarts behind the leader's log start: it fetches the
#    snapshot and installs it.
t0=$(now_ms)
start_node 3
installed() { grep -q "metadata snapshot installed" "$TMP/n3.log"; }
if wait_for "$WAIT_S" installed && wait_for "$WAIT_S" quorum_formed; then
  echo "# broker 3 installed the snapshot $(($(now_ms) - t0)) ms after its start: $(grep -m1 'metadata snapshot installed' "$TMP/n3.log" | sed 's/.*msg="metadata snapshot installed" //')"
  ok "broker 3, behind the log start, fetches and installs the leader's snapshot"
else
  not_ok "broker 3, behind the log start, fetches and installs the leader's snapshot"
fi

# 4. Then all three list and describe the same topics, and broker 3's disk
#    follows: the topics deleted while it was away are gone, the ones it
#    kept are there.
gone_from_disk() { ! ls -d "$TMP/n3"/gone-1-* "$TMP/n3"/gone-2-* >/dev/null 2>&1; }
if wait_for "$WAIT_S" same_view && wait_for "$WAIT_S" gone_from_disk &&
  test -d "$TMP/n3/kept-1-0" && rn 3 topic list | grep -qx late &&
  ! rn 3 topic list | grep -q '^gone-'; then
  echo "# $(rn 3 topic list | wc -l) topics on each broker"
  ok "after the install all three brokers list and describe the same topics; broker 3's disk follows"
else
  diff <(view 1) <(view 3) | head -n 10 | sed 's/^/# /'
  not_ok "after the install all three brokers list and describe the same topics; broker 3's disk follows"
fi

# 5. A change after the install reaches broker 3 through the log again.
if rn 3 topic create after-install -p 1 -r 3 >/dev/null 2>&1 && wait_for "$WAIT_S" all_have after-install; then
  ok "a topic created after the install reaches all three"
else
  not_ok "a topic created after the install reaches all three"
fi

# 6. Every broker restarts (cleanly, one after another) and loads its own
#    snapshot: the same topics again, everywhere.
restart_ok=1
for i in 1 2 3; do
  stop_node "$i" || restart_ok=0
  : >"$TMP/n$i.log"
  start_node "$i"
  wait_for "$WAIT_S" grep -q "metadata caught up" "$TMP/n$i.log" || restart_ok=0
done
loaded_all() {
  local i
  for i in 1 2 3; do grep -q "metadata snapshot loaded" "$TMP/n$i.log" || return 1; done
}
if [ $restart_ok = 1 ] && loaded_all && wait_for "$WAIT_S" same_view &&
  wait_for "$WAIT_S" all_have after-install; then
  for i in 1 2 3; do
    echo "# node $i: $(grep -m1 'metadata snapshot loaded' "$TMP/n$i.log" | sed 's/.*msg="metadata snapshot loaded" //')"
  done
  ok "every broker restarts from its own snapshot and all three agree"
else
  not_ok "every broker restarts from its own snapshot and all three agree"
fi

# 7. A damaged latest snapshot is never used silently: broker 2, stopped,
#    gets a byte of its newest snapshot flipped; it starts from the older
#    one and the log after it, says so, and agrees with the others.
stop_node 2
newest=$(ls "$TMP/n2/$MD" | grep -E '^[0-9]{20}-[0-9]{10}\.checkpoint$' | sort | tail -n 1)
python3 - "$TMP/n2/$MD/$newest" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x40
open(p, 'wb').write(bytes(b))
EOF
: >"$TMP/n2.log"
start_node 2
if wait_for "$WAIT_S" grep -q "metadata caught up" "$TMP/n2.log" &&
  grep -q "metadata snapshot damaged, not used" "$TMP/n2.log" && wait_for "$WAIT_S" same_view; then
  echo "# $(grep -m1 'metadata snapshot damaged' "$TMP/n2.log" | sed 's/.*msg="metadata snapshot damaged, not used" //')"
  ok "a damaged newest snapshot is reported and an older one used; the brokers agree"
else
  not_ok "a damaged newest snapshot is reported and an older one used; the brokers agree"
fi

# 8. A broker that is running but cut off (SIGSTOP) while topics come and
#    go past the others' log start installs the snapshot live: its
#    listeners hear the difference, so the partitions of a topic deleted
#    meanwhile leave its disk and those of one created meanwhile open.
wait_for "$WAIT_S" test -d "$TMP/n3/kept-2-0"
before=$(grep -c "metadata snapshot installed" "$TMP/n3.log")
seen3=$(field_of 3 log-end-offset)
kill -STOP "${PID[3]}"
churn_ok=1
change delete kept-2 --if-exists || churn_ok=0
for n in $(seq 1 30); do
  change create "pause-$n" -p 1 -r 2 --if-not-exists || churn_ok=0
  change alter "pause-$n" -c retention.ms=$((3600000 + n)) || churn_ok=0
done
wait_for "$WAIT_S" moved_past || churn_ok=0
kill -CONT "${PID[3]}"
installed_again() { [ "$(grep -c "metadata snapshot installed" "$TMP/n3.log")" -gt "$before" ]; }
if [ $churn_ok = 1 ] && wait_for "$WAIT_S" installed_again && wait_for "$WAIT_S" same_view &&
  wait_for "$WAIT_S" eval '! test -d "$TMP/n3/kept-2-0"' && grep -q 'told=yes' "$TMP/n3.log"; then
  echo "# $(grep 'metadata image from snapshot' "$TMP/n3.log" | tail -n 1 | sed 's/.*msg="metadata image from snapshot" //')"
  ok "a paused broker behind the log start installs the snapshot live and its disk follows"
else
  echo "# churn_ok=$churn_ok $(grep 'metadata image from snapshot' "$TMP/n3.log" | tail -n 1)"
  not_ok "a paused broker behind the log start installs the snapshot live and its disk follows"
fi

# 9. With every snapshot damaged and the log no longer starting at 0, the
#    state below the log start is nowhere: runneld refuses to start and
#    says why. With the files back it starts and agrees again.
stop_node 2
cp -a "$TMP/n2/$MD" "$TMP/md2.bak"
for f in "$TMP/n2/$MD"/*.checkpoint; do
  printf 'X' | dd of="$f" bs=1 seek=40 conv=notrunc status=none
done
: >"$TMP/n2.log"
timeout 60 "$RUNNELD" --data-dir "$TMP/n2" --listen "127.0.0.1:${PORT[2]}" \
  --http "127.0.0.1:${HTTP[2]}" --node-id 2 --reactors 1 \
  --override "controller.listener=127.0.0.1:${CTL[2]}" \
  --override "controller.quorum.voters=$(voters)" "${TIMING[@]}" "${NODE_ARGS[@]}" 2>>"$TMP/n2.log"
st=$?
rm -rf "${TMP:?}/n2/$MD"
mv "$TMP/md2.bak" "$TMP/n2/$MD"
start_node 2
if [ "$st" = 1 ] && grep -q "no valid snapshot covers" "$TMP/n2.log" &&
  wait_for "$WAIT_S" grep -q "metadata caught up" "$TMP/n2.log" && wait_for "$WAIT_S" same_view; then
  echo "# $(grep -m1 -o 'metadata log [^"]*starts at offset [0-9]*' "$TMP/n2.log")"
  ok "every snapshot damaged and the log trimmed: runneld refuses to start, saying why"
else
  not_ok "every snapshot damaged and the log trimmed: runneld refuses to start, saying why (exit $st)"
fi

# 10. Offline replay of a compacted broker: `runnel replay` finds the
#     topic from the newest snapshot and the log after it (the log before
#     it is gone), and reads what consume read.
seq 1 50 | timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[1]}" produce after-install -p 0 --acks all \
  2>/dev/null
timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[1]}" consume after-install -e -f '%s\n' >"$TMP/consumed" \
  2>/dev/null
for i in 1 2 3; do stop_node "$i" || true; done
replay_ok=1
for i in 1 2 3; do
  first=$(ls "$TMP/n$i/$MD" | grep -m1 '\.log$')
  "$RUNNEL" replay "$TMP/n$i" after-install --format raw >"$TMP/replay$i" 2>"$TMP/replay$i.err"
  if [ "$first" = "00000000000000000000.log" ] || ! cmp -s "$TMP/consumed" "$TMP/replay$i" ||
    [ "$(wc -l <"$TMP/replay$i")" != 50 ]; then
    replay_ok=0
    echo "# node $i: log from $first, $(wc -l <"$TMP/replay$i") records: $(head -c 200 "$TMP/replay$i.err")"
  fi
done
if [ "$replay_ok" = 1 ]; then
  ok "runnel replay reads a topic from each broker's compacted data directory (from its snapshot on)"
else
  not_ok "runnel replay reads a topic from each broker's compacted data directory"
fi
[ "$FAILED" = 0 ]
