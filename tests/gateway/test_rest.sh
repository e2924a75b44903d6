#!/usr/bin/env bash
# test_rest.sh — the REST gateway end to end with curl: every endpoint and every
# error status (400/403/404/405/409/413/415/422), against a real runneld.
#
#   tests/gateway/test_rest.sh RUNNELD [RUNNEL_CLI]     (meson passes them; prints TAP)
#
# One broker on free 127.0.0.1 ports (native + HTTP) with its data under a
# mktemp directory in /tmp, removed at the end; the broker is stopped with
# SIGTERM and must exit 0. message.max.bytes is lowered to 64 KiB so the
# gateway's body limit (4 × message.max.bytes = 256 KiB) is cheap to pass.
# Every curl runs with --max-time, so a hang fails a test, not the suite.
# With RUNNEL_CLI, records produced over REST are read back by the native CLI
# (same handlers, same partitioner).
RUNNELD=${1:?usage: test_rest.sh RUNNELD [RUNNEL_CLI]}
RUNNEL=${2:-}
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" gw-rest

# The broker is up once the gateway answers /healthz.
broker_ready() { curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz"; }

# req METHOD PATH [curl args…]: body in $TMP/body, status in $STATUS, headers in $TMP/hdr.
req() {
  local method=$1 path=$2 m
  shift 2
  m=(-X "$method")
  [ "$method" = HEAD ] && m=(-I)
  STATUS=$(curl -s --max-time 15 "${m[@]}" -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' \
    "$@" "$BASE$path")
}

# expect STATUS [ERROR_CODE]: the last answer had this status (and REST error_code).
expect() {
  if [ "$STATUS" != "$1" ]; then
    echo "status $STATUS, wanted $1; body: $(head -c 300 "$TMP/body")" >&2
    return 1
  fi
  if [ $# -ge 2 ]; then
    local code
    code=$(jq_ '.get("error_code")')
    if [ "$code" != "$2" ]; then
      echo "error_code $code, wanted $2; body: $(head -c 300 "$TMP/body")" >&2
      return 1
    fi
  fi
}

# jq_ EXPR: evaluate a Python expression on the JSON body (bound to the name `j`;
# `.name` is shorthand for j["name"]); prints the result as JSON.
jq_() {
  $PY - "$1" "$TMP/body" <<'EOF'
import json, sys
expr, path = sys.argv[1], sys.argv[2]
j = json.load(open(path))
if expr.startswith(".") and expr[1:].replace("_", "").isalnum():
    expr = "j[%r]" % expr[1:]
elif expr.startswith(".get("):
    expr = "j" + expr
print(json.dumps(eval(expr)))
EOF
}

# want EXPR VALUE: jq_ EXPR must print VALUE.
want() {
  local got
  got=$(jq_ "$1") || { echo "cannot evaluate $1 on: $(head -c 300 "$TMP/body")" >&2; return 1; }
  if [ "$got" != "$2" ]; then
    echo "$1 = $got, wanted $2" >&2
    return 1
  fi
}

header_has() {
  if ! grep -qi "^$1" "$TMP/hdr"; then
    echo "no '$1' header in: $(tr -d '\r' <"$TMP/hdr" | head -10)" >&2
    return 1
  fi
}

JSONV2='Content-Type: application/vnd.kafka.json.v2+json'
BINV2='Content-Type: application/vnd.kafka.binary.v2+json'

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# /healthz is always 200; /readyz is 200 once storage recovery is done.
test_health() {
  req GET /healthz && expect 200 && want .status '"ok"' || return 1
  req GET /readyz && expect 200 && want .status '"ready"' || return 1
  req POST /healthz && expect 405 40501 || return 1
  header_has "Allow: GET"
}

# /metrics is Prometheus text with runnel_ names, the gateway's counters included.
test_metrics() {
  req GET /metrics && expect 200 || return 1
  header_has "Content-Type: text/plain; version=0.0.4" || return 1
  grep -q '^runnel_http_requests_total [0-9]' "$TMP/body" || { echo "no http counter" >&2; return 1; }
  grep -q '^# TYPE runnel_http_responses_total counter' "$TMP/body" || return 1
  grep -q '^runnel_stream_connections_active{kind="ws"} ' "$TMP/body" || return 1
  ! grep -v '^#' "$TMP/body" | grep -v '^runnel_' | grep -q . || { echo "a metric without runnel_" >&2; return 1; }
}

# POST /topics creates (201); the same name again is 409; bad input is 400/415/422.
test_create_topic() {
  req POST /topics -H 'Content-Type: application/json' \
    -d '{"name":"orders","partitions":3,"replication_factor":1,"configs":{"retention.ms":"3600000"}}'
  expect 201 && want .name '"orders"' && want .partitions 3 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '{"name":"orders","partitions":3}'
  expect 409 40901 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '{"name":"bad name!","partitions":1}'
  expect 422 42201 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '{"name":"x","partitions":-7}'
  expect 422 42201 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '{"name":"x","configs":{"retention.ms":"soon"}}'
  expect 422 42201 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '{"name":'
  expect 400 40001 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '["name","x"]'
  expect 422 42201 || return 1
  req POST /topics -H 'Content-Type: text/plain' -d 'orders'
  expect 415 41501 || return 1
  req POST /topics -H 'Content-Type: application/json' -d '{"name":"events"}'
  expect 201 && want .partitions 1
}

# GET /topics lists user topics (not __offsets); GET /topics/{t} describes one; unknown is 404.
test_list_and_describe() {
  req GET /topics && expect 200 && want 'sorted(j)' '["events", "orders"]' || return 1
  req GET /topics/orders && expect 200 || return 1
  want .name '"orders"' && want 'len(j["partitions"])' 3 || return 1
  want 'j["configs"]["retention.ms"]' '"3600000"' || return 1
  want 'j["partitions"][1]' '{"partition": 1, "leader": 1, "replicas": [{"broker": 1, "leader": true, "in_sync": true}]}' || return 1
  req GET /topics/nope && expect 404 40401
}

# Partitions with beginning/end offsets; one partition; its offsets; unknown ones are 40402.
test_partitions() {
  req GET /topics/orders/partitions && expect 200 || return 1
  want 'len(j)' 3 && want 'j[2]["beginning_offset"]' 0 && want 'j[2]["end_offset"]' 0 || return 1
  req GET /topics/orders/partitions/2 && expect 200 && want .partition 2 || return 1
  req GET /topics/orders/partitions/2/offsets && expect 200 || return 1
  want j '{"beginning_offset": 0, "end_offset": 0}' || return 1
  req GET /topics/orders/partitions/9 && expect 404 40402 || return 1
  req GET /topics/orders/partitions/x && expect 404 40402 || return 1
  req GET /topics/nope/partitions/0 && expect 404 40401 || return 1
  req GET /topics/orders/partitions/0/nothing && expect 404 40400
}

# Records in json.v2, binary.v2 (base64) and plain JSON go in; offsets come back in record order.
test_produce_formats() {
  req POST /topics/orders/partitions/1 -H "$JSONV2" \
    -d '{"records":[{"key":"k","value":{"n":1}},{"value":[1,2,3],"headers":[{"name":"h","value":"v"}]}]}'
  expect 200 || return 1
  want '[o["offset"] for o in j["offsets"]]' '[0, 1]' && want 'j["offsets"][0]["error_code"]' null || return 1
  req POST /topics/orders/partitions/1 -H "$BINV2" -d '{"records":[{"key":"AAEC","value":"aGVsbG8="}]}'
  expect 200 && want 'j["offsets"][0]["offset"]' 2 || return 1
  req POST /topics/orders/partitions/1 -H 'Content-Type: application/json' -d '{"records":[{"value":"plain"}]}'
  expect 200 && want 'j["offsets"][0]["offset"]' 3 || return 1
  # Read back: json rendering embeds JSON values; binary rendering is base64.
  req GET '/topics/orders/partitions/1/records?offset=0' && expect 200 || return 1
  header_has "Content-Type: application/vnd.kafka.json.v2+json" || return 1
  want '[r["offset"] for r in j]' '[0, 1, 2, 3]' && want 'j[0]["value"]' '{"n": 1}' || return 1
  want 'j[1]["headers"]' '[{"name": "h", "value": "v"}]' && want 'j[3]["value"]' '"plain"' || return 1
  want 'j[0]["topic"]' '"orders"' && want 'j[0]["partition"]' 1 || return 1
  req GET '/topics/orders/partitions/1/records?offset=2' -H 'Accept: application/vnd.kafka.binary.v2+json'
  expect 200 && want 'j[0]["key"]' '"AAEC"' && want 'j[0]["value"]' '"aGVsbG8="' || return 1
  header_has "Content-Type: application/vnd.kafka.binary.v2+json"
}

# Produce errors: unknown topic/partition 404, bad records 422, not JSON 400, bad type 415.
test_produce_errors() {
  req POST /topics/nope -H "$JSONV2" -d '{"records":[{"value":1}]}' && expect 404 40401 || return 1
  req POST /topics/orders/partitions/7 -H "$JSONV2" -d '{"records":[{"value":1}]}' && expect 404 40402 || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"records":[{"value":1,"partition":5}]}' && expect 404 40402 || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"records":[]}' && expect 422 42201 || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"nothing":1}' && expect 422 42201 || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"records":[{"value":1,"partition":"one"}]}' && expect 422 42201 || return 1
  req POST /topics/orders -H "$BINV2" -d '{"records":[{"value":"not base64!"}]}' && expect 422 42201 || return 1
  req POST /topics/orders -H "$BINV2" -d '{"records":[{"value":{"a":1}}]}' && expect 422 42201 || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"records":[{"value":1}' && expect 400 40001 || return 1
  req POST /topics/orders -H 'Content-Type: application/vnd.kafka.avro.v2+json' -d '{"records":[]}'
  expect 415 41501 || return 1
  # Nothing of a refused request was written.
  req GET /topics/orders/partitions/0/offsets && want .end_offset 0
}

# Keyless records spread round-robin; records with the same key land on the same partition.
test_partitioning() {
  req POST /topics/orders -H "$JSONV2" -d '{"records":[{"value":1},{"value":2},{"value":3},{"value":4},{"value":5},{"value":6}]}'
  expect 200 || return 1
  want 'sorted(o["partition"] for o in j["offsets"])' '[0, 0, 1, 1, 2, 2]' || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"records":[{"key":"user-7","value":1},{"key":"user-7","value":2}]}'
  expect 200 || return 1
  local p
  p=$(jq_ 'j["offsets"][0]["partition"]')
  want 'j["offsets"][1]["partition"]' "$p" || return 1
  req POST /topics/orders -H "$JSONV2" -d '{"records":[{"key":"user-7","value":3}]}'
  want 'j["offsets"][0]["partition"]' "$p"
}

# A binary key hashes like the native client's: REST and `runnel produce -k` pick the same partition.
test_native_partitioner() {
  [ -n "$RUNNEL" ] || { echo "# skip: no runnel CLI" >&2; return 0; }
  local key b64 i
  for key in alpha bravo charlie delta echo; do
    b64=$(printf %s "$key" | base64)
    req POST /topics/orders -H "$BINV2" -d "{\"records\":[{\"key\":\"$b64\",\"value\":\"$(printf rest | base64)\"}]}"
    expect 200 || return 1
    local rp
    rp=$(jq_ 'j["offsets"][0]["partition"]')
    printf 'native\n' | timeout 20 "$RUNNEL" produce orders -k "$key" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; return 1; }
    timeout 20 "$RUNNEL" consume orders -p "$rp" -e -f '%k=%s\n' >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err" >&2; return 1; }
    grep -qx "$key=rest" "$TMP/out" && grep -qx "$key=native" "$TMP/out" || {
      echo "key $key: REST chose partition $rp, the native producer did not:" >&2
      cat "$TMP/out" >&2
      return 1
    }
  done
}

