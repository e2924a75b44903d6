#!/usr/bin/env bash
# test_kafka.sh — unmodified Kafka clients against runneld's Kafka-protocol
# listener (--kafka, broker/kafka/): Debian's kcat (librdkafka 2.0.2) lists,
# produces and consumes; records cross between kcat and the runnel CLI byte
# for byte; an API the listener does not speak gets UNSUPPORTED_VERSION on a
# connection that stays open.
#
#   tests/cli/test_kafka.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# Without kcat (not installed: `tools/dev` installs it) the kcat tests are
# skipped with a TAP "# SKIP" line, not failed. The broker runs on free
# 127.0.0.1 ports with data under a mktemp directory (removed at the end),
# with two reactors so partitions are owned by different reactors, and is
# stopped by its pid. Every client call runs under `timeout`.
RUNNEL=${1:?usage: test_kafka.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_kafka.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" kafka
KCAT=$(command -v kcat || true)

# The broker also listens for Kafka clients on $KPORT, with two reactors, and
# is up once that port accepts.
broker_extra() {
  KPORT=$(free_port)
  BROKER_EXTRA=(--kafka "127.0.0.1:$KPORT" --reactors 2)
}
broker_ready() { port_open "$KPORT"; }

# NEEDS_KCAT=1 t …: skipped, not failed, without kcat.
t_skip() {
  if [ "${NEEDS_KCAT:-0}" = 1 ] && [ -z "$KCAT" ]; then
    echo "kcat is not installed (tools/dev installs it)"
  fi
}

k() { timeout 30 "$KCAT" -b "127.0.0.1:$KPORT" "$@"; }

# ---------------------------------------------------------------------------

# kcat -L: the broker at 127.0.0.1 and the Kafka port, every partition led
# by this node.
test_list() {
  r topic create orders -p 3 >/dev/null || return 1
  k -L -t orders >"$TMP/L" || return 1
  grep -q "broker 1 at 127.0.0.1:$KPORT" "$TMP/L" || { cat "$TMP/L" >&2; return 1; }
  grep -q 'topic "orders" with 3 partitions' "$TMP/L" || { cat "$TMP/L" >&2; return 1; }
  [ "$(grep -c 'leader 1, replicas: 1, isrs: 1' "$TMP/L")" = 3 ] || { cat "$TMP/L" >&2; return 1; }
  # All topics (a null list), and an unknown one answered with its error.
  k -L | grep -q 'topic "orders"' || return 1
  k -L -t nosuch 2>&1 | grep -qi 'unknown topic' || { k -L -t nosuch >&2; return 1; }
}

# kcat -P with acks=all, 100 keyed records; kcat -C reads them back byte for
# byte, and in produce order within each partition.
test_kcat_roundtrip() {
  for i in $(seq 1 100); do printf 'key-%d\tvalue %d \xc3\xa9 %s\n' "$i" "$i" "$(head -c 20 /dev/zero | tr '\0' x)"; done \
    >"$TMP/in"
  k -P -t orders -K '\t' -X acks=all -l "$TMP/in" || return 1
  k -C -t orders -e -q -o beginning -f '%p\t%k\t%s\n' >"$TMP/out" || return 1
  [ "$(wc -l <"$TMP/out")" = 100 ] || { echo "got $(wc -l <"$TMP/out") records" >&2; return 1; }
  cut -f2- "$TMP/out" | sort >"$TMP/got"
  sort "$TMP/in" | cmp - "$TMP/got" || return 1
  # Within a partition, produce order is kept.
  local p
  for p in 0 1 2; do
    awk -F'\t' -v p=$p '$1 == p { sub(/^key-/, "", $2); print $2 }' "$TMP/out" >"$TMP/seq"
    sort -n "$TMP/seq" | cmp - "$TMP/seq" || return 1
  done
}

# What kcat produced, `runnel consume` reads; what `runnel produce` wrote,
# kcat reads: the same RecordBatch v2 bytes on both doors.
test_cross() {
  r consume orders -o beginning -e -f '%k\t%s\n' | sort >"$TMP/rn" || return 1
  sort "$TMP/in" | cmp - "$TMP/rn" || return 1
  r topic create native -p 1 >/dev/null || return 1
  seq 1 50 | sed 's/.*/nk&:native value &/' >"$TMP/nin"
  r produce native -K : <"$TMP/nin" >/dev/null || return 1
  k -C -t native -e -q -o beginning -f '%k:%s\n' >"$TMP/nout" || return 1
  cmp "$TMP/nin" "$TMP/nout" || return 1
  # Offsets: from the end (-o -5 is ListOffsets latest), and by time (s@).
  k -C -t native -e -q -o -5 -f '%o %k\n' >"$TMP/tail" || return 1
  printf '45 nk46\n46 nk47\n47 nk48\n48 nk49\n49 nk50\n' | cmp - "$TMP/tail" || return 1
  k -C -t native -e -q -o s@1 -c 1 -f '%o\n' | grep -qx 0 || return 1
  # A time after every record: nothing from there (offset -1 → the end).
  k -C -t native -e -q -o "s@$(($(date +%s) * 1000 + 3600000))" -f '%o\n' >"$TMP/none" || return 1
  [ ! -s "$TMP/none" ] || { cat "$TMP/none" >&2; return 1; }
}

# acks=0 gets no answer at all, yet the record is written; acks=1 as well.
test_acks() {
  r topic create acks -p 1 >/dev/null || return 1
  echo zero | k -P -t acks -X acks=0 || return 1
  echo one | k -P -t acks -X acks=1 || return 1
  local i
  for i in $(seq 1 50); do
    [ "$(k -C -t acks -e -q -o beginning | wc -l)" = 2 ] && break
    sleep 0.1
  done
  k -C -t acks -e -q -o beginning | tr '\n' ' ' | grep -qx 'zero one ' || return 1
}

# A version the listener does not speak (JoinGroup v99) gets UNSUPPORTED_VERSION (35)
# with its correlation id, and the connection stays open for the next
# request; ApiVersions at an unknown version gets the v0 list with error 35.
test_unsupported() {
  python3 - "$KPORT" <<'EOF'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
def call(key, ver, cid, body=b"", flexible=False):
    # Request header v1, or v2 (+ empty tagged fields) for a flexible version.
    m = struct.pack(">hhih", key, ver, cid, 4) + b"test" + (b"\0" if flexible else b"") + body
    s.sendall(struct.pack(">i", len(m)) + m)
    n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    return s.recv(n, socket.MSG_WAITALL)
r = call(11, 99, 7, flexible=True)
assert r == struct.pack(">ih", 7, 35), r.hex()
r = call(18, 99, 8, flexible=True)
cid, err, n = struct.unpack(">ihi", r[:10])
assert (cid, err) == (8, 35) and n >= 5, r.hex()
keys = {struct.unpack(">hhh", r[10 + 6 * i:16 + 6 * i]) for i in range(n)}
assert (18, 0, 3) in keys and (0, 3, 8) in keys and (3, 0, 8) in keys, keys
r = call(3, 1, 9, struct.pack(">i", 0))  # Metadata, no topics: still answered
assert struct.unpack(">i", r[:4])[0] == 9, r.hex()
# A negative frame size: the connection is closed, the broker stays up.
s.sendall(struct.pack(">i", -5))
s.settimeout(5)
assert s.recv(1) == b""
EOF
}

# kafka-python (Debian's python3-kafka 2.0.2), versions left to its own
# probe (ApiVersions v0 pipelined with a Metadata v0), produces and reads
# back by offset.
test_kafka_python() {
  r topic create py -p 1 >/dev/null || return 1
  /usr/bin/python3 - "$KPORT" <<'PY' || return 1
import sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
bs = "127.0.0.1:" + sys.argv[1]
p = KafkaProducer(bootstrap_servers=bs, acks="all")
for i in range(20):
    p.send("py", key=b"k%d" % i, value=b"v%d" % i).get(timeout=10)
p.close()
c = KafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False,
                  consumer_timeout_ms=3000)
tp = TopicPartition("py", 0)
c.assign([tp])
c.seek_to_beginning(tp)
got = [(m.offset, m.key, m.value) for m in c]
assert got == [(i, b"k%d" % i, b"v%d" % i) for i in range(20)], got
assert c.end_offsets([tp])[tp] == 20 and c.beginning_offsets([tp])[tp] == 0
c.close()
PY
  r consume py -o beginning -e -f '%k=%s\n' | tr '\n' ' ' | grep -q '^k0=v0 k1=v1 .*k19=v19 $' || return 1
}

