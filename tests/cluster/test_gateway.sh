#!/usr/bin/env bash
# test_gateway.sh — every broker's REST/SSE/WebSocket gateway serves every
# partition (issue 13 item 5, DESIGN §7/§8): on three brokers, a topic created
# through broker 1 (it leads it) is produced over REST through brokers 2 and
# 3, read back over REST through broker 3 byte for byte, tailed over SSE on
# broker 2 and over WebSocket on broker 3 (new records arrive); a consumer
# instance on broker 3 reads topics led by brokers 1 and 2 in one fetch (split
# by leader, merged); a group reset previewed on broker 2 shows the leaders'
# offsets; then broker 1 is
# killed (kill -9 by pid) and a REST produce and read on broker 2 answer a
# clear 503 naming the leader instead of hanging, while an SSE tail on broker 2
# waits; broker 1 restarted, a new record reaches that tail: every offset
# once, none missing, none twice.
#
#   tests/cluster/test_gateway.sh RUNNEL RUNNELD    (meson passes both; prints TAP)
#
# Ports are free ones chosen here; data lives under a mktemp directory
# (removed at the end); every process is stopped by its pid; every wait polls
# a condition with a bound (WAIT_S); every curl has --max-time.
set -u

RUNNEL=${1:?usage: test_gateway.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_gateway.sh RUNNEL RUNNELD}
PY=/usr/bin/python3
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cluster-gateway

read -r -a PORTS <<<"$(free_ports 9)"
for i in 1 2 3; do
  PORT[$i]=${PORTS[$(((i - 1) * 3 + 0))]}
  HTTP[$i]=${PORTS[$(((i - 1) * 3 + 1))]}
  CTL[$i]=${PORTS[$(((i - 1) * 3 + 2))]}
done
for i in 1 2 3; do start_node "$i"; done

echo "1..11"

h() { # h NODE PATH: the URL of PATH on NODE's gateway
  echo "http://127.0.0.1:${HTTP[$1]}$2"
}
CT_BIN='Content-Type: application/vnd.kafka.binary.v2+json'
ACC_BIN='Accept: application/vnd.kafka.binary.v2+json'

# Every broker knows topic gw with broker 1 as its partition's leader.
leader_one() { # leader_one NODE
  rn "$1" topic describe gw 2>/dev/null | grep -Eq 'Partition: 0[[:space:]]+Leader: 1[[:space:]]'
}

# 1. The topic, created through broker 1 (so led there), known everywhere.
# One replica (-r 1): the leader's death leaves the partition without a
# leader, which is what checks 9 and 10 are about.
if wait_for "$WAIT_S" sh -c "'$RUNNEL' -b 127.0.0.1:${PORT[1]} cluster status 2>/dev/null | grep -Eq '^controller: [123]'" &&
  rn 1 topic create gw -p 1 -r 1 >/dev/null &&
  wait_for "$WAIT_S" leader_one 1 && wait_for "$WAIT_S" leader_one 2 && wait_for "$WAIT_S" leader_one 3; then
  ok "topic gw created through broker 1, which leads gw-0 on every broker's view"
else
  not_ok "topic gw created through broker 1, which leads gw-0 on every broker's view"
fi

# 2. REST produce on brokers 2 and 3 (not leaders): binary values, including
# bytes that are not text, acknowledged with consecutive offsets.
V1=$(printf 'one\000\001\377' | base64 -w0)
V2=$(printf '\x80two\x00' | base64 -w0)
V3=$(printf 'three' | base64 -w0)
p2=$(curl -s --max-time 40 -X POST -H "$CT_BIN" "$(h 2 /topics/gw/partitions/0)" \
  -d "{\"records\":[{\"value\":\"$V1\"},{\"value\":\"$V2\"}]}")
p3=$(curl -s --max-time 40 -X POST -H "$CT_BIN" "$(h 3 /topics/gw/partitions/0)" \
  -d "{\"records\":[{\"value\":\"$V3\"}]}")
if echo "$p2" | grep -q '"offset": *0' && echo "$p2" | grep -q '"offset": *1' &&
  echo "$p3" | grep -q '"offset": *2'; then
  ok "REST produce through brokers 2 and 3 lands on the leader at offsets 0, 1, 2"
else
  not_ok "REST produce through brokers 2 and 3 lands on the leader at offsets 0, 1, 2"
  echo "# broker 2: $p2"
  echo "# broker 3: $p3"
fi

