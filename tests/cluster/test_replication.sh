#!/usr/bin/env bash
# test_replication.sh — data replication between three real runneld
# processes on 127.0.0.1 (DESIGN §8, issue 13 item 4): an RF=3 topic with
# min.insync.replicas=2 takes acks=all produces and all three copies agree
# byte for byte; kill -9 of a follower does not stop produces and the
# follower catches up when it returns; kill -9 of the leader in the middle
# of an idempotent acks=all produce elects a new leader from the ISR and the
# producer finishes on it with no acknowledged record lost and none
# duplicated; a deposed leader's tail that no follower fetched (acks=1,
# followers stopped) is truncated to the new leader's log when it returns;
# with both followers stopped, neither an idempotent acks=all batch nor its
# retries (duplicates of what the leader holds) are acknowledged.
#
#   tests/cluster/test_replication.sh RUNNEL RUNNELD   (meson passes both; prints TAP)
#
# Every wait polls a condition with a bound (WAIT_S); no sleep synchronises
# anything and no time is asserted. "Identical" means the record batches in
# each node's segment files are the same bytes (waited for: a follower may
# be a fetch behind, never different).
set -u

RUNNEL=${1:?usage: test_replication.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_replication.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" repl
T=r
BROKERS=

brokers() { # every node's native address, for clients that follow leaders
  echo "127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}"
}

leader() { # the partition's leader as the first live node sees it
  local i
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    dfield "$i" Leader
    return
  done
}

# copy NODE: NODE's copy of $T-0 as it is on disk: the record batches of
# its segment files in order (Kafka's RecordBatch v2: base_offset i64,
# batch_length i32 …, last_offset_delta i32 at byte 23), into $TMP/cNODE;
# prints the offset after the last batch. Safe while the broker runs.
copy() {
  python3 - "$TMP/n$1/$T-0" "$TMP/c$1" <<'PY'
import glob, mmap, os, struct, sys
out, end = bytearray(), 0
for seg in sorted(glob.glob(os.path.join(sys.argv[1], "*.log"))):
    with open(seg, "rb") as f:  # preallocated: read batch by batch, not the whole file
        if os.fstat(f.fileno()).st_size == 0:
            continue
        b = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    pos = 0
    while pos + 27 <= len(b):
        base, blen = struct.unpack_from(">qi", b, pos)
        if blen <= 0 or pos + 12 + blen > len(b):
            break
        out += b[pos:pos + 12 + blen]
        end = base + struct.unpack_from(">i", b, pos + 23)[0] + 1
        pos += 12 + blen
open(sys.argv[2], "wb").write(out)
print(end)
PY
}

# same_copies NODES…: the nodes' copies are byte-identical and hold at least MIN records
same_copies() {
  local first=$1 i end
  end=$(copy "$first") || return 1
  [ "$end" -ge "${MIN:-0}" ] || return 1
  shift
  for i in "$@"; do
    copy "$i" >/dev/null || return 1
    cmp -s "$TMP/c$first" "$TMP/c$i" || return 1
  done
}

produce_seq() { # produce_seq FROM TO [ARGS…]: records FROM..TO, acks=all unless ARGS say
  local from=$1 to=$2
  shift 2
  seq "$from" "$to" | timeout 120 "$RUNNEL" -b "$BROKERS" -X delivery.timeout.ms=100000 \
    produce "$T" -p 0 "$@" 2>>"$TMP/produce.log"
}

paced() { # paced FROM TO: the numbers, a line every 0.2 ms or so (a producer that lasts)
  python3 -c 'import sys, time
for i in range(int(sys.argv[1]), int(sys.argv[2]) + 1):
    print(i, flush=True)
    time.sleep(0.0002)' "$1" "$2"
}

# exactly NODE N: consuming $T from NODE gives exactly 1..N, in order (with
# $EXTRA set, the acks=1 record $EXTRA after record $EXTRA_AFTER may be
# there or not: it reached the followers only if one had a fetch parked)
exactly() {
  timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[$1]}" consume "$T" -e -f '%s\n' >"$TMP/got" 2>/dev/null
  seq 1 "$2" >"$TMP/want"
  cmp -s "$TMP/want" "$TMP/got" && return 0
  [ -n "${EXTRA:-}" ] || return 1
  { seq 1 "$EXTRA_AFTER"; echo "$EXTRA"; seq $((EXTRA_AFTER + 1)) "$2"; } >"$TMP/want"
  cmp -s "$TMP/want" "$TMP/got"
}