# CreateTopics / DeleteTopics through kafka-python's admin client: created
# with partitions and a config, visible to kcat/runnel; an existing name is
# TOPIC_ALREADY_EXISTS; deleted, it is gone.
test_admin() {
  /usr/bin/python3 - "$KPORT" <<'PY' || return 1
import sys
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
a = KafkaAdminClient(bootstrap_servers="127.0.0.1:" + sys.argv[1])
a.create_topics([NewTopic("adm", 4, 1, topic_configs={"retention.ms": "60000"})])
try:
    a.create_topics([NewTopic("adm", 1, 1)])
    raise SystemExit("second create succeeded")
except TopicAlreadyExistsError:
    pass
a.close()
PY
  r topic describe adm >"$TMP/desc" || return 1
  grep -q 'retention.ms=60000' "$TMP/desc" || { cat "$TMP/desc" >&2; return 1; }
  [ "$(grep -c 'Partition:' "$TMP/desc")" = 4 ] || { cat "$TMP/desc" >&2; return 1; }
  /usr/bin/python3 - "$KPORT" <<'PY' || return 1
import sys
from kafka.admin import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers="127.0.0.1:" + sys.argv[1])
a.delete_topics(["adm"])
a.close()
PY
  ! r topic describe adm >/dev/null 2>&1 || { echo "adm still there" >&2; return 1; }
}