# 3. REST consume on broker 3: the three values, byte for byte, in order.
got=$(curl -s --max-time 40 -H "$ACC_BIN" "$(h 3 '/topics/gw/partitions/0/records?offset=0&timeout=1000')")
vals=$(echo "$got" | $PY -c 'import json,sys; print(" ".join(r["value"] for r in json.load(sys.stdin)))' 2>/dev/null)
# And the partition's offsets there are the leader's (0 and 3), not the
# empty local copy's.
# The same in the partition listing and the partition's own route.
offs=$(curl -s --max-time 40 "$(h 3 /topics/gw/partitions/0/offsets)")
plist=$(curl -s --max-time 40 "$(h 3 /topics/gw/partitions)")
pone=$(curl -s --max-time 40 "$(h 3 /topics/gw/partitions/0)")
if [ "$vals" = "$V1 $V2 $V3" ] && $PY -c 'import json,sys
a, b, c = (json.loads(x) for x in sys.argv[1:4])
ok = (a["beginning_offset"], a["end_offset"]) == (0, 3)
ok = ok and len(b) == 1 and (b[0]["beginning_offset"], b[0]["end_offset"]) == (0, 3)
ok = ok and (c["beginning_offset"], c["end_offset"], c["leader"]) == (0, 3, 1)
sys.exit(0 if ok else 1)' "$offs" "$plist" "$pone" 2>/dev/null; then
  ok "REST consume through broker 3 returns the records byte for byte; offsets 0..3"
else
  not_ok "REST consume through broker 3 returns the records byte for byte; offsets 0..3"
  echo "# got: $got"
  echo "# offsets: $offs"
  echo "# partitions: $plist"
  echo "# partition 0: $pone"
fi

# 4. SSE on broker 2 from offset 0: the three records, then one produced
# afterwards through broker 3.
curl -s -N --max-time 60 "$(h 2 '/topics/gw/partitions/0/events?offset=0')" >"$TMP/sse.out" 2>/dev/null &
SSE=$!
sse_has() { [ "$(grep -c '^id: ' "$TMP/sse.out" 2>/dev/null)" -ge "$1" ]; }
wait_for "$WAIT_S" sse_has 3
V4=$(printf 'four' | base64 -w0)
curl -s --max-time 40 -X POST -H "$CT_BIN" "$(h 3 /topics/gw/partitions/0)" \
  -d "{\"records\":[{\"value\":\"$V4\"}]}" >/dev/null
if wait_for "$WAIT_S" sse_has 4 && grep -q '^id: 3$' "$TMP/sse.out"; then
  ok "SSE tail on broker 2 sees the old records and a new one (offset 3)"
else
  not_ok "SSE tail on broker 2 sees the old records and a new one (offset 3)"
  sed 's/^/# sse: /' "$TMP/sse.out" | head -20
fi
kill "$SSE" 2>/dev/null
wait "$SSE" 2>/dev/null

# 5. WebSocket on broker 3: subscribe at offset 4, produce through broker 2,
# the record arrives in a "records" frame.
cat >"$TMP/ws.py" <<'EOF'
import asyncio, json, sys, urllib.request
import websockets
port, prod_port = sys.argv[1], sys.argv[2]
async def main():
    async with websockets.connect("ws://127.0.0.1:%s/ws" % port, open_timeout=10) as ws:
        await ws.send(json.dumps({"op": "subscribe", "topic": "gw", "partition": 0, "offset": 4}))
        m = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert m["type"] == "subscribed", m
        req = urllib.request.Request("http://127.0.0.1:%s/topics/gw/partitions/0" % prod_port,
            data=json.dumps({"records": [{"value": "five"}]}).encode(),
            headers={"Content-Type": "application/vnd.kafka.json.v2+json"}, method="POST")
        urllib.request.urlopen(req, timeout=40).read()
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m["type"] == "records":
                r = m["records"][0]
                print(r["offset"], json.dumps(r["value"]))
                return
            assert m["type"] != "error", m
asyncio.run(main())
EOF
ws=$(timeout 60 $PY "$TMP/ws.py" "${HTTP[3]}" "${HTTP[2]}" 2>&1)
if [ "$ws" = '4 "five"' ]; then
  ok "WebSocket tail on broker 3 sees a record produced through broker 2"
else
  not_ok "WebSocket tail on broker 3 sees a record produced through broker 2"
  echo "$ws" | sed 's/^/# ws: /' | tail -5
fi

