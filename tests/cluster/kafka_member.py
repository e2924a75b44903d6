#!/usr/bin/env python3
"""kafka_member.py — one Kafka consumer-group member in a process of its own,
for test_kafka_failover.sh (groups on a three-broker cluster): the test kills
it with SIGKILL (a member that vanishes without LeaveGroup) or stops it with
SIGTERM (closes: LeaveGroup, exit 0).

  kafka_member.py LIB BOOTSTRAP TOPIC GROUP      LIB: confluent | kafka-python

LIB names the client: python3-confluent-kafka (librdkafka) or python3-kafka.
Records are read slowly (a few per poll), so a kill lands mid-run, and each
poll's offsets are committed synchronously before the next. Prints one line
per event on stdout, flushed at once:
  A p,p,...          the partitions assigned after a rebalance ("A -" none)
  R p o value        a record consumed
  C p o              an offset committed (the next offset to read)
  E text             a commit that failed (retried with the next poll)
A short session timeout, so the coordinator evicts a killed member quickly.
"""
import signal
import sys
import time

lib, boot, topic, group = sys.argv[1:5]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_confluent():
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": boot, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 500, "topic.metadata.refresh.interval.ms": 1000,
                  "max.poll.interval.ms": 60000, "fetch.wait.max.ms": 200})

    def assigned(_, parts):
        out("A " + (",".join(str(p.partition) for p in sorted(parts, key=lambda p: p.partition)) or "-"))

    c.subscribe([topic], on_assign=assigned)
    while not stop:
        msgs = c.consume(num_messages=20, timeout=0.5)
        nxt = {}
        for m in msgs:
            if m.error():
                continue
            out("R %d %d %s" % (m.partition(), m.offset(), m.value().decode()))
            nxt[m.partition()] = m.offset() + 1
        if nxt:
            tps = [TopicPartition(topic, p, o) for p, o in sorted(nxt.items())]
            try:
                for tp in c.commit(offsets=tps, asynchronous=False):
                    if tp.error is None:
                        out("C %d %d" % (tp.partition, tp.offset))
            except Exception as e:  # NOT_COORDINATOR, a rebalance: retried with the next poll
                out("E " + str(e).replace("\n", " "))
        time.sleep(0.05)
    c.close()


def run_kafka_python():
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    from kafka.consumer.subscription_state import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, parts):
            out("A " + (",".join(str(p.partition) for p in sorted(parts, key=lambda p: p.partition)) or "-"))

    c = KafkaConsumer(bootstrap_servers=boot.split(","), group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500,
                      metadata_max_age_ms=1000, request_timeout_ms=15000, max_poll_records=20,
                      fetch_max_wait_ms=200, reconnect_backoff_max_ms=500)
    c.subscribe([topic], listener=Listener())
    while not stop:
        nxt = {}
        for tp, recs in c.poll(timeout_ms=500).items():
            for r in recs:
                out("R %d %d %s" % (r.partition, r.offset, r.value.decode()))
                nxt[r.partition] = r.offset + 1
        if nxt:
            offs = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in nxt.items()}
            try:
                c.commit(offs)
                for p, o in sorted(nxt.items()):
                    out("C %d %d" % (p, o))
            except Exception as e:
                out("E " + str(e).replace("\n", " "))
        time.sleep(0.05)
    c.close()


if lib == "confluent":
    run_confluent()
else:
    run_kafka_python()
