#!/usr/bin/env bash
# test_kafka_tshark.sh — runneld's Kafka listener read by Wireshark's Kafka
# dissector: dumpcap records the loopback traffic of real clients against a
# runneld on a free port, then tshark reads it back (issue 15: "a capture read
# by tshark's Kafka dissector shows no malformed packet"):
#   - traffic: kcat -L, kcat -P with each codec (none, gzip, snappy, lz4,
#     zstd), kcat -P with enable.idempotence, kcat -C, a group of two
#     `kcat -G` members (heartbeats, a rebalance, both leave), and librdkafka's AdminClient (python3-confluent-
#     kafka: create_topics, create_partitions, describe_configs,
#     delete_topics);
#   - tshark flags no malformed packet, but where Debian 12's Wireshark 4.0
#     misreads well-formed frames (tests/cli/kafka_capture.py's DEFECTS: a
#     non-flexible BYTES length read as an int16 in JoinGroup/SyncGroup, as
#     the clients' own flagged requests show; DeleteTopics v1-v2 answers
#     read without their throttle time), whose answers an independent
#     reading then parses to their last byte by Kafka's schema; tshark
#     decodes a request and an answer of every API sent; every stream is
#     whole frames, answered in request order.
#
#   tests/cli/test_kafka_tshark.sh RUNNEL RUNNELD   (meson passes both; prints TAP)
#
# Skipped (TAP "1..0 # SKIP reason") when tshark, dumpcap or kcat is missing
# (tools/dev installs them) or this user may not capture on lo. The broker,
# dumpcap and the clients are stopped by their pids; every wait is bounded.
RUNNEL=${1:?usage: test_kafka_tshark.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_kafka_tshark.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" ktshark
HERE=$(cd "$(dirname "$0")" && pwd)
CAP=$TMP/kafka.pcapng
DUMPCAP_PID=

skip_all() {
  echo "kafka tshark: $*: skipping" >&2
  echo "1..0 # SKIP $*"
  exit 0
}

broker_extra() {
  KPORT=$(free_port)
  BROKER_EXTRA=(--kafka "127.0.0.1:$KPORT" --reactors 2)
}
broker_ready() { port_open "$KPORT"; }

stop_dumpcap() {
  if [ -n "$DUMPCAP_PID" ]; then
    kill -TERM "$DUMPCAP_PID" 2>/dev/null
    wait "$DUMPCAP_PID" 2>/dev/null
    DUMPCAP_PID=
  fi
}
MEMBER_PIDS=()
rn_cleanup() {
  local p
  for p in "${MEMBER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  stop_dumpcap
}

for tool in tshark dumpcap kcat; do
  command -v $tool >/dev/null || skip_all "$tool is not installed (tools/dev deps installs it)"
done

# dumpcap on lo, only the Kafka port; up once it says it is capturing.
start_dumpcap() {
  dumpcap -q -i lo -f "tcp port $KPORT" -w "$CAP" 2>"$TMP/dumpcap.err" &
  DUMPCAP_PID=$!
  local i
  for i in $(seq 1 200); do
    grep -q "^Capturing on" "$TMP/dumpcap.err" 2>/dev/null && return 0
    kill -0 "$DUMPCAP_PID" 2>/dev/null || break
    sleep 0.05
  done
  stop_dumpcap
  return 1
}

k() { timeout 60 kcat -b "127.0.0.1:$KPORT" "$@"; }

# Stops the capture once a last request (kcat -L with a client id of its
# own) is in the file, so that nothing before it is lost in dumpcap's buffer.
finish_capture() {
  k -L -X client.id=capture-end >/dev/null || return 1
  local i
  for i in $(seq 1 200); do
    tshark -r "$CAP" -d "tcp.port==$KPORT,kafka" -Y 'kafka.client_id == "capture-end"' \
      -T fields -e frame.number 2>/dev/null | grep -q . && break
    sleep 0.05
  done
  stop_dumpcap
  [ -s "$CAP" ] || { echo "no capture written" >&2; return 1; }
}

test_traffic() {
  r topic create cap -p 2 >/dev/null || return 1
  k -L >/dev/null || return 1
  local z
  for z in none gzip snappy lz4 zstd; do
    seq 1 20 | sed "s/^/$z-/" | k -P -t cap -z $z || return 1
  done
  seq 1 20 | k -P -t cap -X enable.idempotence=true || return 1
  [ "$(k -C -t cap -o beginning -e -q | wc -l)" = 120 ] || { echo "kcat -C did not read 120" >&2; return 1; }
  # Two group members at once, until they have read all 120 between them
  # (bounded), then SIGTERM: each leaves the group (LeaveGroup).
  local pids=() p i
  for p in 1 2; do
    kcat -b "127.0.0.1:$KPORT" -G capg cap -q -u -X auto.offset.reset=earliest \
      -X heartbeat.interval.ms=200 -X session.timeout.ms=6000 >"$TMP/member$p" 2>&1 &
    pids+=($!)
    MEMBER_PIDS+=($!)
  done
  for i in $(seq 1 600); do
    [ "$(cat "$TMP/member1" "$TMP/member2" | sort -u | wc -l)" -ge 120 ] && break
    sleep 0.05
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  MEMBER_PIDS=()
  [ "$(cat "$TMP/member1" "$TMP/member2" | sort -u | wc -l)" = 120 ] || {
    echo "the two members did not read the 120 records" >&2
    return 1
  }
  if $PY -c 'import confluent_kafka' 2>/dev/null; then
    timeout 60 $PY - "$KPORT" <<'PY' || return 1
import sys
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
a = AdminClient({"bootstrap.servers": "127.0.0.1:" + sys.argv[1]})
for f in a.create_topics([NewTopic("capadm", 1, 1, config={"retention.ms": "3600000"})]).values():
    f.result(timeout=20)
for f in a.create_partitions([NewPartitions("capadm", 2)]).values():
    f.result(timeout=20)
for f in a.describe_configs([ConfigResource("topic", "capadm")]).values():
    assert f.result(timeout=20)["retention.ms"].value == "3600000"
for f in a.delete_topics(["capadm"]).values():
    f.result(timeout=20)
PY
  fi
  finish_capture
}

# What the checks found goes to stderr, shown as TAP comments after each test.
capture() { $PY "$HERE/kafka_capture.py" "$1" "$CAP" "$KPORT" >&2; }
t_ok_extra() { sed 's/^/# /' "$TMP/diag"; }
test_malformed() { capture malformed; }
test_decoded() { capture decoded; }
test_walk() { capture walk; }

$PY -c 'import confluent_kafka' 2>/dev/null ||
  skip_all "python3-confluent-kafka is not installed (the admin APIs would be missing)"
start_broker || exit 1
start_dumpcap || skip_all "dumpcap cannot capture on lo here: $(tail -1 "$TMP/dumpcap.err")"
t "capture: kcat -L/-P (each codec, idempotent)/-C, two kcat -G members, AdminClient" test_traffic
if [ -s "$CAP" ] && [ -z "$DUMPCAP_PID" ]; then CAP_WHY=; else CAP_WHY="no capture"; fi
t_skip() { echo "${CAP_WHY:-}"; }
t "tshark: no malformed packet (but where the dissector misreads well-formed frames)" test_malformed
t "tshark decodes a request and an answer of every API sent" test_decoded
t "every stream whole frames, answers in request order; JoinGroup/SyncGroup/DeleteTopics exact" test_walk
stop_broker || { echo "not ok $((N + 1)) - clean stop"; exit 1; }
finish
