#!/usr/bin/env bash
# test_kafka_failover.sh — unmodified Kafka clients against a three-broker
# cluster whose partition leader is killed -9 mid-run (issue 15: "on one
# broker and on a three-broker cluster with a leader killed mid-run").
#
#   1. librdkafka (python3-confluent-kafka) produces records 1..N with
#      enable.idempotence=true, acks=all to an RF=3, min.insync.replicas=2
#      topic; once a third is acknowledged the leader is killed -9 while
#      the producer goes on. Every delivery report must be a success, and
#      kcat bootstrapped at a surviving broker must read 1..N, each once,
#      in order: librdkafka followed the new leader (NOT_LEADER_OR_FOLLOWER,
#      a metadata refresh) and its retries were deduplicated by the
#      replicated producer state.
#   2. The killed broker returns and catches up; kafka-python reads the
#      partition from the beginning by offset, and halfway through the
#      leader is killed -9 again: the consumer goes on at the new leader
#      and reads offsets 0..N-1 once each, the same records.
#   3. librdkafka's consumer (kcat -C) and runnel's own read the same bytes;
#      with that leader still dead, consume by time: librdkafka's and
#      kafka-python's offsets_for_times (ListOffsets with a timestamp).
#   4. Groups: two members (confluent-kafka; kafka-python; kafka_member.py)
#      on a 4-partition RF=3 topic, one killed -9, then the group's
#      coordinator killed -9: the survivor reads everything, commits never
#      go back, the group ends at lag 0.
#   5. librdkafka's idempotent producer through a restart (SIGTERM, start)
#      of the partition's leader: every record once, in order.
#   6. kcat with every codec read by `runnel consume`, and `runnel produce`
#      read by kcat, byte for byte, through different brokers.
#   7. kafka-python's producer (acks=all, no idempotence in 2.0.2) across a
#      leader kill -9: everything acknowledged is there, in order.
#
#   tests/cluster/test_kafka_failover.sh RUNNEL RUNNELD   (meson passes both; TAP)
#
# Ports are free ones chosen here; data lives under a mktemp directory
# (removed at the end); every process is stopped by its pid; every wait is
# bounded. Without kcat, python3-confluent-kafka or python3-kafka: skipped.
set -u

RUNNEL=${1:?usage: test_kafka_failover.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_kafka_failover.sh RUNNEL RUNNELD}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
KCAT=$(command -v kcat || true)
for need in "kcat:$KCAT" "python3-confluent-kafka:$($PY -c 'import confluent_kafka; print(1)' 2>/dev/null)" \
  "python3-kafka:$($PY -c 'import kafka; print(1)' 2>/dev/null)"; do
  if [ -z "${need#*:}" ]; then
    echo "1..0 # SKIP ${need%%:*} is not installed (tools/dev installs it)"
    exit 0
  fi
done
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" kafka-failover

T=kf
N_RECORDS=20000

kill_leader() {
  KILLED=$LEADER
  kill -KILL "${PID[$KILLED]}"
  wait "${PID[$KILLED]}" 2>/dev/null
  PID[$KILLED]=
}
kafka_bootstrap() { # every broker's Kafka listener (clients skip the dead ones)
  local i s=
  for i in 1 2 3; do s="$s${s:+,}127.0.0.1:${KPORT[$i]}"; done
  echo "$s"
}
# wait_file PATH PID: until PATH exists (true) or PID has exited (false)
wait_file() {
  local end=$(($(date +%s) + WAIT_S))
  while [ ! -e "$1" ]; do
    kill -0 "$2" 2>/dev/null || return 1
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.05
  done
}

read -r -a PORTS <<<"$(free_ports 12)"
for i in 1 2 3; do
  PORT[$i]=${PORTS[$(((i - 1) * 4 + 0))]}
  HTTP[$i]=${PORTS[$(((i - 1) * 4 + 1))]}
  CTL[$i]=${PORTS[$(((i - 1) * 4 + 2))]}
  KPORT[$i]=${PORTS[$(((i - 1) * 4 + 3))]}
done
for i in 1 2 3; do start_node "$i"; done
echo "1..15"

