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
#   3. librdkafka's consumer (kcat -C) and runnel's own read the same bytes.
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

describe() { # describe NODE: the partition line of $T as NODE sees it
  rn "$1" topic describe "$T" 2>/dev/null | awk '$1 == "Topic:" && $3 == "Partition:"'
}
dfield() { # dfield NODE NAME: one "Name: value" of describe's partition line
  describe "$1" | tr '\t' '\n' | awk -v k="$2:" '$1 == k { print $2 }'
}
isr_is() { # every live node shows exactly this ISR (sorted, comma-separated)
  local i got
  for i in 1 2 3; do
    [ -n "${PID[$i]:-}" ] || continue
    got=$(dfield "$i" Isr | tr ',' '\n' | sort -n | paste -sd, -)
    [ "$got" = "$1" ] || return 1
  done
}
leader_is_live() { # every live node names the same live leader, not $1
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
echo "1..6"

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

start_node "$KILLED2"
if wait_for "$WAIT_S" isr_is 1,2,3; then
  ok "broker $KILLED2 back: three replicas in sync again"
else
  not_ok "broker $KILLED2 back in sync ($(describe $SURVIVOR))"
fi
[ "$FAILED" = 0 ]
