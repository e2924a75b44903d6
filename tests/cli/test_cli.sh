#!/usr/bin/env bash
# test_cli.sh — the runnel CLI end to end: real runneld, real runnel processes.
#
#   tests/cli/test_cli.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# One broker on a free 127.0.0.1 port with its data under a mktemp directory in
# /tmp (removed at the end, the broker stopped by its pid). Each test is a
# function that returns non-zero on failure and says why on stderr; the harness
# (tests/cli/lib.sh, with the broker's start and stop) turns that into TAP
# lines so meson counts every test. Every runnel call runs
# under `timeout`, so a hang fails the test instead of the suite.
RUNNEL=${1:?usage: test_cli.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_cli.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cli
RN_TIMEOUT=20

# same FILE_A FILE_B: byte-equal, else show the difference.
same() {
  if ! cmp -s "$1" "$2"; then
    echo "differs: $1 $2" >&2
    diff <(head -c 2000 "$1" | od -c | head -20) <(head -c 2000 "$2" | od -c | head -20) >&2
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# Bad command lines exit 2 with a hint, before any connection is tried.
test_usage_errors() {
  RUNNEL_BROKERS=127.0.0.1:1 expect_status 2 r || return 1
  expect_status 2 r frobnicate || return 1
  grep -q "unknown command" "$TMP/err" || { echo "no 'unknown command'" >&2; return 1; }
  expect_status 2 r consume || return 1
  expect_status 2 r consume t1 -o bogus || return 1
  expect_status 2 r consume t1 -o stored || return 1
  grep -q "group" "$TMP/err" || { echo "-o stored does not mention groups" >&2; return 1; }
  expect_status 2 r consume t1 --no-such-flag || return 1
  expect_status 2 r consume t1 -J -f '%s' || return 1
  expect_status 2 r consume t1 -f '%q' || return 1
  expect_status 2 r produce || return 1
  expect_status 2 r produce t1 --acks 7 || return 1
  expect_status 2 r produce t1 -z brotli || return 1
  expect_status 2 r produce t1 -p || return 1
  grep -q "needs a value" "$TMP/err" || { echo "no 'needs a value'" >&2; return 1; }
  expect_status 2 r topic || return 1
  expect_status 2 r topic frob x || return 1
  expect_status 2 r topic create || return 1
  expect_status 2 r topic alter t1 || return 1
  expect_status 2 r -X no.such.key=1 topic list || return 1
  expect_status 2 r topic list -b nonsense || return 1
  expect_status 2 r replay "$DATA" || return 1
  expect_status 2 r replay "$DATA" t1 --format xml || return 1
  expect_status 2 r bench produce || return 1
  expect_status 2 r bench consume t1 --acks 1 || return 1
  grep -q "Try 'runnel" "$TMP/err" || { echo "no --help hint" >&2; return 1; }
}

# --help works on every command, exits 0, prints examples on stdout.
test_help() {
  local cmd
  for cmd in "" topic produce consume group replay bench; do
    expect_status 0 r $cmd --help || return 1
    grep -q "^examples:" "$TMP/out" || { echo "runnel $cmd --help: no examples" >&2; return 1; }
  done
  expect_status 0 r help consume || return 1
  grep -q "forever" "$TMP/out" || { echo "consume --help does not say it waits forever" >&2; return 1; }
}

# No broker at the address: exit 1, one line naming it, well within the timeout.
test_unreachable_broker() {
  local dead t0 t1
  dead=$(free_port)
  t0=$(date +%s%N)
  expect_status 1 r -b "127.0.0.1:$dead" topic list || return 1
  t1=$(date +%s%N)
  [ $(((t1 - t0) / 1000000)) -lt 3000 ] || { echo "took $(((t1 - t0) / 1000000)) ms" >&2; return 1; }
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || { echo "not one line:" >&2; cat "$TMP/err" >&2; return 1; }
  grep -q "127.0.0.1:$dead" "$TMP/err" || { echo "address not named" >&2; return 1; }
  RUNNEL_BROKERS=127.0.0.1:$dead expect_status 1 r consume t1 -e || return 1
  grep -q "cannot reach" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  echo x | RUNNEL_BROKERS=127.0.0.1:$dead expect_status 1 r produce t1 || return 1
  [ ! -s "$TMP/out" ] || { echo "stdout not empty" >&2; return 1; }
}

# create / list / describe (kafka-topics lines) / alter / delete.
test_topic_admin() {
  expect_status 0 r topic create adm -p 3 -c retention.ms=1000000 || return 1
  grep -qx "Created topic adm." "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  expect_status 1 r topic create adm || return 1
  grep -q "exists" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 0 r topic create adm --if-not-exists || return 1
  expect_status 0 r topic list || return 1
  grep -qx adm "$TMP/out" || { echo "adm not listed" >&2; return 1; }
  expect_status 0 r topic describe adm || return 1
  local tab=$'\t'
  grep -q "^Topic: adm${tab}PartitionCount: 3${tab}ReplicationFactor: 1${tab}Configs: .*retention.ms=1000000" \
    "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  [ "$(grep -c "^${tab}Topic: adm${tab}Partition: [0-2]${tab}Leader: 1${tab}LeaderEpoch: 0${tab}Replicas: 1${tab}Isr: 1${tab}LogStartOffset: 0${tab}HighWatermark: 0${tab}LogEndOffset: 0\$" "$TMP/out")" = 3 ] ||
    { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r topic alter adm -c retention.ms=2000 || return 1
  r topic describe adm | head -1 | grep -q "retention.ms=2000" || { echo "alter not seen" >&2; return 1; }
  expect_status 0 r topic alter adm --delete-config retention.ms || return 1
  ! r topic describe adm | head -1 | grep -q "retention.ms=2000" || { echo "delete-config not seen" >&2; return 1; }
  expect_status 0 r topic delete adm || return 1
  ! r topic list | grep -qx adm || { echo "adm still listed" >&2; return 1; }
  expect_status 1 r topic delete adm || return 1
  expect_status 0 r topic delete adm --if-exists || return 1
  expect_status 1 r topic describe adm || return 1
}

# Keys (-K), headers (-H), null and empty keys through kcat's format tokens.
test_keys_and_headers() {
  r topic create kh -p 1 >/dev/null || return 1
  printf 'alice:one\nbob:two:2\n:empty-key\nnokey\n' |
    expect_status 0 r produce kh -K : -H src=cli -H trace=a,b -H flag || return 1
  expect_status 0 r consume kh -e -f '%t %p %o %k|%s|%h|%K|%S\n' || return 1
  cat >"$TMP/want" <<'EOF'
kh 0 0 alice|one|src=cli,trace=a,b,flag|5|3
kh 0 1 bob|two:2|src=cli,trace=a,b,flag|3|5
kh 0 2 |empty-key|src=cli,trace=a,b,flag|0|9
kh 0 3 |nokey|src=cli,trace=a,b,flag|-1|5
EOF
  same "$TMP/out" "$TMP/want" || return 1
  # -k: one key for all; -K on consume prints it kcat's way.
  printf 'v1\nv2\n' | expect_status 0 r produce kh -k fixed || return 1
  expect_status 0 r consume kh -o 4 -e -K = || return 1
  printf 'fixed=v1\nfixed=v2\n' >"$TMP/want"
  same "$TMP/out" "$TMP/want"
}

# UTF-8 values come back byte for byte, as text and as JSON strings.
test_utf8_exact() {
  r topic create u8 -p 1 >/dev/null || return 1
  printf 'h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89\ttab "q" \\ \n' >"$TMP/u8"
  expect_status 0 r produce u8 -f "$TMP/u8" || return 1
  expect_status 0 r consume u8 -e || return 1
  same "$TMP/out" "$TMP/u8" || return 1
  r consume u8 -e -J | python3 -c '
import json, sys
want = open(sys.argv[1], "rb").read().rstrip(b"\n").decode("utf-8")
m = json.loads(sys.stdin.readline())
assert m["payload"] == want, (m["payload"], want)
assert "payload_encoding" not in m
' "$TMP/u8"
}

# Binary values (NUL, newlines, invalid UTF-8) are byte-exact: --raw in,
# -D '' out, with and without zstd; -J marks them base64.
test_binary_exact() {
  r topic create bin -p 1 >/dev/null || return 1
  head -c 100000 /dev/urandom >"$TMP/bin"
  printf '\0\n\n\377' >>"$TMP/bin"
  expect_status 0 r produce bin --raw -f "$TMP/bin" || return 1
  expect_status 0 r produce bin -D '' -z zstd <"$TMP/bin" || return 1
  expect_status 0 r consume bin -e -c 1 -D '' || return 1
  same "$TMP/out" "$TMP/bin" || return 1
  expect_status 0 r consume bin -o 1 -e -D '' || return 1
  same "$TMP/out" "$TMP/bin" || return 1
  r consume bin -e -J | python3 -c '
import base64, json, sys
want = open(sys.argv[1], "rb").read()
n = 0
for line in sys.stdin:
    m = json.loads(line)
    assert m["payload_encoding"] == "base64"
    assert base64.b64decode(m["payload"]) == want
    n += 1
assert n == 2, n
' "$TMP/bin"
}

# Every codec Kafka's clients use: `produce -z gzip|snappy|lz4|zstd` stores
# batches of that codec (the segment's batches hold less than half of the
# 650 KB of values), and consume and replay read them back byte-exact.
test_codecs_round_trip() {
  local z
  seq 1 12000 | sed 's/.*/record &: the quick brown fox jumps over the lazy dog/' >"$TMP/lines"
  for z in gzip snappy lz4 zstd; do
    r topic create "z-$z" -p 1 >/dev/null || return 1
    expect_status 0 r produce "z-$z" -z "$z" -f "$TMP/lines" || return 1
    expect_status 0 r consume "z-$z" -e || return 1
    same "$TMP/out" "$TMP/lines" || { echo "-z $z: consume differs" >&2; return 1; }
    expect_status 0 r replay "$DATA" "z-$z" --format raw || return 1
    same "$TMP/out" "$TMP/lines" || { echo "-z $z: replay differs" >&2; return 1; }
    # The segment's batches carry the codec and hold less than the values.
    python3 - "$z" "$DATA"/z-"$z"-0/*.log <<'PY' || return 1
import struct, sys
codec = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[sys.argv[1]]
data = open(sys.argv[2], "rb").read()
pos = stored = batches = 0
while pos + 61 <= len(data) and data[pos + 16] == 2:
    length = struct.unpack_from(">i", data, pos + 8)[0]
    if length <= 0:
        break
    assert struct.unpack_from(">h", data, pos + 21)[0] & 7 == codec, (sys.argv[1], pos)
    stored += 12 + length
    batches += 1
    pos += 12 + length
assert batches > 0 and stored < 300000, (sys.argv[1], batches, stored)
PY
  done
}

# The same key always lands in the same partition, in order, across producer
# processes; keys spread over partitions.
test_key_partition_order() {
  r topic create kp -p 4 >/dev/null || return 1
  local i
  for i in $(seq 0 299); do echo "k$((i % 10)):$i"; done | expect_status 0 r produce kp -K : || return 1
  for i in $(seq 300 399); do echo "k$((i % 10)):$i"; done | expect_status 0 r produce kp -K : || return 1
  r consume kp -e -J >"$TMP/kp.json" || return 1
  python3 - "$TMP/kp.json" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 400, len(recs)
part, last = {}, {}
for m in sorted(recs, key=lambda m: (m["partition"], m["offset"])):
    k, v = m["key"], int(m["payload"])
    assert part.setdefault(k, m["partition"]) == m["partition"], ("key moved", k)
    assert v > last.get(k, -1), ("order", k, v)
    last[k] = v
assert len(set(part.values())) >= 2, part
EOF
}

# -o N, -o -N (clamped), -o end, -c without -e.
test_offsets() {
  r topic create off -p 1 >/dev/null || return 1
  seq 1 10 | expect_status 0 r produce off || return 1
  expect_status 0 r consume off -o -3 -e || return 1
  [ "$(tr '\n' ' ' <"$TMP/out")" = "8 9 10 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume off -o 5 -e || return 1
  [ "$(tr '\n' ' ' <"$TMP/out")" = "6 7 8 9 10 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume off -o -100 -e || return 1
  [ "$(wc -l <"$TMP/out")" -eq 10 ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume off -o end -e || return 1
  [ ! -s "$TMP/out" ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume off -c 2 || return 1
  [ "$(tr '\n' ' ' <"$TMP/out")" = "1 2 " ] || { cat "$TMP/out" >&2; return 1; }
}

# s@MS starts at the first record that recent, e@MS stops before the first one
# that recent; producer timestamps default to now.
test_time_offsets() {
  r topic create tm -p 2 >/dev/null || return 1
  printf 'a1\na2\na3\n' | r produce tm --timestamp 1000 || return 1
  printf 'b1\nb2\nb3\n' | r produce tm --timestamp 2000 || return 1
  printf 'c1\nc2\nc3\n' | r produce tm --timestamp 3000 || return 1
  expect_status 0 r consume tm -o s@2000 -e || return 1
  [ "$(sort "$TMP/out" | tr '\n' ' ')" = "b1 b2 b3 c1 c2 c3 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume tm -o s@1500 -o e@2500 -e || return 1
  [ "$(sort "$TMP/out" | tr '\n' ' ')" = "b1 b2 b3 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume tm -o e@1001 -e || return 1
  [ "$(sort "$TMP/out" | tr '\n' ' ')" = "a1 a2 a3 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume tm -o s@9999999999999 -e || return 1
  [ ! -s "$TMP/out" ] || { cat "$TMP/out" >&2; return 1; }
  # Without -e a window ends by itself: at the first record past it, or, for
  # a partition with none (the window reaches the end of the log and lies in
  # the past), at the end of the log. Once, it waited for ever.
  expect_status 0 r consume tm -o s@1500 -o e@2500 || return 1
  [ "$(sort "$TMP/out" | tr '\n' ' ')" = "b1 b2 b3 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume tm -o s@1500 -o e@5000 || return 1
  [ "$(sort "$TMP/out" | tr '\n' ' ')" = "b1 b2 b3 c1 c2 c3 " ] || { cat "$TMP/out" >&2; return 1; }
  r consume tm -p 1 -e -f '%p %s\n' >"$TMP/p1" || return 1
  expect_status 0 r consume tm -p 1 -o e@5000 -f '%p %s\n' || return 1
  same "$TMP/p1" "$TMP/out" || return 1
  # A window that ends a moment from now: records of the window, then exit.
  expect_status 0 r consume tm -o "e@$(($(date +%s%3N) + 500))" || return 1
  [ "$(wc -l <"$TMP/out")" -eq 9 ] || { cat "$TMP/out" >&2; return 1; }
  local t0 t1
  t0=$(date +%s%3N)
  echo now | r produce tm -p 0 || return 1
  t1=$(date +%s%3N)
  r consume tm -p 0 -o -1 -e -f '%T' >"$TMP/ts" || return 1
  local ts
  ts=$(cat "$TMP/ts")
  [ "$ts" -ge "$t0" ] && [ "$ts" -le "$t1" ] || { echo "ts $ts not in [$t0, $t1]" >&2; return 1; }
  expect_status 0 r consume tm -o "s@$t0" -e || return 1
  [ "$(cat "$TMP/out")" = now ] || { cat "$TMP/out" >&2; return 1; }
}

# -e exits at the end (empty topic: at once); without it consume waits and
# sees a record produced later.
test_exit_at_end_and_tail() {
  r topic create tail -p 2 >/dev/null || return 1
  local t0 t1
  t0=$(date +%s%N)
  expect_status 0 r consume tail -e || return 1
  t1=$(date +%s%N)
  [ ! -s "$TMP/out" ] || { cat "$TMP/out" >&2; return 1; }
  [ $(((t1 - t0) / 1000000)) -lt 5000 ] || { echo "-e took $(((t1 - t0) / 1000000)) ms" >&2; return 1; }
  r consume tail -c 1 >"$TMP/tail" &
  local pid=$!
  sleep 0.5
  kill -0 "$pid" 2>/dev/null || { echo "consume without -e exited early" >&2; return 1; }
  echo later | r produce tail || return 1
  wait "$pid" || { echo "tail consume failed" >&2; return 1; }
  [ "$(cat "$TMP/tail")" = later ] || { cat "$TMP/tail" >&2; return 1; }
}

# -J: one valid JSON object per line with kcat's fields; null key is null.
test_json_output() {
  expect_status 0 r consume kh -e -J || return 1
  python3 - "$TMP/out" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 6, lines
ms = [json.loads(l) for l in lines]
for i, m in enumerate(ms):
    assert list(m)[:7] == ["topic", "partition", "offset", "ts", "headers", "key", "payload"], list(m)
    assert m["topic"] == "kh" and m["partition"] == 0 and m["offset"] == i
    assert isinstance(m["ts"], int) and m["ts"] > 0
assert ms[0]["key"] == "alice" and ms[0]["payload"] == "one"
assert ms[0]["headers"] == ["src", "cli", "trace", "a,b", "flag", None], ms[0]["headers"]
assert ms[2]["key"] == "" and ms[3]["key"] is None
EOF
}

# replay reads the segment files (broker running) and prints what consume -J
# prints; --from/--to, csv and raw.
test_replay_matches_consume() {
  local topic
  for topic in kp kh bin tm; do
    r consume "$topic" -e -J | python3 -c '
import json, sys
lines = sys.stdin.read().splitlines()
lines.sort(key=lambda l: (json.loads(l)["partition"], json.loads(l)["offset"]))
sys.stdout.write("".join(l + "\n" for l in lines))' >"$TMP/c.json" || return 1
    expect_status 0 r replay "$DATA" "$topic" || return 1
    same "$TMP/out" "$TMP/c.json" || { echo "topic $topic" >&2; return 1; }
  done
  expect_status 0 r replay "$DATA" kh --from 1 --to 3 || return 1
  [ "$(python3 -c 'import json,sys; print([json.loads(l)["offset"] for l in open(sys.argv[1])])' "$TMP/out")" = "[1, 2]" ] ||
    { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r replay "$DATA" tm --from @2000 --to @3000 --format raw || return 1
  [ "$(sort "$TMP/out" | tr '\n' ' ')" = "b1 b2 b3 " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r replay "$DATA" bin -p 0 --from 1 --format raw -D '' || return 1
  same "$TMP/out" "$TMP/bin" || return 1
  expect_status 0 r replay "$DATA" kh --format csv || return 1
  python3 - "$TMP/out" <<'EOF' || return 1
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert rows[0] == ["topic", "partition", "offset", "timestamp", "key", "value", "headers", "encoding"], rows[0]
assert rows[1][:6] == ["kh", "0", "0", rows[1][3], "alice", "one"], rows[1]
assert rows[2][5] == "two:2" and rows[1][7] == "utf8"
assert len(rows) == 7, len(rows)
EOF
  [ "$(sed -n 4p "$TMP/out" | cut -d, -f5)" = '""' ] || { echo "empty key not \"\"" >&2; return 1; }
  [ "$(sed -n 5p "$TMP/out" | cut -d, -f5)" = '' ] || { echo "null key not empty" >&2; return 1; }
}

# A log runneld wrote across many segment files (segment.bytes=4096), some
# of them batches of several records: replay prints exactly what consume -J
# prints, through storage/log_dir.h's listing and read-only walk.
test_replay_many_segments() {
  expect_status 0 r topic create segs -p 2 -c segment.bytes=4096 -c max.message.bytes=2048 || return 1
  for i in $(seq 0 599); do echo "k$((i % 7)):value-$i-$(printf '%040d' "$i")"; done |
    expect_status 0 r produce segs -K : || return 1
  local n
  n=$(ls "$DATA"/segs-0/*.log "$DATA"/segs-1/*.log | wc -l)
  [ "$n" -ge 8 ] || { echo "only $n segment files" >&2; return 1; }
  r consume segs -e -J | python3 -c '
import json, sys
lines = sys.stdin.read().splitlines()
lines.sort(key=lambda l: (json.loads(l)["partition"], json.loads(l)["offset"]))
sys.stdout.write("".join(l + "\n" for l in lines))' >"$TMP/c.json" || return 1
  [ "$(wc -l <"$TMP/c.json")" -eq 600 ] || { echo "consume printed $(wc -l <"$TMP/c.json")" >&2; return 1; }
  expect_status 0 r replay "$DATA" segs || return 1
  same "$TMP/out" "$TMP/c.json" || return 1
  expect_status 0 r replay "$DATA" segs -p 1 --from 10 --to 60 --format raw || return 1
  python3 - "$TMP/c.json" "$TMP/out" <<'EOF'
import json, sys
want = [m["payload"] for m in map(json.loads, open(sys.argv[1]))
        if m["partition"] == 1 and 10 <= m["offset"] < 60]
got = open(sys.argv[2]).read().splitlines()
assert want and got == want, (len(got), len(want))
EOF
}

# Unknown topics and partitions are one clear line and exit 1.
test_unknown_topic() {
  echo x | expect_status 1 r produce nosuch || return 1
  grep -q "does not exist" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 1 r consume nosuch -e || return 1
  grep -q "does not exist" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 1 r consume off -p 7 -e || return 1
  expect_status 1 r replay "$DATA" nosuch || return 1
  expect_status 1 r replay "$TMP/no-such-dir" off || return 1
  echo x | expect_status 1 r produce off -p 5 || return 1
}

# The README's REST claim: a json.v2 key is stored as JSON text ("carol",
# quotes included, as Confluent's REST Proxy does), a binary.v2 key as its
# bytes, so a binary.v2 key lands in the same partition as `produce -k`.
test_rest_keys() {
  r topic create rk -p 8 >/dev/null || return 1
  local url="http://127.0.0.1:$HTTP_PORT/topics/rk" k v p_rest p_cli
  k=$(printf carol | base64)
  v=$(printf '{"item":"pie","qty":1}' | base64 -w0)
  curl -s --max-time 10 -X POST "$url" -H 'Content-Type: application/vnd.kafka.binary.v2+json' \
    -d "{\"records\":[{\"key\":\"$k\",\"value\":\"$v\"}]}" >"$TMP/rest" || return 1
  p_rest=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["offsets"][0]["partition"])' <"$TMP/rest") ||
    { cat "$TMP/rest" >&2; return 1; }
  echo cli | r produce rk -k carol || return 1
  curl -s --max-time 10 -X POST "$url" -H 'Content-Type: application/vnd.kafka.json.v2+json' \
    -d '{"records":[{"key":"carol","value":{"item":"pie","qty":1}}]}' >"$TMP/rest" || return 1
  expect_status 0 r consume rk -e -f '%p %K %k => %s\n' || return 1
  p_cli=$(awk '$4 == "=>" && $5 == "cli" { print $1 }' "$TMP/out")
  [ -n "$p_cli" ] && [ "$p_rest" = "$p_cli" ] ||
    { echo "binary.v2 key in partition $p_rest, -k key in '$p_cli'" >&2; cat "$TMP/out" >&2; return 1; }
  grep -qx "$p_rest 5 carol => {\"item\":\"pie\",\"qty\":1}" "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  grep -q "^[0-7] 7 \"carol\" => {\"item\":\"pie\",\"qty\":1}\$" "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
}

# err_is WANT: stderr is exactly the one line WANT.
err_is() {
  [ "$(cat "$TMP/err")" = "$1" ] || { printf 'stderr:\n%s\nwanted:\n%s\n' "$(cat "$TMP/err")" "$1" >&2; return 1; }
}

# Failures are one sentence that names its subject once (it once read "topic
# create: creating topic orders: create topic orders: topic already exists:
# topic orders already exists").
test_error_sentences() {
  r topic create errs -p 2 >/dev/null || return 1
  expect_status 1 r topic create errs || return 1
  err_is "runnel: topic errs already exists" || return 1
  expect_status 1 r topic describe nosuch || return 1
  err_is "runnel: topic nosuch does not exist" || return 1
  expect_status 1 r topic delete nosuch || return 1
  err_is "runnel: topic nosuch does not exist" || return 1
  expect_status 1 r topic alter nosuch -c retention.ms=5 || return 1
  err_is "runnel: topic nosuch does not exist" || return 1
  expect_status 1 r topic create 'bad name!' || return 1
  err_is 'runnel: topic name "bad name!": must be 1 to 249 characters of [a-zA-Z0-9._-], not "." or ".."' || return 1
  echo x | expect_status 1 r produce nosuch || return 1
  err_is "runnel: topic nosuch does not exist (create it: runnel topic create nosuch)" || return 1
  echo x | expect_status 1 r produce errs -p 5 || return 1
  err_is "runnel: produce: record 1: topic errs has 2 partitions, no partition 5" || return 1
  expect_status 1 r consume nosuch -e || return 1
  err_is "runnel: topic nosuch does not exist" || return 1
  expect_status 1 r group describe nosuch || return 1
  err_is "runnel: group nosuch does not exist (it has no member and nothing committed)" || return 1
  expect_status 1 r consume errs -p 0 -o 5 -e || return 1
  err_is "runnel: consume: errs-0: offset 5 is out of range: the log is empty, its next offset is 0 (seek to a valid offset)" || return 1
  expect_status 2 r consume errs -e -X session.timeout.ms=1 || return 1
  err_is "runnel: consume: -X: session.timeout.ms: 1 is out of range [100, 1800000]" || return 1
  local dead
  dead=$(free_port)
  expect_status 1 r -b "127.0.0.1:$dead" topic list || return 1
  err_is "runnel: topic list: cannot reach a broker at 127.0.0.1:$dead: Connection refused (set -b HOST:PORT or RUNNEL_BROKERS)" || return 1
}

# --acks 0 and 1, -p N: records land where asked.
test_acks_and_partition() {
  r topic create ap -p 3 >/dev/null || return 1
  echo zero | expect_status 0 r produce ap -p 2 --acks 0 || return 1
  echo one | expect_status 0 r produce ap -p 2 --acks 1 || return 1
  echo all | expect_status 0 r produce ap -p 2 --acks all || return 1
  expect_status 0 r consume ap -p 2 -e -c 3 -f '%p %s\n' || return 1
  [ "$(tr '\n' ' ' <"$TMP/out")" = "2 zero 2 one 2 all " ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume ap -p 0 -p 1 -e || return 1
  [ ! -s "$TMP/out" ] || { cat "$TMP/out" >&2; return 1; }
}

# bench prints Kafka's line, or one JSON object with --json; bounded runs.
test_bench() {
  r topic create bench -p 2 >/dev/null || return 1
  expect_status 0 r bench produce bench --records 2000 --record-size 64 || return 1
  grep -Eq '^2000 records sent, [0-9.]+ records/sec \([0-9.]+ MB/sec\), [0-9.]+ ms avg latency, [0-9.]+ ms max latency, [0-9.]+ ms 50th, [0-9.]+ ms 95th, [0-9.]+ ms 99th, [0-9.]+ ms 99.9th\.$' \
    "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r bench produce bench --records 1000 --producers 2 --acks 1 --json || return 1
  python3 - "$TMP/out" <<'EOF' || return 1
import json, sys
m = json.loads(open(sys.argv[1]).read())
assert m["records"] == 1000, m
assert m["records_per_sec"] > 0 and m["mb_per_sec"] >= 0
l = m["latency_ms"]
assert set(l) == {"avg", "p50", "p95", "p99", "p999", "max"}, l
assert 0 <= l["p50"] <= l["p95"] <= l["p99"] <= l["p999"] <= l["max"], l
assert m["windows_records_per_sec"] == [], m  # no full 5 s window in so short a run
EOF
  # A run longer than a window keeps each full window's rate in the JSON (how
  # tests/perf/run tells a peak that lasts from a burst).
  expect_status 0 r bench produce bench --records 6600 --throughput 1000 --acks 1 --json || return 1
  python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["windows_records_per_sec"]; assert len(w) == 1 and 500 < w[0] < 1500, w' "$TMP/out" || return 1
  # --throughput is open loop and says so, in the text and in the JSON.
  expect_status 0 r bench produce bench --records 500 --throughput 5000 --acks 1 || return 1
  grep -q "^Latency: open loop, measured from each record's scheduled send time at 5000 records/sec: " \
    "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  grep -Eq '^500 records sent, ' "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r bench produce bench --records 500 --throughput 5000 --acks 1 --json || return 1
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["latency_from"] == "open loop, measured from each record'"'"'s scheduled send time" and m["throughput_target"] == 5000, m' "$TMP/out" || return 1
  expect_status 0 r bench produce --help || return 1
  tr '\n' ' ' < "$TMP/out" | grep -q "open *loop, measured from each record's scheduled send time" || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r bench consume bench --json || return 1
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["records"] == 10600, m' "$TMP/out" || return 1
  expect_status 0 r bench consume bench --records 500 || return 1
  grep -Eq '^500 records received, ' "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
}

# ---------------------------------------------------------------------------

start_broker || { echo "1..0 # SKIP runneld did not start"; exit 1; }
t "usage errors exit 2" test_usage_errors
t "--help everywhere" test_help
t "unreachable broker: exit 1, one line, quickly" test_unreachable_broker
t "topic create/list/describe/alter/delete" test_topic_admin
t "keys and headers round trip" test_keys_and_headers
t "UTF-8 values byte-exact" test_utf8_exact
t "binary values byte-exact (raw, zstd)" test_binary_exact
t "produce -z gzip|snappy|lz4|zstd, consume byte-exact" test_codecs_round_trip
t "same key same partition, per-key order" test_key_partition_order
t "offsets -o N, -N, end; -c" test_offsets
t "time offsets s@MS, e@MS; default timestamps" test_time_offsets
t "-e exits at the end; tail waits" test_exit_at_end_and_tail
t "-J output is JSON" test_json_output
t "replay equals consume; ranges; csv; raw" test_replay_matches_consume
t "replay equals consume across many segments" test_replay_many_segments
t "unknown topic or partition exits 1" test_unknown_topic
t "errors are one sentence, subject named once" test_error_sentences
t "REST binary.v2 key = CLI -k key; json.v2 key is JSON text" test_rest_keys
t "acks 0/1/all and -p" test_acks_and_partition
t "bench produce and consume" test_bench
finish