# Until the quorum has a leader and three brokers registered, create fails
# (or places fewer replicas): wait for three active brokers first.
three_active() {
  [ "$(rn 1 cluster status 2>/dev/null | awk '$1=="BROKER"{t=1;next} t && $4=="active"' | wc -l)" = 3 ]
}
wait_for "$WAIT_S" three_active
rn 1 topic create "$T" -p 1 -r 3 --config min.insync.replicas=2 >/dev/null
if wait_for "$WAIT_S" isr_is 1,2,3 && wait_for "$WAIT_S" leader_is_live; then
  ok "topic $T: RF=3, min.insync.replicas=2, all in sync, leader $LEADER"
else
  not_ok "topic $T: RF=3 in sync ($(describe 1))"
fi

# 1. Idempotent librdkafka producer; the leader killed -9 after a third.
rm -f "$TMP/phase1"
"$PY" - "$(kafka_bootstrap)" "$T" "$N_RECORDS" "$TMP/phase1" >"$TMP/produce.out" 2>"$TMP/produce.err" <<'PY' &
import sys, os
from confluent_kafka import Producer
boot, topic, n, flag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "acks": "all",
              "linger.ms": 2, "delivery.timeout.ms": 120000, "message.timeout.ms": 120000,
              "topic.metadata.refresh.interval.ms": 1000})
state = {"ok": 0, "err": []}
def report(err, msg):
    if err is None:
        state["ok"] += 1
    else:
        state["err"].append(str(err))
for i in range(1, n + 1):
    while True:
        try:
            p.produce(topic, str(i).encode(), partition=0, on_delivery=report)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if i % 500 == 0:  # pace it, so the kill lands with records in flight
        p.flush(60)
        if i >= n // 3 and not os.path.exists(flag):
            open(flag, "w").close()
left = p.flush(120)
print("delivered", state["ok"], "failed", len(state["err"]), "left", left, state["err"][:3])
sys.exit(0 if state["ok"] == n and not state["err"] and left == 0 else 1)
PY
PRODUCER=$!
if wait_file "$TMP/phase1" "$PRODUCER"; then
  kill_leader
fi
wait "$PRODUCER"
st=$?
if [ "$st" = 0 ] && [ -n "${KILLED:-}" ]; then
  ok "librdkafka idempotent acks=all: $N_RECORDS delivered across a kill -9 of leader $KILLED ($(cat "$TMP/produce.out"))"
else
  not_ok "librdkafka idempotent acks=all across a kill -9 of the leader (exit $st, killed '${KILLED:-}'): $(cat "$TMP/produce.out") $(tail -c 300 "$TMP/produce.err")"
fi

SURVIVOR=$((KILLED % 3 + 1))
seq 1 "$N_RECORDS" >"$TMP/want"
timeout 60 "$KCAT" -b "127.0.0.1:${KPORT[$SURVIVOR]}" -C -t "$T" -p 0 -o beginning -e -q \
  -f '%s\n' >"$TMP/kcat.out" 2>"$TMP/kcat.err"
if cmp -s "$TMP/want" "$TMP/kcat.out"; then
  ok "kcat -C at broker $SURVIVOR reads 1..$N_RECORDS once each, in order"
else
  not_ok "kcat -C at broker $SURVIVOR reads 1..$N_RECORDS once each ($(wc -l <"$TMP/kcat.out") lines, $(sort -n "$TMP/kcat.out" | uniq -d | wc -l) duplicated; $(head -c 200 "$TMP/kcat.err"))"
fi

# 2. The killed broker back in the ISR; kafka-python reads by offset while
# the leader is killed -9 halfway.
start_node "$KILLED"
if wait_for "$WAIT_S" isr_is 1,2,3 && wait_for "$WAIT_S" leader_is_live; then :; fi
rm -f "$TMP/phase2" "$TMP/killed2"
"$PY" - "$(kafka_bootstrap)" "$T" "$N_RECORDS" "$TMP/phase2" "$TMP/killed2" \
  >"$TMP/consume.out" 2>"$TMP/consume.err" <<'PY' &
import sys, os, time
from kafka import KafkaConsumer, TopicPartition
boot, topic, n, flag, killed = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
c = KafkaConsumer(bootstrap_servers=boot, enable_auto_commit=False, auto_offset_reset="earliest",
                  max_poll_records=500, metadata_max_age_ms=1000, request_timeout_ms=15000,
                  reconnect_backoff_max_ms=500)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek_to_beginning(tp)