# 6. A second topic, created through broker 2 (led there), two records
# produced through broker 1; a consumer instance on broker 3 subscribed to
# both topics fetches from two leaders at once (one request split by leader,
# answers merged): all seven records, each once.
leader_two() { rn "$1" topic describe gw2 2>/dev/null | grep -Eq 'Partition: 0[[:space:]]+Leader: 2[[:space:]]'; }
rn 2 topic create gw2 -p 1 -r 1 >/dev/null
wait_for "$WAIT_S" leader_two 1 && wait_for "$WAIT_S" leader_two 3
V6=$(printf 'six' | base64 -w0)
V7=$(printf 'seven' | base64 -w0)
curl -s --max-time 40 -X POST -H "$CT_BIN" "$(h 1 /topics/gw2/partitions/0)" \
  -d "{\"records\":[{\"value\":\"$V6\"},{\"value\":\"$V7\"}]}" >/dev/null
CI="$(h 3 /consumers/cg/instances/c1)"
curl -s --max-time 20 -X POST -H 'Content-Type: application/vnd.kafka.v2+json' "$(h 3 /consumers/cg)" \
  -d '{"name":"c1","format":"binary","auto.offset.reset":"earliest","auto.commit.enable":"false"}' >/dev/null
curl -s --max-time 20 -X POST -H 'Content-Type: application/vnd.kafka.v2+json' "$CI/subscription" \
  -d '{"topics":["gw","gw2"]}' >/dev/null
