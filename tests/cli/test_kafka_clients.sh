#!/usr/bin/env bash
# test_kafka_clients.sh — idempotent producers, leader epochs, admin and SASL
# on runneld's Kafka-protocol listener (broker/kafka/producer.c, epochs.c,
# admin.c, sasl.c), with unmodified clients and with hand-made frames:
#   - python3-confluent-kafka 1.7.0 (librdkafka 2.0.2): enable.idempotence
#     produce, consume by assignment, AdminClient create_partitions and
#     describe_configs (topic and broker, with config sources), a SASL client
#     told "Unsupported SASL mechanism";
#   - kafka-python 2.0.2: describe_configs, create_partitions;
#   - both: consume by time (offsets_for_times, ListOffsets with a timestamp);
#   - auto.create.topics.enable: off by default (Metadata creates nothing);
#     on, Metadata naming an unknown topic creates it with num.partitions;
#   - tests/cli/kafka_wire.py: a retried batch gets its first offset, a gap
#     OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch INVALID_PRODUCER_EPOCH;
#     OffsetsForLeaderEpoch, and KIP-320's current leader epoch in Fetch,
#     ListOffsets and OffsetsForLeaderEpoch; SaslHandshake/SaslAuthenticate.
#
#   tests/cli/test_kafka_clients.sh RUNNEL RUNNELD   (meson passes both; prints TAP)
#
# kafkajs has its own test under node's test runner (tests/kafkajs, meson
# test kafkajs). A client that is not installed is a TAP "# SKIP", not a
# failure. The broker runs on free 127.0.0.1 ports with data
# under a mktemp directory (removed at the end), with two reactors, and is
# stopped by its pid. Every client call runs under `timeout`.
RUNNEL=${1:?usage: test_kafka_clients.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_kafka_clients.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" kclients
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=$HERE${PYTHONPATH:+:$PYTHONPATH}

# The broker also listens for Kafka clients on $KPORT (kept with
# KEEP_PORTS=1), with two reactors, and is up once that port accepts.
broker_extra() {
  [ "${KEEP_PORTS:-0}" = 1 ] || KPORT=$(free_port)
  BROKER_EXTRA=(--kafka "127.0.0.1:$KPORT" --reactors 2)
}
broker_ready() { port_open "$KPORT"; }

py() { timeout 60 $PY - "$KPORT" "$@"; }

# SKIP_WHY=REASON t …: skipped with that reason.
t_skip() { echo "${SKIP_WHY:-}"; }

# ---------------------------------------------------------------------------

# Hand-made frames: InitProducerId, then the Produce path checks the Kafka
# batch's producer id, epoch and sequence as it does a native one's.
test_idempotence_wire() {
  r topic create idem -p 1 >/dev/null || return 1
  py <<'PY' || return 1
import sys
from kafka_wire import Conn, record_batch
c = Conn(sys.argv[1])
pid, epoch = c.init_producer_id()
assert pid >= 0 and epoch == 0, (pid, epoch)
pid2, _ = c.init_producer_id()
assert pid2 != pid, "the same producer id twice"
first = c.produce("idem", 0, record_batch([b"a", b"b", b"c"], pid, 0, 0))
assert first == (0, 0), first
# The same batch again (a retry after a lost answer): its first offset, not written twice.
assert c.produce("idem", 0, record_batch([b"a", b"b", b"c"], pid, 0, 0)) == (0, 0)
assert c.produce("idem", 0, record_batch([b"d"], pid, 0, 3)) == (0, 3)
# A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER (45), nothing written.
assert c.produce("idem", 0, record_batch([b"x"], pid, 0, 9)) == (45, -1)
# A newer epoch starting at 0 is taken; the old epoch is then fenced (47).
assert c.produce("idem", 0, record_batch([b"e"], pid, 1, 0)) == (0, 4)
assert c.produce("idem", 0, record_batch([b"y"], pid, 0, 4)) == (47, -1)
PY
  [ "$(r consume idem -o beginning -e -f '%s' | tr -d '\n')" = abcde ] || return 1
}

# confluent-kafka (librdkafka 2.0.2) with enable.idempotence=true: InitProducerId
# is advertised and used (the stored batches carry its producer id), every
# record is stored once, and a consumer reads them all back by assignment.
test_confluent_idempotent() {
  r topic create ck -p 2 >/dev/null || return 1
  py <<'PY'
import struct, sys
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_wire import Conn, s16
bs = "127.0.0.1:" + sys.argv[1]
p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 5})
errs = []
for i in range(200):
    p.produce("ck", key=b"k%d" % i, value=b"v%d" % i, partition=i % 2,
              on_delivery=lambda e, m: e and errs.append(e))