got, deadline = [], time.time() + 120
while len(got) < n and time.time() < deadline:
    for recs in c.poll(timeout_ms=500).values():
        for r in recs:
            got.append((r.offset, r.value.decode()))
    if len(got) >= n // 2 and not os.path.exists(flag):
        open(flag, "w").close()
        end = time.time() + 60  # hold the rest until the leader is gone
        while not os.path.exists(killed) and time.time() < end:
            time.sleep(0.05)
c.close()
for off, v in got:
    print(off, v)
PY
CONSUMER=$!
KILLED2=
if wait_file "$TMP/phase2" "$CONSUMER" && wait_for "$WAIT_S" leader_is_live; then
  kill_leader
  KILLED2=$KILLED
  touch "$TMP/killed2"
fi
wait "$CONSUMER"
awk '{print $1}' "$TMP/consume.out" >"$TMP/offs"
awk '{print $2}' "$TMP/consume.out" >"$TMP/vals"
seq 0 $((N_RECORDS - 1)) >"$TMP/want_offs"
if [ -n "$KILLED2" ] && cmp -s "$TMP/want_offs" "$TMP/offs" && cmp -s "$TMP/want" "$TMP/vals"; then
  ok "kafka-python by offset: 0..$((N_RECORDS - 1)) once each across a kill -9 of leader $KILLED2"
else
  not_ok "kafka-python by offset across a kill -9 of the leader (killed '$KILLED2', $(wc -l <"$TMP/offs") records; $(tail -c 300 "$TMP/consume.err"))"
fi

# 3. runnel's own consumer at a surviving broker: the same records.
SURVIVOR=$((KILLED2 % 3 + 1))
timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[$SURVIVOR]}" consume "$T" -p 0 -e -f '%s\n' \
  >"$TMP/runnel.out" 2>/dev/null
if cmp -s "$TMP/want" "$TMP/runnel.out"; then
  ok "runnel consume at broker $SURVIVOR reads what kcat read, byte for byte"
else
  not_ok "runnel consume at broker $SURVIVOR reads what kcat read ($(wc -l <"$TMP/runnel.out") lines)"
fi

# 3b. Consume by time after the leader kill (ListOffsets with a timestamp at
# the new leader): kcat -o s@MS, librdkafka's and kafka-python's
# offsets_for_times answer
# the first offset whose timestamp is at or after the one asked, as the
# records' own timestamps (read with kcat) say; a time after every record
# gets none. Each client then consumes by offset from the middle answer
# (assign/seek) and gets the record there.
timeout 60 "$KCAT" -b "127.0.0.1:${KPORT[$SURVIVOR]}" -C -t "$T" -p 0 -o beginning -e -q \
  -f '%o %T\n' >"$TMP/times" 2>/dev/null
QT=
for q in $((N_RECORDS / 4)) $((N_RECORDS / 2)) $((N_RECORDS * 3 / 4)); do
  QT="$QT $(awk -v o="$q" '$1 == o { print $2 }' "$TMP/times")"
done
QT="$QT $(($(awk 'END { print $2 }' "$TMP/times") + 3600000))"
: >"$TMP/times_want"
for t in $QT; do awk -v t="$t" '$2 >= t { print t, $1; f = 1; exit } END { if (!f) print t, -1 }' "$TMP/times" >>"$TMP/times_want"; done
MID=$(awk 'NR == 2 { print $2 }' "$TMP/times_want")
echo "at $MID $((MID + 1))" >>"$TMP/times_want"
for lib in kcat confluent kafka-python; do
  if [ "$lib" = kcat ]; then # -o s@MS: ListOffsets with the time, then a fetch from there
    for t in $QT; do
      o=$(timeout 60 "$KCAT" -b "$(kafka_bootstrap)" -C -t "$T" -p 0 -o "s@$t" -e -q -c 1 -f '%o\n' 2>/dev/null)
      echo "$t ${o:--1}"
    done >"$TMP/times_$lib"
    timeout 60 "$KCAT" -b "$(kafka_bootstrap)" -C -t "$T" -p 0 -o "$MID" -e -q -c 1 -f 'at %o %s\n' >>"$TMP/times_$lib" 2>/dev/null
  else
  timeout 90 "$PY" - "$lib" "$(kafka_bootstrap)" "$T" $QT >"$TMP/times_$lib" 2>"$TMP/times_$lib.err" <<'PY'