# Stateless fetch: offset required, out of range is 422, max_bytes bounds the answer, timeout long-polls.
test_records_endpoint() {
  req GET '/topics/orders/partitions/1/records' && expect 422 42201 || return 1
  req GET '/topics/orders/partitions/1/records?offset=-1' && expect 422 42201 || return 1
  req GET '/topics/orders/partitions/1/records?offset=999' && expect 422 42201 || return 1
  req GET '/topics/orders/partitions/1/records?offset=0&timeout=99999999' && expect 422 42201 || return 1
  req GET '/topics/nope/partitions/0/records?offset=0' && expect 404 40401 || return 1
  req GET '/topics/orders/partitions/9/records?offset=0' && expect 404 40402 || return 1
  # At the end: empty at once without timeout…
  local end
  req GET /topics/orders/partitions/1/offsets && end=$(jq_ .end_offset)
  req GET "/topics/orders/partitions/1/records?offset=$end" && expect 200 && want j '[]' || return 1
  # …and with one, the answer comes as soon as a record is produced.
  local t0 t1
  t0=$(date +%s%N)
  (sleep 0.5; curl -s --max-time 5 -o /dev/null -H "$JSONV2" -d '{"records":[{"value":"late"}]}' \
    "$BASE/topics/orders/partitions/1") &
  local writer=$!
  req GET "/topics/orders/partitions/1/records?offset=$end&timeout=5000"
  t1=$(date +%s%N)
  wait "$writer"
  expect 200 && want 'j[0]["value"]' '"late"' || return 1
  [ $(((t1 - t0) / 1000000)) -lt 4000 ] || { echo "long poll took $(((t1 - t0) / 1000000)) ms" >&2; return 1; }
  # max_bytes=1: still one whole batch (never stalls), not more.
  req GET '/topics/orders/partitions/1/records?offset=0&max_bytes=1' && expect 200 || return 1
  want 'len(j) >= 1 and len(j) <= 2' true
}