read -r PORT[1] PORT[2] PORT[3] HTTP[1] HTTP[2] HTTP[3] CTL[1] CTL[2] CTL[3] < <(free_ports 9)
BROKERS=$(brokers)
for i in 1 2 3; do start_node "$i"; done

three_active() {
  [ "$(rn "$1" cluster status 2>/dev/null | awk '$1=="BROKER"{t=1;next} t && $4=="active"' |
    wc -l)" = 3 ]
}
if wait_for "$WAIT_S" three_active 1 && wait_for "$WAIT_S" three_active 2 &&
  wait_for "$WAIT_S" three_active 3; then
  ok "three brokers registered and active"
else
  not_ok "three brokers registered and active"
fi

# 0. RF=1: only the broker holding the replica keeps a log of it; the
# others answer NOT_LEADER and make no directory for it.
rn 1 topic create solo -p 1 -r 1 >/dev/null 2>&1
solo_everywhere() { local i; for i in 1 2 3; do rn "$i" topic list 2>/dev/null | grep -qx solo || return 1; done; }
if wait_for "$WAIT_S" solo_everywhere && echo x | rn 1 produce solo -p 0 --acks 1 >/dev/null 2>&1; then
  dirs=0
  for i in 1 2 3; do [ -d "$TMP/n$i/solo-0" ] && dirs=$((dirs + 1)); done
  if [ "$dirs" = 1 ]; then
    ok "an RF=1 partition has a directory on its one replica only"
  else
    not_ok "an RF=1 partition has a directory on its one replica only ($dirs have one)"
  fi
else
  not_ok "an RF=1 topic created and produced to"
fi

# 1. RF=3, min.insync.replicas=2 (the topic's own): acks=all lands on all
# three, identically.
rn 1 topic create "$T" -p 1 -r 3 -c min.insync.replicas=2 >/dev/null 2>&1
if wait_for "$WAIT_S" isr_is 1,2,3 && wait_for "$WAIT_S" leader_is_live; then
  ok "topic $T: three replicas, all in sync, leader $LEADER"
else
  not_ok "topic $T: three replicas in sync ($(describe 1))"
fi
if produce_seq 1 300; then
  ok "300 records produced with acks=all"
else
  not_ok "300 records produced with acks=all"
fi
MIN=300
if wait_for "$WAIT_S" same_copies 1 2 3; then
  ok "the three copies are byte-identical ($(stat -c %s "$TMP/c1") bytes of batches)"
else
  not_ok "the three copies are byte-identical (ends $(copy 1) / $(copy 2) / $(copy 3))"
fi
hw=$(dfield "$LEADER" HighWatermark)
if [ "$hw" = 300 ]; then ok "high watermark 300 on the leader"; else not_ok "high watermark 300 on the leader (is '$hw')"; fi

# 2. kill -9 of a follower: produces go on (ISR 2 >= min 2); back, it catches up.
F=$((LEADER % 3 + 1))
kill -KILL "${PID[$F]}"
wait "${PID[$F]}" 2>/dev/null
PID[$F]=
t0=$(now_ms)
if produce_seq 301 400; then
  ok "acks=all produce goes on with follower $F killed ($(($(now_ms) - t0)) ms)"
else
  not_ok "acks=all produce goes on with follower $F killed"
fi
# The topic's min.insync.replicas raised to 3 with two in sync: acks=all is
# refused (NOT_ENOUGH_REPLICAS, retried until the delivery timeout), acks=1
# is not; lowered back, acks=all goes on.
configured() { rn "$LEADER" topic describe "$T" 2>/dev/null | grep -q "min.insync.replicas=$1"; }
rn "$LEADER" topic alter "$T" -c min.insync.replicas=3 >/dev/null 2>&1
if wait_for "$WAIT_S" configured 3 &&
  ! echo 401 | timeout 60 "$RUNNEL" -b "$BROKERS" -X delivery.timeout.ms=2000 produce "$T" -p 0 \
    2>"$TMP/nem.log" && grep -q "not enough in-sync replicas" "$TMP/nem.log"; then
  ok "min.insync.replicas=3 on the topic, ISR of 2: acks=all refused"
else
  not_ok "min.insync.replicas=3 on the topic, ISR of 2: acks=all refused ($(cat "$TMP/nem.log"))"
