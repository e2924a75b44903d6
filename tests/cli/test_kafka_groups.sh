#!/usr/bin/env bash
# test_kafka_groups.sh — Kafka consumer groups (the classic JoinGroup /
# SyncGroup protocol, broker/kafka/groups.c, broker/coord/classic_group.c)
# with unmodified clients against runneld's --kafka listener:
#   - two `kcat -G` members share a topic: every record is consumed exactly
#     once across them; their committed offsets resume a later consumer,
#     also after a broker restart;
#   - a member killed with SIGKILL is evicted after its session timeout and
#     the other member takes its partitions;
#   - kafka-python's KafkaConsumer with a group_id: DescribeGroups shows the
#     member and its decoded assignment, commit() lands in __offsets where
#     `runnel group describe` reads it, delete_consumer_groups removes it;
#   - kafka-python and confluent-kafka (tests/cluster/kafka_member.py): two
#     members, one killed -9 mid-run, the survivor reads every record;
#   - a group is classic or native: a native `runnel consume -G` member and a
#     kcat member cannot share a group id (INCONSISTENT_GROUP_PROTOCOL).
#
#   tests/cli/test_kafka_groups.sh RUNNEL RUNNELD   (meson passes both; prints TAP)
#
# Without kcat or python3-kafka the tests needing them are skipped with a
# TAP "# SKIP" line. The broker runs on free 127.0.0.1 ports with data under
# a mktemp directory (removed at the end) and is stopped by its pid; every
# foreground client runs under `timeout`, background members are stopped by
# pid, and every wait is a bounded loop on a condition, never a bare sleep.
RUNNEL=${1:?usage: test_kafka_groups.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_kafka_groups.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" kgroups
HERE=$(cd "$(dirname "$0")" && pwd)
KCAT=$(command -v kcat || true)
HAVE_PYKAFKA=0
$PY -c 'import kafka' 2>/dev/null && HAVE_PYKAFKA=1
CLIENT_PIDS=()

# The broker also listens for Kafka clients on $KPORT, with two reactors, and
# is up once that port accepts.
broker_extra() {
  KPORT=$(free_port)
  BROKER_EXTRA=(--kafka "127.0.0.1:$KPORT" --reactors 2)
}
broker_ready() { port_open "$KPORT"; }

# Stop the clients this script started (by pid) and wait for them.
stop_clients() {
  local p
  for p in "${CLIENT_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in "${CLIENT_PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  CLIENT_PIDS=()
}

# At exit, before the broker: SIGKILL the clients still running.
rn_cleanup() {
  local p
  for p in "${CLIENT_PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
  done
}

k() { timeout 30 "$KCAT" -b "127.0.0.1:$KPORT" "$@"; }

# A kcat group member in the background: output (one key a line, unbuffered)
# to $2. Short session timeout so a killed member is evicted quickly. Not
# under `timeout`, so that $! is kcat itself (a SIGKILL must reach it); every
# member is stopped by pid at the end of its test, or by the exit trap.
member() {
  local group=$1 out=$2 topic=$3
  "$KCAT" -b "127.0.0.1:$KPORT" -G "$group" "$topic" -q -u -f '%k\n' \
    -X auto.offset.reset=earliest -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
    >"$out" 2>"$out.err" &
  CLIENT_PIDS+=($!)
  LAST_PID=$!
}

# Wait (bounded) until the group is Stable with $2 members, as
# DescribeGroups says (kafka-python's admin client, or a raw request).
wait_stable() {
  local group=$1 want=$2 i
  for i in $(seq 1 120); do
    if timeout 10 $PY - "$KPORT" "$group" "$want" <<'PY' 2>/dev/null; then
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
g = sys.argv[2].encode()
body = struct.pack(">i", 1) + struct.pack(">h", len(g)) + g
m = struct.pack(">hhih", 15, 0, 1, 1) + b"t" + body  # DescribeGroups v0
s.sendall(struct.pack(">i", len(m)) + m)
n = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
r = s.recv(n, socket.MSG_WAITALL)
pos = 4 + 4  # correlation id, group count
err, = struct.unpack(">h", r[pos:pos + 2]); pos += 2
def rs():
    global pos
    l, = struct.unpack(">h", r[pos:pos + 2]); pos += 2
    v = r[pos:pos + l]; pos += l
    return v.decode()
gid, state = rs(), rs()
ptype, proto = rs(), rs()
nm, = struct.unpack(">i", r[pos:pos + 4])
sys.exit(0 if err == 0 and state == "Stable" and nm == int(sys.argv[3]) else 1)
PY
      return 0
    fi
    sleep 0.25
  done
  echo "group $group never Stable with $want members" >&2
  return 1
}

# Wait (bounded) until the files hold $1 lines together.
wait_lines() {
  local want=$1 i
  shift
  for i in $(seq 1 240); do
    [ "$(cat "$@" | wc -l)" -ge "$want" ] && return 0
    sleep 0.25
  done
  echo "only $(cat "$@" | wc -l) of $want records consumed" >&2
  return 1
}

produce_keys() { # topic from to
  seq "$2" "$3" | sed 's/^/k/; s/$/:v/' | k -P -t "$1" -K: || return 1
}

# NEEDS=kcat|py t …: skipped, not failed, without that client.
t_skip() {
  if [[ ${NEEDS:-} == *kcat* ]] && [ -z "$KCAT" ]; then
    echo "kcat is not installed (tools/dev installs it)"
  elif [[ ${NEEDS:-} == *py* ]] && [ "$HAVE_PYKAFKA" = 0 ]; then
    echo "python3-kafka is not installed (tools/dev installs it)"
  elif [[ ${NEEDS:-} == *pyno* ]]; then
    echo "python3-confluent-kafka is not installed (tools/dev installs it)"
  fi
}
t_done() { stop_clients; }

# ---------------------------------------------------------------------------

# Two kcat -G members on a 4-partition topic: 200 records produced once the
# group is Stable are consumed once each across the two, each member gets
# some; after both stop (committing on close), 50 more records go to a new
# member, which starts at the committed offsets and gets exactly those 50;
# after a broker restart a member gets nothing more (the commits are in
# __offsets).
test_two_members() {
  r topic create gt -p 4 >/dev/null || return 1
  member kg "$TMP/m1" gt
  member kg "$TMP/m2" gt
  wait_stable kg 2 || return 1
  produce_keys gt 1 200 || return 1
  wait_lines 200 "$TMP/m1" "$TMP/m2" || return 1
  # runnel's own describe shows who owns each partition: two members, two
  # partitions each (the range assignor the kcat leader ran).
  r group describe kg >"$TMP/live" || return 1
  [ "$(awk '$1 == "kg" && $2 == "gt" && $7 ~ /^rdkafka-/ { print $7 }' "$TMP/live" | sort | uniq -c |
      awk '{ print $1 }' | tr '\n' ' ')" = "2 2 " ] || { cat "$TMP/live" >&2; return 1; }
  stop_clients
  [ "$(cat "$TMP/m1" "$TMP/m2" | wc -l)" = 200 ] || { echo "duplicates" >&2; return 1; }
  [ "$(cat "$TMP/m1" "$TMP/m2" | sort -u | wc -l)" = 200 ] || { echo "duplicates" >&2; return 1; }
  seq 1 200 | sed 's/^/k/' | sort >"$TMP/want"
  cat "$TMP/m1" "$TMP/m2" | sort | cmp -s - "$TMP/want" || { echo "wrong records" >&2; return 1; }
  [ -s "$TMP/m1" ] && [ -s "$TMP/m2" ] || { echo "one member got nothing" >&2; return 1; }
  # The commits are what runnel's own CLI shows for the group.
  r group describe kg >"$TMP/desc" || return 1
  [ "$(awk '$1 == "kg" && $2 == "gt" { s += $4 } END { print s }' "$TMP/desc")" = 200 ] ||
    { cat "$TMP/desc" >&2; return 1; }
  produce_keys gt 201 250 || return 1
  timeout 60 "$KCAT" -b "127.0.0.1:$KPORT" -G kg gt -q -e -f '%k\n' -X auto.offset.reset=earliest \
    >"$TMP/m3" 2>"$TMP/m3.err" || { cat "$TMP/m3.err" >&2; return 1; }
  seq 201 250 | sed 's/^/k/' | sort >"$TMP/want3"
  sort "$TMP/m3" | cmp -s - "$TMP/want3" || { echo "resumed wrong:" >&2; cat "$TMP/m3" >&2; return 1; }
  stop_broker || return 1
  start_broker || return 1
  timeout 60 "$KCAT" -b "127.0.0.1:$KPORT" -G kg gt -q -e -f '%k\n' -X auto.offset.reset=earliest \
    >"$TMP/m4" 2>"$TMP/m4.err" || { cat "$TMP/m4.err" >&2; return 1; }
  [ ! -s "$TMP/m4" ] || { echo "after restart, consumed again:" >&2; cat "$TMP/m4" >&2; return 1; }
}

# A member killed with SIGKILL (no LeaveGroup) is evicted once its session
# timeout (6 s) passes; the survivor then gets every partition and every
# record produced after the kill.
test_member_killed() {
  r topic create gk -p 4 >/dev/null || return 1
  member kk "$TMP/k1" gk
  member kk "$TMP/k2" gk
  local victim=$LAST_PID
  wait_stable kk 2 || return 1
  kill -KILL "$victim"
  wait "$victim" 2>/dev/null
  produce_keys gk 1 100 || return 1
  wait_lines 100 "$TMP/k1" || return 1
  sort "$TMP/k1" | cmp -s - <(seq 1 100 | sed 's/^/k/' | sort) || { echo "survivor got:" >&2; sort "$TMP/k1" | head >&2; return 1; }
  grep -q 'classic group member removed.*group=kk.*reason=session_timeout' "$LOG" ||
    { echo "no session timeout logged" >&2; return 1; }
}

# kafka-python: a KafkaConsumer with a group_id consumes everything, shows
# up in DescribeGroups (Stable, the consumer protocol, its assignment decoded
# by kafka-python), commits; the commit is what runnel group describe shows;
# then delete_consumer_groups removes the group.
test_kafka_python() {
  r topic create gp -p 2 >/dev/null || return 1
  produce_keys gp 1 30 || return 1
  timeout 60 $PY - "$KPORT" <<'PY' || return 1
import sys
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
bs = "127.0.0.1:" + sys.argv[1]
c = KafkaConsumer("gp", bootstrap_servers=bs, group_id="pyg", auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=3000)
keys = sorted(m.key for m in c)
assert keys == sorted(b"k%d" % i for i in range(1, 31)), keys
a = KafkaAdminClient(bootstrap_servers=bs)
(d,) = a.describe_consumer_groups(["pyg"])
assert d.state == "Stable" and d.protocol_type == "consumer", d
assert len(d.members) == 1 and d.members[0].client_host == "/127.0.0.1", d
asg = d.members[0].member_assignment.assignment
assert [(t, sorted(p)) for t, p in asg] == [("gp", [0, 1])], asg
c.commit()
ends = c.end_offsets([TopicPartition("gp", 0), TopicPartition("gp", 1)])
for tp, end in ends.items():
    assert c.committed(tp) == end, (tp, c.committed(tp), end)
assert ("pyg", "consumer") in a.list_consumer_groups(), a.list_consumer_groups()
offs = a.list_consumer_group_offsets("pyg")
assert sum(o.offset for o in offs.values()) == 30, offs
c.close()
PY
  r group describe pyg >"$TMP/pdesc" || return 1
  [ "$(awk '$1 == "pyg" && $2 == "gp" { s += $4; l += $6 } END { print s "/" l }' "$TMP/pdesc")" = 30/0 ] ||
    { cat "$TMP/pdesc" >&2; return 1; }
  timeout 60 $PY - "$KPORT" <<'PY' || return 1
import sys
from kafka.admin import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers="127.0.0.1:" + sys.argv[1])
res = dict(a.delete_consumer_groups(["pyg", "nosuchgroup"]))
assert res["pyg"].errno == 0 and res["nosuchgroup"].errno == 69, res  # GROUP_ID_NOT_FOUND
PY
  ! r group list | grep -qx pyg || { echo "pyg still listed" >&2; return 1; }
}

# A group id is classic or native: with a native member in group ng, kcat's
# JoinGroup is refused with INCONSISTENT_GROUP_PROTOCOL; with a kcat member
# in group kn, a native `runnel consume -G kn` is refused.
test_classic_or_native() {
  r topic create gx -p 2 >/dev/null || return 1
  timeout 120 "$RUNNEL" consume gx -G ng >"$TMP/native" 2>&1 &
  CLIENT_PIDS+=($!)
  local i
  for i in $(seq 1 120); do
    r group list 2>/dev/null | grep -qx ng && break
    sleep 0.25
  done
  timeout 10 "$KCAT" -b "127.0.0.1:$KPORT" -G ng gx -q -e >"$TMP/kn.out" 2>"$TMP/kn.err"
  grep -qi 'inconsistent group protocol' "$TMP/kn.err" || { cat "$TMP/kn.err" >&2; return 1; }
  stop_clients
  member kn "$TMP/kx" gx
  wait_stable kn 1 || return 1
  ! timeout 20 "$RUNNEL" consume gx -G kn -e >"$TMP/nk" 2>&1 || { echo "native joined" >&2; return 1; }
  grep -qi 'another protocol\|classic' "$TMP/nk" || { cat "$TMP/nk" >&2; return 1; }
}

# SIGTERM while a JoinGroup waits for the rebalance (a second member joined,
# the first has not joined again): a clean exit (0), the waiting request
# dropped with its connection.
test_stop() {
  timeout 60 $PY - "$KPORT" <<'PY' &
import socket, struct, sys, time
port = int(sys.argv[1])
def join(s, member, cid):
    p = struct.pack(">h", 5) + b"range" + struct.pack(">i", 0)
    body = (struct.pack(">h", 4) + b"pend" + struct.pack(">i", 10000) +
            struct.pack(">h", len(member)) + member + struct.pack(">h", 8) + b"consumer" +
            struct.pack(">i", 1) + p)
    m = struct.pack(">hhih", 11, 0, cid, 1) + b"t" + body  # JoinGroup v0
    s.sendall(struct.pack(">i", len(m)) + m)
a = socket.create_connection(("127.0.0.1", port), timeout=30)
join(a, b"", 1)
n = struct.unpack(">i", a.recv(4, socket.MSG_WAITALL))[0]
r = a.recv(n, socket.MSG_WAITALL)
assert struct.unpack(">hi", r[4:10]) == (0, 1), r.hex()  # no error, generation 1
b = socket.create_connection(("127.0.0.1", port), timeout=30)
join(b, b"", 2)  # waits: the first member has to join again
b.settimeout(30)
try:
    b.recv(1)  # the broker's stop closes the connection
except OSError:
    pass
PY
  local joiner=$!
  local i
  for i in $(seq 1 120); do
    grep -q 'classic group rebalancing.*group=pend.*members=2' "$LOG" && break
    sleep 0.25
  done
  grep -q 'classic group rebalancing.*group=pend.*members=2' "$LOG" ||
    { echo "second member never joined" >&2; return 1; }
  stop_broker || return 1
  wait "$joiner" || { echo "raw joiner failed" >&2; return 1; }
}

# kafka-python and python3-confluent-kafka (tests/cluster/kafka_member.py):
# two members of one group on a 4-partition topic, committing as they read;
# one is killed -9 mid-run; the survivor is given every partition and reads
# every record (a few twice after the rebalance, none lost), its commits
# never go back, and the group ends at lag 0.
py_group_killed() { # LIB GROUP TOPIC
  local lib=$1 g=$2 tp=$3 a b i n
  r topic create "$tp" -p 4 >/dev/null || return 1
  seq 1 2000 | sed 's/.*/k&:g&/' | k -P -t "$tp" -K: || return 1
  $PY "$HERE/../cluster/kafka_member.py" "$lib" "127.0.0.1:$KPORT" "$tp" "$g" >"$TMP/$g.a" 2>"$TMP/$g.a.err" &
  a=$!
  CLIENT_PIDS+=($a)
  $PY "$HERE/../cluster/kafka_member.py" "$lib" "127.0.0.1:$KPORT" "$tp" "$g" >"$TMP/$g.b" 2>"$TMP/$g.b.err" &
  b=$!
  CLIENT_PIDS+=($b)
  last() { awk '$1 == "A" { x = $2 } END { print x }' "$1"; }
  for i in $(seq 1 240); do
    [ -n "$(last "$TMP/$g.a")" ] && [ "$(last "$TMP/$g.a")" != - ] && [ -n "$(last "$TMP/$g.b")" ] &&
      [ "$(last "$TMP/$g.b")" != - ] && [ "$(cat "$TMP/$g.a" "$TMP/$g.b" | grep -c '^R ')" -ge 300 ] && break
    sleep 0.25
  done
  kill -KILL "$b"
  wait "$b" 2>/dev/null
  for i in $(seq 1 480); do
    [ "$(last "$TMP/$g.a")" = 0,1,2,3 ] &&
      [ "$(cat "$TMP/$g.a" "$TMP/$g.b" | awk '$1 == "R" { print $4 }' | sort -u | wc -l)" -ge 2000 ] && break
    sleep 0.25
  done
  kill -TERM "$a"
  wait "$a" || { echo "survivor exit $?: $(tail -c 300 "$TMP/$g.a.err")" >&2; return 1; }
  [ "$(last "$TMP/$g.a")" = 0,1,2,3 ] || { echo "survivor holds $(last "$TMP/$g.a")" >&2; return 1; }
  n=$(cat "$TMP/$g.a" "$TMP/$g.b" | awk '$1 == "R" { print $4 }' | sort -u | comm -3 - <(seq 1 2000 | sed 's/^/g/' | sort) | wc -l)
  [ "$n" = 0 ] || { echo "$n records missing or extra" >&2; return 1; }
  [ "$(cat "$TMP/$g.a" "$TMP/$g.b" | grep -c '^R ')" -lt 3000 ] || { echo "too many read twice" >&2; return 1; }
  for i in a b; do
    [ -z "$(awk '$1 == "C" { if (($2 in m) && $3 < m[$2]) print; m[$2] = $3 }' "$TMP/$g.$i")" ] ||
      { echo "a commit went back" >&2; return 1; }
  done
  [ "$(r group describe "$g" 2>/dev/null | awk -v t="$tp" '$2 == t && $6 == 0' | wc -l)" = 4 ] ||
    { r group describe "$g" >&2; return 1; }
}
test_kafka_python_killed() { py_group_killed kafka-python gpk gpk; }
test_confluent_killed() { py_group_killed confluent gck gck; }

start_broker || exit 1
echo "TAP version 13"
NEEDS=kcat t "two kcat -G members: each record once, offsets resume" test_two_members
NEEDS=kcat t "a killed member is evicted after its session timeout" test_member_killed
NEEDS=py t "kafka-python group consumer, commit, describe, delete" test_kafka_python
NEEDS=kcat t "a group is classic or native" test_classic_or_native
NEEDS=kcat,py t "kafka-python: two members, one killed -9, the survivor reads all" test_kafka_python_killed
if $PY -c 'import confluent_kafka' 2>/dev/null; then CK=; else CK=no; fi
NEEDS=kcat,py$CK t "confluent-kafka: two members, one killed -9, the survivor reads all" test_confluent_killed
t "clean stop with a JoinGroup waiting" test_stop
finish
