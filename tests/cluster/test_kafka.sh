#!/usr/bin/env bash
# test_kafka.sh — the Kafka-protocol listener on a three-broker cluster (issue
# 15, "on one broker and on a cluster"): each broker's registration carries
# its Kafka listener, so `kcat -L` on any broker lists all three at their
# Kafka ports, the real leader of every partition and the active controller;
# a topic created through broker 1 is produced with kcat bootstrapped at
# broker 3 and consumed with kcat bootstrapped at broker 2, every record
# once; a Fetch, Produce or ListOffsets sent to a broker that does not lead
# the partition is answered NOT_LEADER_OR_FOLLOWER (6), so clients go to
# the leader (and nothing is written on the wrong broker).
#
#   tests/cluster/test_kafka.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# Ports are free ones chosen here; data lives under a mktemp directory
# (removed at the end); every process is stopped by its pid; every wait
# polls a condition with a bound (WAIT_S). Without kcat: skipped.
set -u

RUNNEL=${1:?usage: test_kafka.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_kafka.sh RUNNEL RUNNELD}
KCAT=$(command -v kcat || true)
if [ -z "$KCAT" ]; then
  echo "1..0 # SKIP kcat is not installed (tools/dev installs it)"
  exit 0
fi
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cluster-kafka

kc() { # kc NODE ARGS…: kcat bootstrapped at NODE's Kafka listener, bounded
  local i=$1
  shift
  timeout 30 "$KCAT" -b "127.0.0.1:${KPORT[$i]}" "$@"
}

# kcat -L on NODE lists exactly brokers 1, 2, 3 at their Kafka ports, and
# the one it marks controller is the active controller as NODE's `cluster
# status` names it (read each time: an election may move it on a slow run).
lists_all() {
  local i=$1 out j
  CONTROLLER=$(field "$i" controller)
  [ -n "$CONTROLLER" ] && [ "$CONTROLLER" != "-" ] || return 1
  out=$(kc "$i" -L -m 5 2>/dev/null) || return 1
  echo "$out" >"$TMP/list$i.out"
  echo "$out" | grep -q '^ 3 brokers:' || return 1
  for j in 1 2 3; do
    echo "$out" | grep -Eq "^  broker $j at 127\.0\.0\.1:${KPORT[$j]}( |\$)" || return 1
  done
  echo "$out" | grep -Eq "^  broker $CONTROLLER at [^ ]+ \(controller\)\$"
}

# One call for every port: ports picked one at a time may repeat (seen: a
# controller listener on the port another node's listener had).
read -r -a PORTS <<<"$(free_ports 12)"
for i in 1 2 3; do
  PORT[$i]=${PORTS[$(((i - 1) * 4 + 0))]}
  HTTP[$i]=${PORTS[$(((i - 1) * 4 + 1))]}
  CTL[$i]=${PORTS[$(((i - 1) * 4 + 2))]}
  KPORT[$i]=${PORTS[$(((i - 1) * 4 + 3))]}
done
for i in 1 2 3; do start_node "$i"; done

echo "1..7"

# 1. kcat -L on every broker: all three at their Kafka ports, the controller.
CONTROLLER=0
if wait_for "$WAIT_S" lists_all 1 &&
  wait_for "$WAIT_S" lists_all 2 && wait_for "$WAIT_S" lists_all 3; then
  ok "kcat -L on each broker lists brokers 1, 2, 3 at their Kafka ports, controller $CONTROLLER"
  sed 's/^/# /' "$TMP/list2.out"
else
  not_ok "kcat -L on each broker lists brokers 1, 2, 3 at their Kafka ports"
  for i in 1 2 3; do [ -f "$TMP/list$i.out" ] && sed "s/^/# n$i: /" "$TMP/list$i.out"; done
fi

# 2. A topic created through broker 1, placed by the controller: its three
# partitions are led by the three brokers (placement spreads leaders), and
# kcat -L on each broker names the same leaders (so all three know the topic
# before anything below asks them about it).
leaders_of() { # leaders_of NODE: "p0 p1 p2" leaders as NODE's Kafka Metadata says
  local out
  out=$(kc "$1" -L -t kc -m 5 2>/dev/null) || return 1
  echo "$out" >"$TMP/topic$1.out"
  for p in 0 1 2; do
    echo "$out" | sed -n "s/.*partition $p, leader \([0-9]*\),.*/\1/p"
  done | tr '\n' ' '
}
agreed() { # agreed: every broker names the same three distinct leaders
  local a b c
  a=$(leaders_of 1) && b=$(leaders_of 2) && c=$(leaders_of 3) || return 1
  [ "$a" = "$b" ] && [ "$b" = "$c" ] || return 1
  [ "$(echo "$a" | tr ' ' '\n' | grep -c .)" = 3 ] || return 1
  [ "$(echo "$a" | tr ' ' '\n' | grep . | sort -u | wc -l)" = 3 ] || return 1
  echo "$a" >"$TMP/leaders"
}
if rn 1 topic create kc -p 3 >/dev/null && wait_for "$WAIT_S" agreed; then
  ok "topic kc created through broker 1: kcat -L on brokers 1, 2, 3 names the same leaders, one partition each ($(cat "$TMP/leaders"))"