import sys
lib, boot, topic, ts = sys.argv[1], sys.argv[2], sys.argv[3], [int(t) for t in sys.argv[4:]]
if lib == "confluent":
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": "kf-times", "enable.auto.commit": False})
    for t in ts:
        [r] = c.offsets_for_times([TopicPartition(topic, 0, t)], timeout=30)
        print(t, r.offset if r.error is None and r.offset >= 0 else -1)
    # Consume by offset from the middle one: the record there is offset + 1.
    [r] = c.offsets_for_times([TopicPartition(topic, 0, ts[1])], timeout=30)
    c.assign([r])
    m = c.consume(num_messages=1, timeout=30)
    print("at", m[0].offset(), m[0].value().decode() if m else "none")
else:
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=boot.split(","), request_timeout_ms=15000, metadata_max_age_ms=1000,
                      reconnect_backoff_max_ms=500)
    tp = TopicPartition(topic, 0)
    for t in ts:
        r = c.offsets_for_times({tp: t})[tp]
        print(t, r.offset if r is not None else -1)
    c.assign([tp])
    c.seek(tp, c.offsets_for_times({tp: ts[1]})[tp].offset)
    recs = c.poll(timeout_ms=30000, max_records=1).get(tp, [])
    print("at", recs[0].offset, recs[0].value.decode()) if recs else print("at none")
c.close()
PY
  fi
  if [ "$(wc -l <"$TMP/times_want")" = 5 ] && cmp -s "$TMP/times_want" "$TMP/times_$lib"; then
    ok "$lib offsets_for_times after the kill of leader $KILLED2: $(awk 'NR < 5 {printf "%s%s", s, $2; s=","}' "$TMP/times_want") as the timestamps say; assigned there, reads offset $MID"
  else
    not_ok "$lib offsets_for_times after the kill of leader $KILLED2 (want $(tr '\n' ' ' <"$TMP/times_want"), got $(tr '\n' ' ' <"$TMP/times_$lib"); $(tail -c 300 "$TMP/times_$lib.err"))"
  fi
done

start_node "$KILLED2"
if wait_for "$WAIT_S" isr_is 1,2,3; then
  ok "broker $KILLED2 back: three replicas in sync again"
else
  not_ok "broker $KILLED2 back in sync ($(describe $SURVIVOR))"