# Limits: a body over 4 × message.max.bytes and oversized headers are 413 (41301), before the body is read.
test_limits() {
  head -c 300000 /dev/zero | tr '\0' 'a' >"$TMP/big"
  req POST /topics/orders -H "$JSONV2" --data-binary @"$TMP/big" && expect 413 41301 || return 1
  header_has "Connection: close" || return 1
  # With Expect: 100-continue curl sends nothing until told: the 413 comes instead.
  req POST /topics/orders -H "$JSONV2" -H 'Expect: 100-continue' --data-binary @"$TMP/big"
  expect 413 41301 || return 1
  local big
  big=$(head -c 20000 /dev/zero | tr '\0' 'x')
  req GET /healthz -H "X-Big: $big" && expect 413 41301 || return 1
  # A batch over the topic's max.message.bytes inside an acceptable body: the
  # broker's own check refuses that partition's records: 413, 41301 per record, the limit named.
  local v
  v=$($PY -c 'import base64; print(base64.b64encode(b"v" * 100000).decode())')
  printf '{"records":[{"value":"%s"}]}' "$v" >"$TMP/mid"
  req POST /topics/orders/partitions/0 -H "$BINV2" --data-binary @"$TMP/mid" && expect 413 || return 1
  want 'j["offsets"][0]["error_code"]' 41301 || return 1
  want '"max.message.bytes (65536)" in j["offsets"][0]["error"]' true || return 1
  # The broker is fine afterwards.
  req GET /healthz && expect 200
}