fi
rn "$LEADER" topic alter "$T" -c min.insync.replicas=2 >/dev/null 2>&1
wait_for "$WAIT_S" configured 2
start_node "$F"
MIN=400
if wait_for "$WAIT_S" same_copies "$LEADER" "$F" && wait_for "$WAIT_S" isr_is 1,2,3; then
  ok "follower $F restarted, caught up and back in the ISR"
else
  not_ok "follower $F restarted, caught up and back in the ISR ($(describe "$LEADER"))"
fi
metrics() { # metrics NODE: its /metrics
  python3 -c 'import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode())' \
    "${HTTP[$1]}" 2>/dev/null
}
if metrics "$LEADER" | grep -Eq '^runnel_isr_expands_total [1-9]' &&
  metrics "$F" | grep -Eq '^runnel_partition_replica_lag\{topic="r",partition="0"\} [0-9]'; then
  ok "/metrics: the leader counted the ISR expansion, the follower shows its lag"
else
  not_ok "/metrics: ISR expansion on the leader, replica lag on the follower ($(metrics "$LEADER" | grep -E 'isr_|replica_lag'))"
fi

# 3. kill -9 of the leader in the middle of an idempotent acks=all produce.
OLD=$LEADER
paced 401 20000 | timeout 120 "$RUNNEL" -b "$BROKERS" -X delivery.timeout.ms=100000 \
  produce "$T" -p 0 2>>"$TMP/produce.log" &
PROD=$!
above() { [ "$(dfield "$OLD" HighWatermark)" -ge 2000 ] 2>/dev/null; }
wait_for "$WAIT_S" above
kill -KILL "${PID[$OLD]}"
wait "${PID[$OLD]}" 2>/dev/null
PID[$OLD]=
t0=$(now_ms)
if wait_for "$WAIT_S" leader_is_live "$OLD"; then
  ok "leader $OLD killed: $LEADER leads now ($(($(now_ms) - t0)) ms)"
else
  not_ok "a new leader after killing $OLD ($(describe "$F"))"
fi
if wait "$PROD"; then
  ok "the producer finished through the new leader"
else
  not_ok "the producer finished through the new leader (see produce.log: $(tail -n 3 "$TMP/produce.log" | tr '\n' ' '))"
fi
if exactly "$LEADER" 20000; then
  ok "records 1..20000 read back once each, in order: none lost, none duplicated"
else
  not_ok "records 1..20000 read back once each ($(wc -l <"$TMP/got") lines, $(sort -n "$TMP/got" | uniq -d | wc -l) duplicated)"
fi
start_node "$OLD"
MIN=20000
if wait_for "$WAIT_S" same_copies 1 2 3 && wait_for "$WAIT_S" isr_is 1,2,3; then
  ok "the old leader $OLD rejoined as a follower with an identical copy"
else
  not_ok "the old leader $OLD rejoined with an identical copy"
fi

# 4. A divergent tail: the leader appends with acks=1 while both followers
# are stopped, then dies; the new leader never saw those records, and the old
# leader, back as a follower, truncates them away. A stopped follower may
# have a fetch parked at the leader, which an append answers (and which it
# reads once it runs again): one record (80000) first takes those, so the 50
# after it reach no follower (80000 itself may or may not survive: acks=1).
# Two of three voters stopped: no one is fenced.
OLD=$LEADER
FOLLOWERS=()
for i in 1 2 3; do [ "$i" != "$OLD" ] && FOLLOWERS+=("$i"); done
for i in "${FOLLOWERS[@]}"; do kill -STOP "${PID[$i]}"; done
echo 80000 | timeout 30 "$RUNNEL" -b "127.0.0.1:${PORT[$OLD]}" produce "$T" -p 0 --acks 1 \
  2>>"$TMP/produce.log"
st1=$?
seq 90001 90050 | timeout 30 "$RUNNEL" -b "127.0.0.1:${PORT[$OLD]}" produce "$T" -p 0 --acks 1 \
  2>>"$TMP/produce.log"
st=$?
leo=$(dfield "$OLD" LogEndOffset)
kill -KILL "${PID[$OLD]}"
wait "${PID[$OLD]}" 2>/dev/null
PID[$OLD]=
for i in "${FOLLOWERS[@]}"; do kill -CONT "${PID[$i]}"; done
EXTRA=80000
EXTRA_AFTER=20000
if [ "$st1" = 0 ] && [ "$st" = 0 ] && [ "$leo" = 20051 ]; then
  ok "leader $OLD took 50 records with acks=1 that no follower fetched"