fi
# 4. Groups on the cluster: two members of one group (librdkafka through
# python3-confluent-kafka; python3-kafka's KafkaConsumer) read an RF=3,
# min.insync.replicas=2 topic of 4 partitions, committing as they go; one
# member is killed -9, and once the survivor holds all 4 partitions the
# group's coordinator (the leader of its __offsets partition, as `runnel
# group coordinator` names it) is killed -9 too. The survivor must read
# every record (duplicates after a rebalance allowed, fewer than half; none
# lost), each member's commits never go back, and at the end the group's
# committed offsets are the partitions' ends (lag 0). Records are keyed, so
# all 4 partitions hold some.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GN=6000
live_node() { local i; for i in 1 2 3; do [ -n "${PID[$i]:-}" ] && { echo "$i"; return; }; done; }
last_assign() { awk '$1 == "A" { a = $2 } END { print a }' "$1"; }
both_assigned() {
  local a b
  a=$(last_assign "$TMP/$G.a")
  b=$(last_assign "$TMP/$G.b")
  [ -n "$a" ] && [ "$a" != - ] && [ -n "$b" ] && [ "$b" != - ] && [ "$(cat "$TMP/$G.a" "$TMP/$G.b" | grep -c '^R ')" -ge $((GN / 6)) ]
}
survivor_has_all() { [ "$(last_assign "$TMP/$G.a")" = 0,1,2,3 ]; }
all_read() {
  kill -0 "$MA" 2>/dev/null || return 0
  [ "$(cat "$TMP/$G.a" "$TMP/$G.b" | awk '$1 == "R" { print $4 }' | sort -u | wc -l)" -ge "$GN" ]
}
group_case() { # group_case LIB GROUP TOPIC
  local lib=$1 tp=$3 COORD= left= n st
  G=$2
  rn "$(live_node)" topic create "$tp" -p 4 -r 3 --config min.insync.replicas=2 >/dev/null
  wait_for "$WAIT_S" eval '[ "$(rn "$(live_node)" topic describe "$tp" 2>/dev/null | grep -c "Isr: [123],[123],[123]")" = 4 ]'
  seq 1 "$GN" | sed 's/^/g/' >"$TMP/$G.want"
  # Keyed, so the records spread over the 4 partitions.
  sed 's/^g\(.*\)/k\1:g\1/' "$TMP/$G.want" >"$TMP/$G.in"
  timeout 60 "$KCAT" -b "$(kafka_bootstrap)" -P -t "$tp" -K : -X acks=all -l "$TMP/$G.in" 2>"$TMP/$G.kcat.err"
  "$PY" "$HERE/kafka_member.py" "$lib" "$(kafka_bootstrap)" "$tp" "$G" >"$TMP/$G.a" 2>"$TMP/$G.a.err" &
  MA=$!
  "$PY" "$HERE/kafka_member.py" "$lib" "$(kafka_bootstrap)" "$tp" "$G" >"$TMP/$G.b" 2>"$TMP/$G.b.err" &
  MB=$!
  if wait_for 90 both_assigned; then
    kill -KILL "$MB"
    wait "$MB" 2>/dev/null
    if wait_for 90 survivor_has_all; then
      COORD=$(rn "$(live_node)" group coordinator "$G" 2>/dev/null | awk '{ print $2 }')
      if [ -n "$COORD" ] && [ -n "${PID[$COORD]:-}" ]; then
        left=$((GN - $(cat "$TMP/$G.a" "$TMP/$G.b" | awk '$1 == "R" { print $4 }' | sort -u | wc -l)))
        kill -KILL "${PID[$COORD]}"
        wait "${PID[$COORD]}" 2>/dev/null
        PID[$COORD]=
      else
        COORD=
      fi
    fi
  else
    kill -KILL "$MB" 2>/dev/null
    wait "$MB" 2>/dev/null
  fi
  wait_for 180 all_read
  kill -TERM "$MA" 2>/dev/null
  wait "$MA"
  st=$?
  # The survivor's last commits, then the group as the cluster sees it.
  n=$(cat "$TMP/$G.a" "$TMP/$G.b" | awk '$1 == "R" { print $4 }' | sort -u | comm -3 - <(sort "$TMP/$G.want") | wc -l)
  local total dups back lag
  total=$(cat "$TMP/$G.a" "$TMP/$G.b" | grep -c '^R ')
  dups=$((total - GN))
  back=$(for f in a b; do awk '$1 == "C" { if (($2 in m) && $3 < m[$2]) print; m[$2] = $3 }' "$TMP/$G.$f"; done | wc -l)
  lag=$(rn "$(live_node)" group describe "$G" 2>/dev/null | awk -v t="$tp" '$2 == t { n++; if ($6 == 0 || ($4 == "-" && $5 == 0)) z++ } END { print z + 0 "/" n + 0 }')
  if [ -n "$COORD" ] && [ "$st" = 0 ] && [ "$n" = 0 ] && [ "$dups" -lt $((GN / 2)) ] && [ "$back" = 0 ] && [ "$lag" = 4/4 ]; then
    ok "$lib group on the cluster: member killed -9, coordinator $COORD killed -9 with $left records left; the survivor took 0,1,2,3 and read all $GN ($dups read twice), commits never went back, lag 0 on 4/4"
  else
    not_ok "$lib group on the cluster (coordinator killed '$COORD', survivor exit $st, $n missing or extra, $dups dups, $back commits back, lag 0 on $lag; survivor: $(last_assign "$TMP/$G.a"); $(tail -c 300 "$TMP/$G.a.err"))"
    rn "$(live_node)" group describe "$G" 2>&1 | sed 's/^/# describe: /'
    for f in a b; do awk '$1 == "C" { c[$2] = $3 } END { for (p in c) print p, c[p] }' "$TMP/$G.$f" | sort -n | tr '\n' ' ' | sed "s/^/# $f last commits: /"; echo; grep '^E ' "$TMP/$G.$f" | tail -3 | sed 's/^/# /'; done
  fi
  if [ -n "$COORD" ]; then
    start_node "$COORD"
    wait_for "$WAIT_S" eval '[ "$(rn "$COORD" topic describe "$tp" 2>/dev/null | grep -c "Isr: [123],[123],[123]")" = 4 ]'
  fi
}
group_case confluent kg-c kgc
group_case kafka-python kg-p kgp