# Unknown routes are 404 (40400); wrong methods 405 with an Allow header.
test_routes() {
  req GET /nothing/here && expect 404 40400 || return 1
  req PUT /topics && expect 405 40501 && header_has "Allow: GET, POST" || return 1
  req PATCH /topics/orders && expect 405 40501 || return 1
  req DELETE /topics/orders/partitions && expect 405 40501 || return 1
  req POST /topics/orders/partitions/0/records && expect 405 40501 || return 1
  req GET / && { [ "$STATUS" = 200 ] || [ "$STATUS" = 404 ]; } || { echo "GET / gave $STATUS" >&2; return 1; }
  # HEAD answers like GET without a body.
  req HEAD /healthz && expect 200 && header_has "Content-Length: 15" || return 1
  # (curl -I writes the head to the body file too: no JSON must follow it)
  ! grep -q status "$TMP/body"
}

# Browsers: a foreign Origin is refused (403 40301); the page's own origin passes; OPTIONS preflights.
test_origin() {
  req GET /topics -H 'Origin: http://evil.example' && expect 403 40301 || return 1
  req POST /topics/orders -H "$JSONV2" -H 'Origin: http://evil.example' -d '{"records":[{"value":1}]}'
  expect 403 40301 || return 1
  req GET /topics -H "Origin: $BASE" && expect 200 || return 1
  req OPTIONS /topics -H "Origin: $BASE" && expect 204
}