: >"$TMP/ci.out"
ci_all() {
  curl -s --max-time 20 -H "$ACC_BIN" "$CI/records?timeout=1000" >>"$TMP/ci.out"
  echo >>"$TMP/ci.out"
  [ "$($PY -c 'import json,sys
got = set()
for line in open(sys.argv[1]):
    if line.strip().startswith("["):
        for r in json.loads(line):
            got.add((r["topic"], r["offset"], r["value"]))
print(len(got))' "$TMP/ci.out" 2>/dev/null)" = 7 ]
}
if wait_for "$WAIT_S" ci_all &&
  $PY -c 'import json,sys
recs = []
for line in open(sys.argv[1]):
    if line.strip().startswith("["):
        recs += [(r["topic"], r["offset"], r["value"]) for r in json.loads(line)]
want = {("gw", i, v) for i, v in enumerate(sys.argv[2:7])} | {("gw2", 0, sys.argv[7]), ("gw2", 1, sys.argv[8])}
sys.exit(0 if len(recs) == 7 and set(recs) == want else 1)' "$TMP/ci.out" "$V1" "$V2" "$V3" "$V4" \
  "$(printf '"five"' | base64 -w0)" "$V6" "$V7"; then
  ok "consumer instance on broker 3 fetches gw (leader 1) and gw2 (leader 2): seven records once each"
else
  not_ok "consumer instance on broker 3 fetches gw (leader 1) and gw2 (leader 2): seven records once each"
  sed 's/^/# ci: /' "$TMP/ci.out" | head -10
fi
# 7. One more record, on gw2 only; a poll that may wait 30 s answers with it as
# soon as gw2's leader has, not after gw's leader's idle long poll (a fetch
# split by leader answers early once a part brings records). The 20 s bound
# is far above a normal answer and below the 30 s an idle part would hold it.
V8=$(printf 'eight' | base64 -w0)
curl -s --max-time 40 -X POST -H "$CT_BIN" "$(h 1 /topics/gw2/partitions/0)" \
  -d "{\"records\":[{\"value\":\"$V8\"}]}" >/dev/null
early=$(curl -s --max-time 20 -H "$ACC_BIN" "$CI/records?timeout=30000")
if echo "$early" | $PY -c 'import json,sys
r = json.load(sys.stdin)
sys.exit(0 if [(x["topic"], x["offset"], x["value"]) for x in r] == [("gw2", 2, sys.argv[1])] else 1)' "$V8" 2>/dev/null; then
  ok "a poll over two leaders answers with gw2's new record without waiting for gw's idle leader"
else
  not_ok "a poll over two leaders answers with gw2's new record without waiting for gw's idle leader"
  echo "# got: $early"
fi
curl -s --max-time 20 -X DELETE "$CI" >/dev/null

# 8. Group reset preview on broker 2 over both topics (one partition led
# here, one by broker 1): each leader's offsets, not the local copies'.
rs=$(curl -s --max-time 40 -X POST -H 'Content-Type: application/json' "$(h 2 /groups/gr/reset)" \
  -d '{"topics":["gw","gw2"],"to":"latest"}')
if echo "$rs" | $PY -c 'import json,sys
j = json.load(sys.stdin)
got = {o["topic"]: (o["log_start_offset"], o["log_end_offset"], o["new_offset"]) for o in j["offsets"]}
sys.exit(0 if got == {"gw": (0, 5, 5), "gw2": (0, 3, 3)} and j["executed"] is False else 1)' 2>/dev/null; then
  ok "group reset preview on broker 2 shows each leader's offsets (gw log end 5, gw2 3)"
else
  not_ok "group reset preview on broker 2 shows each leader's offsets (gw log end 5, gw2 3)"
  echo "# reset: $rs"
fi

# 9. The leader killed: a REST produce through broker 2 is answered 503,
# naming broker 1, well within curl's bound (no hang). An SSE tail on broker
# 2 that has seen offsets 0-4 stays open meanwhile (check 11).
curl -s -N --max-time 120 "$(h 2 '/topics/gw/partitions/0/events?offset=0')" >"$TMP/sse2.out" 2>/dev/null &
SSE2=$!
sse2_has() { [ "$(grep -c '^id: ' "$TMP/sse2.out" 2>/dev/null)" -ge "$1" ]; }
wait_for "$WAIT_S" sse2_has 5
kill -KILL "${PID[1]}"
wait "${PID[1]}" 2>/dev/null
PID[1]=
t0=$(now_ms)
st=$(curl -s --max-time 60 -o "$TMP/dead.out" -w '%{http_code}' -X POST -H "$CT_BIN" \
  "$(h 2 /topics/gw/partitions/0)" -d "{\"records\":[{\"value\":\"$V3\"}]}")
t1=$(now_ms)
body=$(cat "$TMP/dead.out" 2>/dev/null)
# The message names the leader that cannot be reached, or (once the
# controller has fenced it, on a slow run) says the partition has no leader.
# A produce to a dead leader is answered per record (REST Proxy's shape): 200 with
# error_code 50301 in the record's entry, or 503 for the whole request.
if { [ "$st" = 503 ] || { [ "$st" = 200 ] && echo "$body" | grep -q '"error_code": *50301'; }; } &&
  echo "$body" | grep -Eq 'broker 1|no leader'; then
  ok "leader killed: REST produce through broker 2 answers 503 naming broker 1 (or no leader)"
  echo "# $st in $((t1 - t0)) ms: $body"
else
  not_ok "leader killed: REST produce through broker 2 answers 503 naming broker 1 (or no leader)"
  echo "# status $st: $body"
fi

# 10. And a REST read through broker 3: 503 naming broker 1.
t0=$(now_ms)
st=$(curl -s --max-time 60 -o "$TMP/dead2.out" -w '%{http_code}' \
  "$(h 3 '/topics/gw/partitions/0/records?offset=0&timeout=1000')")
t1=$(now_ms)
body=$(cat "$TMP/dead2.out" 2>/dev/null)
if [ "$st" = 503 ] && echo "$body" | grep -Eq 'broker 1|no leader'; then
  ok "leader killed: REST read through broker 3 answers 503 naming broker 1 (or no leader)"
  echo "# 503 in $((t1 - t0)) ms: $body"
else
  not_ok "leader killed: REST read through broker 3 answers 503 naming broker 1 (or no leader)"
  echo "# status $st: $body"
fi

# 11. Broker 1 back (same data, same ports): a record produced through broker
# 3 reaches the tail that waited through the outage; its ids are 0..5, once each.
start_node 1
produce_six() {
  curl -s --max-time 20 -X POST -H "$CT_BIN" "$(h 3 /topics/gw/partitions/0)" \
    -d "{\"records\":[{\"value\":\"$V3\"}]}" | grep -q '"offset": *5'
}
if wait_for "$WAIT_S" produce_six && wait_for "$WAIT_S" sse2_has 6 &&
  [ "$(grep '^id: ' "$TMP/sse2.out" | tr -d '\r' | tr '\n' ' ')" = "id: 0 id: 1 id: 2 id: 3 id: 4 id: 5 " ]; then
  ok "SSE tail on broker 2 follows the leader back: offsets 0-5, once each"
else
  not_ok "SSE tail on broker 2 follows the leader back: offsets 0-5, once each"
  sed 's/^/# sse: /' "$TMP/sse2.out" | head -30
fi
kill "$SSE2" 2>/dev/null
wait "$SSE2" 2>/dev/null

for i in 1 2 3; do
  stop_node "$i" || { FAILED=$((FAILED + 1)); echo "# node $i did not stop cleanly"; }
done
exit $((FAILED > 0))