# 5. librdkafka's idempotent producer through a restart of the partition's
# leader (SIGTERM, a graceful stop, then started again on its ports and
# data): every record delivered, each once, in order.
T=kr
rn "$(live_node)" topic create "$T" -p 1 -r 3 --config min.insync.replicas=2 >/dev/null
wait_for "$WAIT_S" isr_is 1,2,3 && wait_for "$WAIT_S" leader_is_live
rm -f "$TMP/phase5"
N5=6000
"$PY" - "$(kafka_bootstrap)" "$T" "$N5" "$TMP/phase5" >"$TMP/p5.out" 2>"$TMP/p5.err" <<'PY' &
import sys, os
from confluent_kafka import Producer
boot, topic, n, flag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "acks": "all",
              "linger.ms": 2, "message.timeout.ms": 120000, "topic.metadata.refresh.interval.ms": 1000})
state = {"ok": 0, "err": []}
def report(err, msg):
    if err is None:
        state["ok"] += 1
    else:
        state["err"].append(str(err))
for i in range(1, n + 1):
    while True:
        try:
            p.produce(topic, str(i).encode(), partition=0, on_delivery=report)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if i % 200 == 0:
        p.flush(60)
        if i >= n // 3 and not os.path.exists(flag):
            open(flag, "w").close()
left = p.flush(120)
print("delivered", state["ok"], "failed", len(state["err"]), "left", left, state["err"][:3])
sys.exit(0 if state["ok"] == n and not state["err"] and left == 0 else 1)
PY
PRODUCER=$!
RESTARTED= STOPST=
if wait_file "$TMP/phase5" "$PRODUCER"; then
  RESTARTED=$LEADER
  stop_node "$RESTARTED"
  STOPST=$?
  start_node "$RESTARTED"
fi
wait "$PRODUCER"
st=$?
wait_for "$WAIT_S" isr_is 1,2,3
seq 1 "$N5" >"$TMP/want5"
timeout 60 "$KCAT" -b "$(kafka_bootstrap)" -C -t "$T" -p 0 -o beginning -e -q -f '%s\n' >"$TMP/kr.out" 2>/dev/null
if [ "$st" = 0 ] && [ -n "$RESTARTED" ] && [ "$STOPST" = 0 ] && cmp -s "$TMP/want5" "$TMP/kr.out"; then
  ok "librdkafka idempotent acks=all through a restart of leader $RESTARTED (SIGTERM, exit 0, started again): 1..$N5 once each, in order ($(cat "$TMP/p5.out"))"
else
  not_ok "librdkafka idempotent through a leader restart (exit $st, restarted '$RESTARTED' stop $STOPST, $(wc -l <"$TMP/kr.out") read, $(sort -n "$TMP/kr.out" | uniq -d | wc -l) twice): $(cat "$TMP/p5.out") $(tail -c 300 "$TMP/p5.err")"
fi

# 6. Every codec kcat writes (none, gzip, snappy, lz4, zstd) on the cluster:
# `runnel consume` at another broker reads the values byte for byte; and
# what `runnel produce` wrote, kcat reads byte for byte.
rn 1 topic create kz -p 1 -r 3 --config min.insync.replicas=2 >/dev/null
rn 1 topic create kn -p 1 -r 3 --config min.insync.replicas=2 >/dev/null
: >"$TMP/kz.want"
cst=0
for codec in none gzip snappy lz4 zstd; do
  for i in $(seq 1 200); do printf '%s-%d \xc3\xa9\x01\x7f %s\n' "$codec" "$i" "$(head -c $((i % 50)) /dev/zero | tr '\0' z)"; done >"$TMP/kz.$codec"
  timeout 60 "$KCAT" -b "$(kafka_bootstrap)" -P -t kz -p 0 -z "$codec" -X acks=all -l "$TMP/kz.$codec" 2>>"$TMP/kz.err" || cst=1
  cat "$TMP/kz.$codec" >>"$TMP/kz.want"
done
timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[2]}" consume kz -p 0 -e -f '%s\n' >"$TMP/kz.got" 2>"$TMP/kz.rerr"
if [ "$cst" = 0 ] && cmp -s "$TMP/kz.want" "$TMP/kz.got"; then
  ok "kcat -z none/gzip/snappy/lz4/zstd on the cluster: runnel consume at broker 2 reads the 1000 values byte for byte"