# Keep-alive: many requests on one connection (curl reuses it), answered in order.
test_keep_alive() {
  curl -s --max-time 10 -v -o /dev/null -o /dev/null -o /dev/null \
    "$BASE/healthz" "$BASE/topics" "$BASE/readyz" 2>"$TMP/v" || return 1
  grep -q "Re-using existing connection" "$TMP/v" || { echo "connection not reused" >&2; return 1; }
  [ "$(grep -c '^< HTTP/1.1 200' "$TMP/v")" = 3 ]
}

# REST and native clients meet in the same log: REST writes, the CLI reads (and back).
test_rest_native_round_trip() {
  [ -n "$RUNNEL" ] || { echo "# skip: no runnel CLI" >&2; return 0; }
  req POST /topics/events -H "$JSONV2" -d '{"records":[{"value":"from-rest"}]}' && expect 200 || return 1
  printf 'from-cli\n' | timeout 20 "$RUNNEL" produce events -p 0 >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  timeout 20 "$RUNNEL" consume events -e -f '%s\n' >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  printf '"from-rest"\nfrom-cli\n' >"$TMP/want"
  cmp -s "$TMP/out" "$TMP/want" || { echo "CLI read: $(cat "$TMP/out")" >&2; return 1; }
  req GET '/topics/events/partitions/0/records?offset=0' && want '[r["value"] for r in j]' '["from-rest", "from-cli"]'
}

# REST Proxy v2 consumer instances: create (409 twice), subscribe, records, commit, seek, the
# group and its lag (/groups), delete.
test_consumer_instances() {
  local g=/consumers/grp1 i=/consumers/grp1/instances
  req POST /topics -H 'Content-Type: application/json' -d '{"name":"cons","partitions":2}' && expect 201 || return 1
  req POST /topics/cons -H "$JSONV2" -d '{"records":[{"value":"p0","partition":0},{"value":"p1","partition":1}]}'
  expect 200 || return 1
  req POST $g -H 'Content-Type: application/vnd.kafka.v2+json' \
    -d '{"name":"a","format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false"}'
  expect 200 && want .instance_id '"a"' && want 'j["base_uri"].endswith("/consumers/grp1/instances/a")' true || return 1
  req POST $g -H 'Content-Type: application/vnd.kafka.v2+json' -d '{"name":"a","format":"json"}'
  expect 409 40902 || return 1
  req POST $g -H 'Content-Type: application/vnd.kafka.v2+json' -d '{"name":"b","format":"avro"}'
  expect 422 42201 || return 1
  req GET $i/nobody/records && expect 404 40403 || return 1
  req POST $i/a/subscription -H 'Content-Type: application/json' -d '{"topics":["cons"]}' && expect 204 || return 1
  req GET $i/a/subscription && expect 200 && want .topics '["cons"]' || return 1
  local k
  for k in $(seq 1 50); do
    req GET $i/a/assignments
    [ "$(jq_ 'len(j["partitions"])')" = 2 ] && break
    sleep 0.1
  done
  want 'sorted(p["partition"] for p in j["partitions"])' '[0, 1]' || return 1
  req GET "$i/a/records?timeout=1000" && expect 200 || return 1
  header_has "Content-Type: application/vnd.kafka.json.v2+json" || return 1
  want 'sorted(r["value"] for r in j)' '["p0", "p1"]' || return 1
  req GET "$i/a/records?timeout=0" && expect 200 && want j '[]' || return 1
  req GET "$i/a/records?timeout=-5" && expect 422 42201 || return 1
  # Commit what was read (no body = every position), read it back.
  req POST $i/a/offsets && expect 204 || return 1
  req GET $i/a/offsets && expect 200 || return 1
  want 'sorted((o["partition"], o["offset"]) for o in j["offsets"] if o["topic"] == "cons")' '[[0, 1], [1, 1]]' || return 1
  req POST $i/a/offsets -H 'Content-Type: application/json' -d '{"offsets":[{"topic":"cons","partition":0}]}'
  expect 422 42201 || return 1
  # Seek back to the beginning of partition 0: p0 again.
  req POST $i/a/positions/beginning -H 'Content-Type: application/json' -d '{"partitions":[{"topic":"cons","partition":0}]}'
  expect 204 || return 1
  req GET "$i/a/records?timeout=1000" && want '[r["value"] for r in j]' '["p0"]' || return 1
  req POST $i/a/positions -H 'Content-Type: application/json' -d '{"offsets":[{"topic":"nope","partition":0,"offset":0}]}'
  expect 409 40903 || return 1
  # A second instance joins: the group splits the two partitions between them.
  req POST $g -H 'Content-Type: application/vnd.kafka.v2+json' -d '{"name":"b","format":"binary"}' && expect 200 || return 1
  req POST $i/b/subscription -H 'Content-Type: application/json' -d '{"topics":["cons"]}' && expect 204 || return 1
  local pa pb
  for k in $(seq 1 100); do
    req GET $i/a/assignments && pa=$(jq_ 'sorted(p["partition"] for p in j["partitions"])')
    req GET $i/b/assignments && pb=$(jq_ 'sorted(p["partition"] for p in j["partitions"])')
    [ "$pa" != "[0, 1]" ] && [ "$pb" != "[]" ] && break
    sleep 0.1
  done
  [ "$(echo "$pa $pb" | tr -dc '01' | fold -w1 | sort | tr -d '\n')" = 01 ] || { echo "a=$pa b=$pb" >&2; return 1; }
  # Committed offsets are the group's: b starts after them, so nothing old comes back.
  req GET "$i/b/records?timeout=300" && expect 200 && want j '[]' || return 1
  # The group as the console sees it: members, committed offsets and lag.
  req GET /groups && expect 200 && want '[g["group_id"] for g in j if g["group_id"] == "grp1"]' '["grp1"]' || return 1
  req GET /groups/grp1 && expect 200 && want 'len(j["members"])' 2 || return 1
  want 'sorted((p["partition"], p["committed_offset"], p["lag"]) for p in j["partitions"] if p["topic"] == "cons")' \
    '[[0, 1, 0], [1, 1, 0]]' || return 1
  req GET /groups/nope && expect 404 40404 || return 1
  req DELETE $i/a && expect 204 || return 1
  req GET $i/a/records && expect 404 40403 || return 1
  req DELETE $i/b && expect 204
}