# SIGTERM with Kafka connections open: a clean exit (0).
test_stop() {
  stop_broker
}

# connections.max.idle.ms closes an idle Kafka connection (after it was
# answered), as it does a native one.
test_idle() {
  stop_broker || return 1 # the suite's broker, when this test runs alone (ONLY=)
  start_broker --override connections.max.idle.ms=300 || return 1
  python3 - "$KPORT" <<'PY' || return 1
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
m = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
s.sendall(struct.pack(">i", len(m)) + m)
n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
assert struct.unpack(">i", s.recv(n, socket.MSG_WAITALL)[:4])[0] == 1
assert s.recv(1) == b"", "idle connection not closed"
PY
  stop_broker
}

start_broker || exit 1
NEEDS_KCAT=1 t "kcat -L: brokers at 127.0.0.1:KPORT, leaders, unknown topic" test_list
NEEDS_KCAT=1 t "kcat -P acks=all 100 keyed records, kcat -C reads them byte for byte" test_kcat_roundtrip
NEEDS_KCAT=1 t "runnel consume reads kcat's records; kcat reads runnel's; -o -N and s@" test_cross
NEEDS_KCAT=1 t "acks=0 (no answer) and acks=1 produce" test_acks
if /usr/bin/python3 -c 'import kafka' 2>/dev/null; then
  t "kafka-python producer and consumer (20 records, offsets)" test_kafka_python
  t "kafka-python admin: CreateTopics (partitions, configs, exists), DeleteTopics" test_admin
else
  N=$((N + 2))
  echo "ok $((N - 1)) - kafka-python # SKIP python3-kafka is not installed"
  echo "ok $N - kafka-python admin # SKIP python3-kafka is not installed"
fi
t "unsupported API/version: UNSUPPORTED_VERSION, connection stays; bad frame closes" test_unsupported
t "graceful stop with the Kafka listener" test_stop
t "connections.max.idle.ms closes an idle Kafka connection" test_idle
finish