assert p.flush(30) == 0 and not errs, errs
c = Consumer({"bootstrap.servers": bs, "group.id": "ck-reader", "enable.auto.commit": False,
              "auto.offset.reset": "earliest"})
c.assign([TopicPartition("ck", 0, 0), TopicPartition("ck", 1, 0)])
got = []
for _ in range(100):
    for m in c.consume(200, 0.5):
        assert not m.error(), m.error()
        got.append((m.partition(), m.offset(), m.key(), m.value()))
    if len(got) >= 200:
        break
c.close()
assert sorted(k for _, _, k, _ in got) == sorted(b"k%d" % i for i in range(200)), len(got)
for part in (0, 1):
    offs = [o for p_, o, _, _ in got if p_ == part]
    assert offs == list(range(100)), (part, offs[:5], len(offs))
# The stored batches carry one producer id and sequences without a gap.
bs_ = Conn(sys.argv[1]).batches("ck", 0)
assert len({b[2] for b in bs_}) == 1 and bs_[0][2] >= 0, bs_
assert [b[4] for b in bs_] == [b[0] for b in bs_], bs_  # sequence = offset here
PY
}

# librdkafka's AdminClient: create_partitions grows a topic (fewer is
# INVALID_PARTITIONS with the broker's reason); describe_configs returns the
# topic's and the broker's real values with their sources.
test_confluent_admin() {
  r topic create adm -p 2 --config retention.ms=3600000 >/dev/null || return 1
  py <<'PY' || return 1
import sys
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewPartitions
a = AdminClient({"bootstrap.servers": "127.0.0.1:" + sys.argv[1]})
for f in a.create_partitions([NewPartitions("adm", 5)]).values():
    f.result(timeout=20)
try:
    for f in a.create_partitions([NewPartitions("adm", 3)]).values():
        f.result(timeout=20)
    raise SystemExit("shrinking succeeded")
except KafkaException as e:
    assert e.args[0].name() == "INVALID_PARTITIONS", e
fs = a.describe_configs([ConfigResource("topic", "adm"), ConfigResource("broker", "1")])
res = {r.restype_name if hasattr(r, "restype_name") else str(r.restype): f.result(timeout=20)
       for r, f in fs.items()}
topic = [v for k, v in res.items() if "TOPIC" in k.upper()][0]
broker = [v for k, v in res.items() if "BROKER" in k.upper()][0]
assert topic["retention.ms"].value == "3600000", topic["retention.ms"]
assert topic["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
assert topic["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
# Set by the broker's command line (--override log.segment.bytes=...): the
# topic inherits it, from a static broker config (as Kafka says it).
assert topic["segment.bytes"].value == "67108864", topic["segment.bytes"]
assert topic["segment.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
assert broker["log.segment.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
assert broker["node.id"].value == "1" and broker["node.id"].is_read_only
assert broker["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
try:
    for f in a.describe_configs([ConfigResource("topic", "nosuch")]).values():
        f.result(timeout=20)
    raise SystemExit("unknown topic described")
except KafkaException as e:
    assert e.args[0].name() == "UNKNOWN_TOPIC_OR_PART", e
PY
  [ "$(r topic describe adm | grep -c 'Partition:')" = 5 ] || return 1
}

# kafka-python's admin client asks the same two APIs at its own versions.
test_kafka_python_admin() {
  r topic create kpa -p 1 >/dev/null || return 1
  py <<'PY' || return 1
import sys
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions
a = KafkaAdminClient(bootstrap_servers="127.0.0.1:" + sys.argv[1])
a.create_partitions({"kpa": NewPartitions(3)})
# kafka-python 2.0.2 takes the keys asked for as a dict (key -> None)
r = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kpa", {"retention.ms": None})])
res = r[0].resources[0]
assert res[0] == 0, res  # error_code
names = [c[0] for c in res[4]]
assert names == ["retention.ms"], names
a.close()
PY
  [ "$(r topic describe kpa | grep -c 'Partition:')" = 3 ] || return 1
}

# OffsetsForLeaderEpoch, and KIP-320's current_leader_epoch in Fetch (v9+),
# ListOffsets (v4+) and OffsetsForLeaderEpoch (v2+): this broker leads every
# partition at epoch 0, so 1 is UNKNOWN_LEADER_EPOCH (75), -1 is not checked.
test_leader_epochs() {
  r topic create ep -p 1 >/dev/null || return 1
  seq 1 7 | r produce ep >/dev/null || return 1
  py <<'PY'
import struct, sys
from kafka_wire import Conn, s16
c = Conn(sys.argv[1])
def ofle(cur, epoch, topic="ep", part=0, ver=3):
    body = (struct.pack(">i", -1) if ver >= 3 else b"") + struct.pack(">i", 1) + s16(topic) + \
        struct.pack(">ii", 1, part) + (struct.pack(">i", cur) if ver >= 2 else b"") + \
        struct.pack(">i", epoch)
    r = c.call(23, ver, body)
    at = (4 if ver >= 2 else 0) + 4 + 2 + len(topic) + 4
    err, p = struct.unpack(">hi", r[at:at + 6])
    if ver >= 1:
        return (err,) + struct.unpack(">iq", r[at + 6:at + 18])
    return (err, struct.unpack(">q", r[at + 6:at + 14])[0])
assert ofle(-1, 0) == (0, 0, 7), ofle(-1, 0)       # the latest epoch ends at the log end
assert ofle(0, 0) == (0, 0, 7)
assert ofle(-1, 3) == (0, -1, -1), ofle(-1, 3)     # an epoch newer than any: unknown
assert ofle(1, 0)[0] == 75, ofle(1, 0)             # UNKNOWN_LEADER_EPOCH
assert ofle(-1, 0, ver=0) == (0, 7)
assert ofle(-1, 0, ver=1) == (0, 0, 7)
assert ofle(-1, 0, topic="nosuch")[0] == 3
# v4, flexible: compact arrays and strings, tagged fields, response header v1.
body = struct.pack(">i", -1) + b"\x02\x03ep\x02" + struct.pack(">iii", 0, -1, 0) + b"\0\0\0"
r = c.call(23, 4, body, flexible=True)
assert r == b"\0" + struct.pack(">i", 0) + b"\x02\x03ep\x02" + struct.pack(">hiiq", 0, 0, 0, 7) + \
    b"\0\0\0", r.hex()
assert ofle(-1, 0, part=9)[0] == 3
def lo(cur, ts):
    body = struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + s16("ep") + \
        struct.pack(">iiiq", 1, 0, cur, ts)
    r = c.call(2, 4, body)
    return struct.unpack(">hqqi", r[4 + 4 + 2 + 2 + 4 + 4:][:22])
assert lo(0, -1) == (0, -1, 7, 0), lo(0, -1)       # latest, with its leader epoch
assert lo(-1, -2) == (0, -1, 0, 0), lo(-1, -2)
assert lo(1, -1)[0] == 75, lo(1, -1)
def fetch(cur):
    body = struct.pack(">iiiibii", -1, 0, 1, 1 << 20, 0, 0, -1) + struct.pack(">i", 1) + \
        s16("ep") + struct.pack(">iiiqqi", 1, 0, cur, 0, -1, 1 << 20) + struct.pack(">i", 0) + \
        s16("")
    r = c.call(1, 11, body)
    at = 4 + 2 + 4 + 4 + 2 + 2 + 4 + 4
    return struct.unpack(">h", r[at:at + 2])[0]
assert fetch(0) == 0 and fetch(-1) == 0
assert fetch(1) == 75, fetch(1)
PY
}

# SASL on a PLAINTEXT listener: both APIs answer UNSUPPORTED_SASL_MECHANISM
# (33), the connection stays open; librdkafka configured for SASL says so.
test_sasl() {
  py <<'PY'
import struct, sys, time
from confluent_kafka import Producer
from kafka_wire import Conn, s16
c = Conn(sys.argv[1])
r = c.call(17, 1, s16("PLAIN"))
assert r == struct.pack(">hi", 33, 0), r.hex()
r = c.call(36, 1, struct.pack(">i", 3) + b"abc")
err, n = struct.unpack(">hh", r[:4])
assert err == 33 and r[4:4 + n] == b"SASL is not enabled on this listener", r
assert len(c.call(18, 0)) > 6  # still open
errs = []
p = Producer({"bootstrap.servers": "127.0.0.1:" + sys.argv[1], "security.protocol": "sasl_plaintext",
              "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p",
              "error_cb": lambda e: errs.append(str(e))})
deadline = time.time() + 20
while time.time() < deadline and not any("SASL" in e for e in errs):
    p.poll(0.2)
assert any("Unsupported SASL mechanism" in e for e in errs), errs
PY
}

# kcat (librdkafka) with enable.idempotence=true and lz4: 1000 records over
# three partitions, each stored once.
test_kcat_idempotent() {
  command -v kcat >/dev/null || return 1
  r topic create kci -p 3 >/dev/null || return 1
  seq 1 1000 | timeout 60 kcat -b "127.0.0.1:$KPORT" -P -t kci -X enable.idempotence=true -z lz4 ||
    return 1
  timeout 60 kcat -b "127.0.0.1:$KPORT" -C -t kci -e -q -o beginning | sort -n >"$TMP/kci" || return 1
  seq 1 1000 | cmp - "$TMP/kci" || return 1
}

# An idempotent producer (confluent-kafka) across a broker restart (SIGTERM,
# then a new runneld on the same ports and data): librdkafka reconnects and
# goes on with its producer id and sequences, which the broker rebuilt from
# its segments; every record is stored once, in order.
test_idempotent_restart() {
  r topic create rs -p 1 >/dev/null || return 1
  rm -f "$TMP/phase1" "$TMP/restarted"
  timeout 120 $PY - "$KPORT" "$TMP" >"$TMP/rs.out" 2>&1 <<'PY' &
import os, sys, time
from confluent_kafka import Producer
bs, tmp = "127.0.0.1:" + sys.argv[1], sys.argv[2]
errs = []
p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 5,
              "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 500})
def send(lo, hi):
    for i in range(lo, hi):
        p.produce("rs", value=b"%d" % i, partition=0, on_delivery=lambda e, m: e and errs.append(e))
    assert p.flush(60) == 0 and not errs, errs
send(0, 100)
open(os.path.join(tmp, "phase1"), "w").close()
deadline = time.time() + 60
while not os.path.exists(os.path.join(tmp, "restarted")):
    assert time.time() < deadline, "no restart"
    p.poll(0.05)
send(100, 200)
print("done")
PY
  local pypid=$! i
  for i in $(seq 1 600); do
    [ -e "$TMP/phase1" ] && break
    kill -0 $pypid 2>/dev/null || break
    sleep 0.1
  done
  [ -e "$TMP/phase1" ] || { cat "$TMP/rs.out" >&2; wait $pypid; return 1; }
  stop_broker || return 1
  KEEP_PORTS=1 start_broker --override log.segment.bytes=67108864 || return 1
  touch "$TMP/restarted"
  wait $pypid || { cat "$TMP/rs.out" >&2; return 1; }
  seq 0 199 >"$TMP/rs.want"
  r consume rs -o beginning -e -f '%s\n' | cmp - "$TMP/rs.want" || return 1
  # One producer id before and after the restart, its sequence unbroken.
  py <<'PY'
import sys
from kafka_wire import Conn
bs = Conn(sys.argv[1]).batches("rs", 0)
assert len({b[2] for b in bs}) == 1 and bs[0][2] >= 0, bs
assert all(b[4] == b[0] for b in bs), bs
PY
}

# Metadata v1 (may create) or v4 with allow_auto_topic_creation ALLOW for
# one topic: prints "ERROR N" (N partitions in the answer).
metadata_of() {
  py "$@" <<'PY'
import struct, sys
from kafka_wire import Conn, s16
topic, ver, allow = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
body = struct.pack(">i", 1) + s16(topic) + (struct.pack(">b", allow) if ver >= 4 else b"")
r = Conn(sys.argv[1]).call(3, ver, body)
at = 4 if ver >= 3 else 0
n = struct.unpack(">i", r[at:at + 4])[0]
at += 4
for _ in range(n):  # node_id, host, port, rack
    at += 4
    at += 2 + struct.unpack(">h", r[at:at + 2])[0] + 4
    k = struct.unpack(">h", r[at:at + 2])[0]
    at += 2 + (k if k > 0 else 0)
if ver >= 2:  # cluster_id
    k = struct.unpack(">h", r[at:at + 2])[0]
    at += 2 + (k if k > 0 else 0)
at += 4  # controller_id
assert struct.unpack(">i", r[at:at + 4])[0] == 1
at += 4
err, k = struct.unpack(">hh", r[at:at + 4])
at += 4 + k + 1  # name, is_internal
print(err, struct.unpack(">i", r[at:at + 4])[0])
PY
}

# auto.create.topics.enable is off by default: Metadata for an unknown topic
# answers UNKNOWN_TOPIC_OR_PARTITION (3) and creates nothing.
test_no_auto_create() {
  [ "$(metadata_of noauto 1 1)" = "3 0" ] || return 1
  expect_status 1 r topic describe noauto || return 1
}

# With auto.create.topics.enable=true (a restart with it and num.partitions=3),
# min.insync.replicas has one name at both levels (Kafka's synonym): a topic
# that does not set it inherits the broker's, and DescribeConfigs says the
# value comes from the broker's static config, not the default.
test_min_insync_synonym() {
  stop_broker || return 1
  KEEP_PORTS=1 start_broker --override min.insync.replicas=2 || return 1
  py <<'PY' || return 1
import sys
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource
a = AdminClient({"bootstrap.servers": "127.0.0.1:" + sys.argv[1]})
for f in a.describe_configs([ConfigResource("topic", "adm")]).values():
    e = f.result(timeout=20)["min.insync.replicas"]
    assert e.value == "2", e
    assert e.source == ConfigSource.STATIC_BROKER_CONFIG.value, (e, e.source)
PY
}

# as Kafka: Metadata naming an unknown topic creates it with num.partitions;
# kcat -P to a new topic works; v4's allow_auto_topic_creation=false and an
# invalid name (INVALID_TOPIC_EXCEPTION, 17) create nothing.
test_auto_create() {
  stop_broker || return 1
  KEEP_PORTS=1 start_broker --override log.segment.bytes=67108864 \
    --override auto.create.topics.enable=true --override num.partitions=3 || return 1
  [ "$(metadata_of auto1 1 1)" = "0 3" ] || { metadata_of auto1 1 1 >&2; return 1; }
  [ "$(r topic describe auto1 | grep -c 'Partition:')" = 3 ] || return 1
  [ "$(metadata_of auto2 4 0)" = "3 0" ] || return 1
  expect_status 1 r topic describe auto2 || return 1
  [ "$(metadata_of auto3 4 1)" = "0 3" ] || return 1
  [ "$(metadata_of 'bad name!' 1 1)" = "17 0" ] || { metadata_of 'bad name!' 1 1 >&2; return 1; }
  if command -v kcat >/dev/null; then
    seq 1 30 | timeout 60 kcat -b "127.0.0.1:$KPORT" -P -t kcatauto || return 1
    [ "$(r consume kcatauto -o beginning -e | sort -n | tr '\n' ' ')" = "$(seq 1 30 | tr '\n' ' ')" ] ||
      return 1
    [ "$(r topic describe kcatauto | grep -c 'Partition:')" = 3 ] || return 1
  fi
}

# Consume by time (ListOffsets with a timestamp) with python3-confluent-kafka
# and python3-kafka: 300 records with the timestamps given (base + 10 ms per
# record); offsets_for_times answers the first offset at or after the time
# asked, and none (-1 / None) for a time after every record; each client
# then reads from the offset it was given.
test_offsets_for_times() {
  r topic create kbt -p 1 >/dev/null || return 1
  py kbt <<'PY' || return 1
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
import kafka
port, topic = sys.argv[1], sys.argv[2]
bs = "127.0.0.1:" + port
base = int(time.time() * 1000) - 3600000
p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 5})
for i in range(300):
    p.produce(topic, ("t%d" % i).encode(), partition=0, timestamp=base + 10 * i)
assert p.flush(30) == 0
asks = {base: 0, base + 2500: 250, base + 2505: 251, base + 10000: -1}
c = Consumer({"bootstrap.servers": bs, "group.id": "kbt-c", "enable.auto.commit": False})
for t, want in asks.items():
    [r] = c.offsets_for_times([TopicPartition(topic, 0, t)], timeout=30)
    assert r.error is None and r.offset == want, ("confluent", t - base, r.offset, want)
[r] = c.offsets_for_times([TopicPartition(topic, 0, base + 2500)], timeout=30)
c.assign([r])
m = c.consume(num_messages=1, timeout=30)[0]
assert (m.offset(), m.value(), m.timestamp()[1]) == (250, b"t250", base + 2500), (m.offset(), m.value(), m.timestamp())
c.close()
k = kafka.KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False)
tp = kafka.TopicPartition(topic, 0)
for t, want in asks.items():
    r = k.offsets_for_times({tp: t})[tp]
    got = r.offset if r is not None else -1
    assert got == want, ("kafka-python", t - base, got, want)
    if r is not None:
        assert r.timestamp == base + 10 * want, ("kafka-python timestamp", r.timestamp - base, want)
k.assign([tp])
k.seek(tp, k.offsets_for_times({tp: base + 2505})[tp].offset)
recs = k.poll(timeout_ms=10000, max_records=1)[tp]
assert (recs[0].offset, recs[0].value) == (251, b"t251"), recs[0]
k.close()
PY
}

start_broker --override log.segment.bytes=67108864 || exit 1
t "InitProducerId + Kafka batches: retry same offset, gap 45, old epoch 47" test_idempotence_wire
if $PY -c 'import confluent_kafka' 2>/dev/null; then CK_WHY=; else CK_WHY="python3-confluent-kafka is not installed"; fi
if $PY -c 'import kafka' 2>/dev/null; then KP_WHY=; else KP_WHY="python3-kafka is not installed"; fi
SKIP_WHY=$CK_WHY t "confluent-kafka enable.idempotence: 200 records once each, read back" test_confluent_idempotent
SKIP_WHY=$CK_WHY t "confluent-kafka AdminClient: create_partitions, describe_configs (sources)" test_confluent_admin
SKIP_WHY=$KP_WHY t "kafka-python admin: create_partitions, describe_configs" test_kafka_python_admin
t "OffsetsForLeaderEpoch; current leader epoch in Fetch, ListOffsets (KIP-320)" test_leader_epochs
SKIP_WHY=$CK_WHY t "SaslHandshake/SaslAuthenticate: UNSUPPORTED_SASL_MECHANISM, still open" test_sasl
if command -v kcat >/dev/null; then KC_WHY=; else KC_WHY="kcat is not installed"; fi
SKIP_WHY=$KC_WHY t "kcat -X enable.idempotence=true -z lz4: 1000 records once each" test_kcat_idempotent
SKIP_WHY=$CK_WHY t "idempotent producer across a broker restart: 200 records once, in order" test_idempotent_restart
t "auto.create.topics.enable off (the default): Metadata creates nothing" test_no_auto_create
t "auto.create.topics.enable=true: Metadata creates with num.partitions, kcat -P, v4 allow=false" test_auto_create
SKIP_WHY=$CK_WHY t "describe_configs: a topic inheriting the broker's min.insync.replicas says so" \
  test_min_insync_synonym
SKIP_WHY=$CK_WHY$KP_WHY t "offsets_for_times (confluent-kafka, kafka-python): first offset at or after, none after all" \
  test_offsets_for_times
stop_broker || { echo "not ok $((N + 1)) - clean stop"; exit 1; }
finish