# DELETE /topics/{t} is 204; the topic is then gone (404), and deleting again is 404.
test_delete_topic() {
  req DELETE /topics/events && expect 204 || return 1
  req GET /topics/events && expect 404 40401 || return 1
  req DELETE /topics/events && expect 404 40401 || return 1
  req GET /topics && want 'sorted(j)' '["cons", "orders"]'
}

# SIGTERM: the broker stops cleanly (exit 0) with HTTP connections open.
test_clean_stop() {
  exec 3<>/dev/tcp/127.0.0.1/"$HTTP_PORT" || return 1
  printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&3
  kill -TERM "$BROKER_PID"
  local st=0
  wait "$BROKER_PID" || st=$?
  BROKER_PID=
  exec 3>&-
  [ "$st" = 0 ] || { echo "runneld exit status $st" >&2; tail -20 "$TMP/runneld.log" >&2; return 1; }
  grep -q "http listening" "$TMP/runneld.log" && grep -q "stopped cleanly" "$TMP/runneld.log"
}

start_broker --override message.max.bytes=65536 || { echo "1..0 # SKIP runneld did not start"; exit 1; }
BASE=http://127.0.0.1:$HTTP_PORT
t "health and readiness" test_health
t "metrics in Prometheus text" test_metrics
t "create topic: 201, 409, 400, 415, 422" test_create_topic
t "list and describe topics, 404" test_list_and_describe
t "partitions and offsets, 40402" test_partitions
t "produce json.v2 / binary.v2 / json, read back in both renderings" test_produce_formats
t "produce errors: 404, 422, 400, 415" test_produce_errors
t "round-robin and keyed partitioning" test_partitioning
t "binary keys use the native partitioner" test_native_partitioner
t "stateless fetch: 422s, long poll, max_bytes" test_records_endpoint
t "limits: 413 for bodies and headers" test_limits
t "routes: 404 and 405" test_routes
t "Origin allow-list and preflight" test_origin
t "keep-alive" test_keep_alive
t "REST and the native CLI share the log" test_rest_native_round_trip
t "REST Proxy v2 consumer instances" test_consumer_instances
t "delete topic" test_delete_topic
t "clean stop with open HTTP connections" test_clean_stop
finish