else
  not_ok "leader $OLD took 50 records with acks=1 (exit $st1 $st, log end '$leo')"
fi
if wait_for "$WAIT_S" leader_is_live "$OLD" && produce_seq 20001 20100; then
  ok "new leader $LEADER takes acks=all produces"
else
  not_ok "new leader after the divergent leader died ($(describe "${FOLLOWERS[0]}"))"
fi
start_node "$OLD"
MIN=20100
if wait_for "$WAIT_S" same_copies 1 2 3 && ! grep -aq '900[0-9][0-9]' "$TMP/c$OLD"; then
  ok "the returning leader $OLD truncated its divergent tail: three identical copies"
else
  not_ok "the returning leader $OLD truncated its divergent tail"
fi
if exactly "$OLD" 20100; then
  ok "records 1..20100 (and 80000) once each, read through the returned broker"
else
  not_ok "records 1..20100 once each ($(wc -l <"$TMP/got") lines)"
fi

# 5. A retry is not told a batch is safe before the ISR holds it: with both
# followers stopped (two of three voters: no one is fenced, the ISR stays
# 1,2,3), an acks=all record parks until its request times out, and the
# idempotent producer's retry of it (the same producer id and sequence, a
# duplicate to the leader) waits the same way instead of getting the first
# copy's offset at once; so the record is never acknowledged and the
# producer fails it at its delivery timeout. Resumed, the followers take it:
# once in every copy.
wait_for "$WAIT_S" isr_is 1,2,3
wait_for "$WAIT_S" leader_is_live
OLD=$LEADER
FOLLOWERS=()
for i in 1 2 3; do [ "$i" != "$OLD" ] && FOLLOWERS+=("$i"); done
for i in "${FOLLOWERS[@]}"; do kill -STOP "${PID[$i]}"; done
echo 96000 | timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[$OLD]}" -X socket.timeout.ms=700 \
  -X retry.backoff.ms=50 -X delivery.timeout.ms=4000 produce "$T" -p 0 2>"$TMP/dup.log"
st=$?
for i in "${FOLLOWERS[@]}"; do kill -CONT "${PID[$i]}"; done
if [ "$st" != 0 ]; then
  ok "followers stopped: acks=all retries of a parked record are not acknowledged ($(grep -c . "$TMP/dup.log") lines of errors)"
else
  not_ok "followers stopped: acks=all retries of a parked record are not acknowledged (exit $st: $(tail -n 2 "$TMP/dup.log" | tr '\n' ' '))"
fi
MIN=20101
once96() { [ "$(python3 -c 'import sys; print(open(sys.argv[1], "rb").read().count(b"96000"))' "$TMP/c$OLD")" = 1 ]; }
if wait_for "$WAIT_S" same_copies 1 2 3 && once96; then
  ok "resumed, the followers took it: record 96000 once in three identical copies"
else
  not_ok "record 96000 once in three identical copies"
fi

# What consume reads now, for the offline replay below.
wait_for "$WAIT_S" leader_is_live
timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[$LEADER]}" consume "$T" -e -f '%s\n' >"$TMP/got" 2>/dev/null
for i in 1 2 3; do
  if stop_node "$i"; then ok "node $i stops cleanly on SIGTERM"; else not_ok "node $i stops cleanly on SIGTERM"; fi
done

# 5. Offline replay of a clustered broker's data directory: the metadata log
#    is the Raft log (an envelope around each change), and replay reads the
#    topic's records from it on every replica, the same records consume gave.
replay_ok=1
for i in 1 2 3; do
  "$RUNNEL" replay "$TMP/n$i" "$T" --format raw >"$TMP/replay$i" 2>"$TMP/replay$i.err" &&
    cmp -s "$TMP/got" "$TMP/replay$i" || { replay_ok=0; echo "# node $i: $(head -c 300 "$TMP/replay$i.err")"; }
done
if [ "$replay_ok" = 1 ]; then
  ok "runnel replay reads the topic from each replica's data directory: what consume read"
else
  not_ok "runnel replay reads the topic from each replica's data directory"
fi
echo "1..$N"
[ "$FAILED" = 0 ]