else
  not_ok "topic kc created through broker 1: kcat -L on brokers 1, 2, 3 names the same leaders, one partition each"
  for i in 1 2 3; do [ -f "$TMP/topic$i.out" ] && sed "s/^/# n$i: /" "$TMP/topic$i.out"; done
fi
L0=$(awk '{print $1}' "$TMP/leaders" 2>/dev/null)
L0=${L0:-1}
N0=$((L0 % 3 + 1))

# 3. Fetch, Produce and ListOffsets to a broker that does not lead kc-0:
# NOT_LEADER_OR_FOLLOWER; to its leader: no error (Fetch,
# ListOffsets) and CORRUPT_MESSAGE (2) for the Produce's null records (it
# got as far as the records, so the leader check let it through).
kerror() { # kerror fetch|produce|offsets KPORT: the error code kc-0 is answered with
  python3 - "$1" "$2" <<'EOF'
import socket, struct, sys
api, port = sys.argv[1], int(sys.argv[2])
topic = b"kc"
tp = struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic + struct.pack(">i", 1)
if api == "fetch":      # Fetch v4: replica, wait, min, max, isolation; partition 0 at 0
    key, ver = 1, 4
    body = struct.pack(">iiiib", -1, 0, 0, 1 << 20, 0) + tp + struct.pack(">iqi", 0, 0, 1 << 20)
elif api == "produce":  # Produce v3: no transactional id, acks 1, null records
    key, ver = 0, 3
    body = struct.pack(">hhi", -1, 1, 5000) + tp + struct.pack(">ii", 0, -1)
else:                   # ListOffsets v1: latest offset of partition 0
    key, ver = 2, 1
    body = struct.pack(">i", -1) + tp + struct.pack(">iq", 0, -1)
req = struct.pack(">hhi", key, ver, 7) + struct.pack(">h", 4) + b"test" + body
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(struct.pack(">i", len(req)) + req)
def read(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit("connection closed")
        b += c
    return b
r = read(struct.unpack(">i", read(4))[0])
p = 8 if api == "fetch" else 4   # correlation id (and Fetch's throttle_time_ms)
corr, nt = struct.unpack(">i", r[:4])[0], struct.unpack(">i", r[p:p + 4])[0]
tl = struct.unpack(">h", r[p + 4:p + 6])[0]
q = p + 6 + tl
n_parts, part, err = struct.unpack(">iih", r[q:q + 10])
assert corr == 7 and nt == 1 and r[p + 6:q] == topic and n_parts == 1 and part == 0, r[:q + 10]
print(err)
EOF
}
for api in fetch produce offsets; do
  e2=$(kerror "$api" "${KPORT[$N0]}" 2>"$TMP/$api.err")
  e1=$(kerror "$api" "${KPORT[$L0]}" 2>>"$TMP/$api.err")
  want1=0
  [ "$api" = produce ] && want1=2
  if [ "$e2" = 6 ] && [ "$e1" = "$want1" ]; then
    ok "$api kc-0 on broker $N0 answers NOT_LEADER_OR_FOLLOWER (6); on its leader $L0, $want1"
  else
    not_ok "$api kc-0 on broker $N0 answers NOT_LEADER_OR_FOLLOWER (6) (got '$e2'); on leader $L0 $want1 (got '$e1')"
    sed 's/^/# /' "$TMP/$api.err"
  fi
done

# 4. Produce with kcat bootstrapped at broker 3 (it sends to the leader).
RECORDS=200
seq 1 "$RECORDS" | sed 's/^/rec-/' >"$TMP/sent"
if kc 3 -P -t kc -X acks=all -X message.timeout.ms=20000 <"$TMP/sent" 2>"$TMP/produce.err"; then
  ok "kcat -P bootstrapped at broker 3: $RECORDS records acked"
else
  not_ok "kcat -P bootstrapped at broker 3: $RECORDS records acked"
  sed 's/^/# /' "$TMP/produce.err"
fi

# 5. Consume with kcat bootstrapped at broker 2: every record, once.
kc 2 -C -t kc -o beginning -e -q -f '%s\n' >"$TMP/got" 2>"$TMP/consume.err"
if [ "$(wc -l <"$TMP/got")" = "$RECORDS" ] && diff <(sort "$TMP/sent") <(sort "$TMP/got") >/dev/null; then
  ok "kcat -C bootstrapped at broker 2 reads the $RECORDS records, each once"
else
  not_ok "kcat -C bootstrapped at broker 2 reads the $RECORDS records, each once (got $(wc -l <"$TMP/got"))"
  sed 's/^/# /' "$TMP/consume.err" | tail -n 10
fi

for i in 1 2 3; do
  stop_node "$i"
  st=$?
  [ "$st" = 0 ] || { echo "# runneld $i exited $st"; FAILED=$((FAILED + 1)); }
done
[ "$FAILED" = 0 ]