else
  not_ok "kcat every codec on the cluster, runnel consume byte for byte (kcat $cst, $(wc -l <"$TMP/kz.got") lines; $(head -c 300 "$TMP/kz.err" "$TMP/kz.rerr"))"
fi
for i in $(seq 1 300); do printf 'nk%d:native \xc3\xa9 %d\n' "$i" "$i"; done >"$TMP/kn.want"
timeout 60 "$RUNNEL" -b "127.0.0.1:${PORT[3]}" produce kn -K : <"$TMP/kn.want" >/dev/null 2>"$TMP/kn.err"
timeout 60 "$KCAT" -b "127.0.0.1:${KPORT[1]}" -C -t kn -p 0 -o beginning -e -q -f '%k:%s\n' >"$TMP/kn.got" 2>>"$TMP/kn.err"
if cmp -s "$TMP/kn.want" "$TMP/kn.got"; then
  ok "runnel produce at broker 3 on the cluster: kcat -C at broker 1 reads the 300 keyed records byte for byte"
else
  not_ok "runnel produce → kcat -C on the cluster ($(wc -l <"$TMP/kn.got") lines; $(head -c 300 "$TMP/kn.err"))"
fi

# 7. kafka-python's producer (acks=all, retries; 2.0.2 has no idempotent
# producer) across a kill -9 of the partition's leader: every record it was
# told was written is there, in its order, at least once (a retry after a
# lost answer may write one twice: counted, not failed).
T=kp
rn "$(live_node)" topic create "$T" -p 1 -r 3 --config min.insync.replicas=2 >/dev/null
wait_for "$WAIT_S" isr_is 1,2,3 && wait_for "$WAIT_S" leader_is_live
rm -f "$TMP/phase7"
N7=4000
"$PY" - "$(kafka_bootstrap)" "$T" "$N7" "$TMP/phase7" >"$TMP/p7.out" 2>"$TMP/p7.err" <<'PY' &
import sys, os
from kafka import KafkaProducer
boot, topic, n, flag = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), sys.argv[4]
p = KafkaProducer(bootstrap_servers=boot, acks="all", retries=50, retry_backoff_ms=200, linger_ms=2,
                  max_in_flight_requests_per_connection=1, metadata_max_age_ms=1000,
                  request_timeout_ms=15000, reconnect_backoff_max_ms=500)
futs, ok, err = [], 0, []
for i in range(1, n + 1):
    futs.append(p.send(topic, str(i).encode(), partition=0))
    if i % 200 == 0:
        for f in futs:
            try:
                f.get(timeout=120)
                ok += 1
            except Exception as e:
                err.append(repr(e))
        futs = []
        if i >= n // 3 and not os.path.exists(flag):
            open(flag, "w").close()
p.flush(60)
print("acknowledged", ok, "failed", len(err), err[:3])
sys.exit(0 if ok == n else 1)
PY
PRODUCER=$!
KILLED7=
if wait_file "$TMP/phase7" "$PRODUCER"; then
  kill_leader
  KILLED7=$KILLED
fi
wait "$PRODUCER"
st=$?
timeout 60 "$KCAT" -b "$(kafka_bootstrap)" -C -t "$T" -p 0 -o beginning -e -q -f '%s\n' >"$TMP/kp.out" 2>/dev/null
# In order, at least once: each value's first copy, in log order, is 1..N7.
seq 1 "$N7" >"$TMP/want7"
if [ "$st" = 0 ] && [ -n "$KILLED7" ] && awk '!seen[$0]++' "$TMP/kp.out" | cmp -s - "$TMP/want7"; then
  ok "kafka-python acks=all across a kill -9 of leader $KILLED7: 1..$N7 all there in order, $(($(wc -l <"$TMP/kp.out") - N7)) written twice by its retries ($(cat "$TMP/p7.out"))"
else
  not_ok "kafka-python acks=all across a kill -9 of the leader (exit $st, killed '$KILLED7', $(wc -l <"$TMP/kp.out") read, $(sort -n "$TMP/kp.out" | uniq | wc -l) distinct): $(cat "$TMP/p7.out") $(tail -c 300 "$TMP/p7.err")"
fi
start_node "$KILLED7"
wait_for "$WAIT_S" isr_is 1,2,3

[ "$FAILED" = 0 ]
