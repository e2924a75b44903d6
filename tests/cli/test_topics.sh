#!/usr/bin/env bash
# test_topics.sh — topic life cycle against real processes: a delete cut
# short by kill -9 never gives its data to a topic created again under the
# same name; leftovers are removed at start; creates that cannot open every
# partition fail whole; adding partitions; describe shows overrides.
#
#   tests/cli/test_topics.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# Each test starts its own runneld on free 127.0.0.1 ports with data under a
# mktemp directory (removed at the end) and stops it by its pid. Every runnel
# call runs under `timeout`.
RUNNEL=${1:?usage: test_topics.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_topics.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" topics

# fresh: no broker, an empty data directory and log.
fresh() {
  kill9_broker
  rm -rf "$DATA"
  : >"$LOG"
}

# produce_keyed TOPIC COUNT: COUNT keyed records, spread over the partitions.
produce_keyed() {
  seq 1 "$2" | sed 's/^/k&:v/' | r produce "$1" -K : >/dev/null
}

# count TOPIC: records a consumer from the beginning sees.
count() {
  r consume "$1" -o beginning -e -f '%s\n' | wc -l
}

# leftovers: directories in the data directory that are no live partition's.
no_leftovers() {
  local left
  left=$(ls "$DATA" | grep -c -- '\.deleted-')
  [ "$left" = 0 ] || { echo "$left *.deleted-* directories left:" >&2; ls "$DATA" | grep -- '\.deleted-' | head -3 >&2; return 1; }
}

# wait_no_leftovers: as no_leftovers, allowing 10 s for removals in flight.
wait_no_leftovers() {
  local i
  for i in $(seq 1 100); do
    no_leftovers 2>/dev/null && return 0
    sleep 0.1
  done
  no_leftovers
}

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# The state a crash leaves when a delete is committed in the metadata log but
# its directories are not removed yet, made exactly: the directories are put
# back after a clean delete. At start they are removed (one log line with the
# count) and a topic created again under the name is empty.
test_committed_delete_leftovers() {
  fresh
  start_broker || return 1
  r topic create dc -p 20 >/dev/null || return 1
  produce_keyed dc 400 || return 1
  [ "$(count dc)" = 400 ] || { echo "produced records not all seen" >&2; return 1; }
  stop_broker || return 1
  cp -a "$DATA" "$TMP/saved"
  start_broker || return 1
  expect_status 0 r topic delete dc || return 1
  # The delete moves the directories aside at once and the offload worker
  # removes them a moment later; a stop before it is done leaves some for the
  # next start, which would add them to the count below.
  wait_no_leftovers || return 1
  stop_broker || return 1
  for d in "$TMP"/saved/dc-*; do cp -a "$d" "$DATA/"; done
  # Also one already moved aside, as a delete moves them before removing.
  cp -a "$TMP/saved/dc-0" "$DATA/dc-0.deleted-1-1"
  [ -d "$DATA/dc-3" ] || { echo "setup: dc-3 not restored" >&2; return 1; }
  # Offline, before any start: replay reads none of it.
  expect_status 1 r replay "$DATA" dc || return 1
  grep -q "no topic 'dc'" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 1 r replay "$DATA" dc-0.deleted-1 || return 1
  [ ! -s "$TMP/out" ] || { echo "replay printed records of a deleted directory" >&2; return 1; }
  start_broker || return 1
  grep -q 'leftover partition directories removed.*removed=21' "$LOG" ||
    { echo "no log line with removed=21" >&2; return 1; }
  [ ! -e "$DATA/dc-3" ] || { echo "dc-3 still there after start" >&2; return 1; }
  no_leftovers || return 1
  r topic create dc -p 20 >/dev/null || return 1
  local n
  n=$(count dc)
  [ "$n" = 0 ] || { echo "re-created topic serves $n deleted records" >&2; return 1; }
  # Every partition directory names the new topic's id.
  [ "$(ls "$DATA"/dc-*/partition.metadata | wc -l)" = 20 ] || { echo "partition.metadata missing" >&2; return 1; }
  stop_broker || return 1
}

# A directory under a live partition's name that belongs to another topic id
# (an old incarnation of the name) is discarded when the partition opens.
test_foreign_id_discarded() {
  fresh
  start_broker || return 1
  r topic create fi -p 2 >/dev/null || return 1
  produce_keyed fi 50 || return 1
  stop_broker || return 1
  cp -a "$DATA/fi-1" "$TMP/fi-1.old"
  start_broker || return 1
  r topic delete fi >/dev/null || return 1
  r topic create fi -p 2 >/dev/null || return 1
  stop_broker || return 1
  rm -rf "$DATA/fi-1"
  cp -a "$TMP/fi-1.old" "$DATA/fi-1"
  # Offline: replay skips the old id's directory, says so, prints nothing.
  expect_status 0 r replay "$DATA" fi || return 1
  [ ! -s "$TMP/out" ] || { echo "replay printed the old topic's records" >&2; return 1; }
  grep -q "fi-1: skipped" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  start_broker || return 1
  local n
  n=$(count fi)
  [ "$n" = 0 ] || { echo "topic serves $n records of the old topic id" >&2; return 1; }
  grep -q 'leftover partition directory discarded.*partition=fi-1' "$LOG" ||
    { echo "no discard logged" >&2; return 1; }
  rm -rf "$TMP/fi-1.old"
  stop_broker || return 1
}

# Real kill -9 a few ms after `topic delete` (several delays), restart,
# create the name again: whatever the crash cut, the new topic is empty and
# no leftover directory remains.
test_kill9_during_delete() {
  local delay n
  for delay in 0.002 0.005 0.01 0.03; do
    fresh
    start_broker || return 1
    r topic create kd -p 200 >/dev/null || return 1
    produce_keyed kd 2000 || return 1
    r topic delete kd >/dev/null 2>&1 &
    local cli=$!
    sleep "$delay"
    kill9_broker
    wait "$cli" 2>/dev/null
    start_broker || return 1
    # Start-up removed every leftover before listening.
    no_leftovers || return 1
    # The delete either committed (topic gone) or not (delete it again; the
    # other reactors remove their directories just after the answer).
    if r topic describe kd >/dev/null 2>&1; then
      r topic delete kd >/dev/null || return 1
      wait_no_leftovers || return 1
    fi
    r topic create kd -p 200 >/dev/null || return 1
    n=$(count kd)
    [ "$n" = 0 ] || { echo "delay $delay: re-created topic serves $n deleted records" >&2; return 1; }
    n=$(ls "$DATA" | grep -c '^kd-')
    [ "$n" = 200 ] || { echo "delay $delay: $n kd-* directories, want 200" >&2; return 1; }
    stop_broker || return 1
  done
}

# A data directory that is a regular file is named as such, not blamed on
# another broker.
test_data_dir_is_file() {
  fresh
  echo x >"$TMP/afile"
  timeout 20 "$RUNNELD" --data-dir "$TMP/afile" --listen 127.0.0.1:$(free_port) \
    --http 127.0.0.1:$(free_port) >"$TMP/out" 2>"$TMP/err"
  local st=$?
  [ "$st" = 1 ] || { echo "exit $st, wanted 1" >&2; return 1; }
  grep -q "data directory $TMP/afile is not a directory" "$TMP/err" ||
    { echo "message:" >&2; cat "$TMP/err" >&2; return 1; }
  ! grep -q "in use" "$TMP/err" || { echo "blamed on another runneld" >&2; return 1; }
}

# Caps per topic and per broker refuse a create before anything is made.
test_partition_caps() {
  fresh
  start_broker --override max.partitions.per.topic=50 --override max.partitions=80 || return 1
  expect_status 1 r topic create cap1 -p 51 || return 1
  grep -q "max.partitions.per.topic (50)" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 0 r topic create cap2 -p 50 || return 1
  expect_status 1 r topic create cap3 -p 40 || return 1
  grep -q "more than max.partitions (80)" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  [ -z "$(ls "$DATA" | grep -E '^cap[13]-')" ] || { echo "refused create left directories" >&2; return 1; }
  r topic list | grep -qx cap3 && { echo "cap3 listed" >&2; return 1; }
  stop_broker || return 1
}

# fds PID: open descriptors of a process.
fds() { ls "/proc/$1/fd" | wc -l; }

# Under a low RLIMIT_NOFILE: start reports what the limits hold; a create
# beyond it is refused up front; a create that runs out of descriptors while
# opening (they went to connections) fails whole: exit 1, no topic, no
# directory, every descriptor given back.
test_create_fails_whole_on_emfile() {
  fresh
  local st
  RUNNELD_WRAP=(prlimit --nofile=256:256)
  start_broker --reactors 1
  st=$?
  RUNNELD_WRAP=()
  [ "$st" = 0 ] || return 1
  grep -q 'level=warn msg="max.partitions is more than the process limits hold".*partitions_fit=64 nofile=256' "$LOG" ||
    { echo "no limits line" >&2; grep limits "$LOG" >&2; return 1; }
  expect_status 1 r topic create em -p 100 || return 1
  grep -q "limits hold 64 (RLIMIT_NOFILE 256" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  local base
  base=$(fds "$BROKER_PID")
  # Idle connections take the descriptors the create will want.
  python3 -c '
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
open(sys.argv[3], "w").close()
time.sleep(60)
' "$PORT" 205 "$TMP/conns.ready" &
  local holder=$! i
  for i in $(seq 1 100); do [ -e "$TMP/conns.ready" ] && break; sleep 0.1; done
  [ -e "$TMP/conns.ready" ] || { kill "$holder"; echo "connections not made" >&2; return 1; }
  expect_status 1 r topic create em -p 60
  st=$?
  kill "$holder" 2>/dev/null
  wait "$holder" 2>/dev/null
  [ "$st" = 0 ] || return 1
  grep -q "topic em not created: partition [0-9]* of 60 failed to open: Too many open files" "$TMP/err" ||
    { cat "$TMP/err" >&2; return 1; }
  r topic list | grep -qx em && { echo "em listed after a failed create" >&2; return 1; }
  # The partitions it opened are deleted: moved aside at once, removed by the
  # offload worker soon after (as Kafka's asynchronous delete): give it 10 s.
  for i in $(seq 1 100); do [ -z "$(ls "$DATA" | grep '^em-')" ] && break; sleep 0.1; done
  [ -z "$(ls "$DATA" | grep '^em-')" ] ||
    { echo "failed create left directories:" >&2; ls "$DATA" | grep '^em-' | head -3 >&2; return 1; }
  local now
  for i in $(seq 1 50); do
    now=$(fds "$BROKER_PID")
    [ "$now" -le "$base" ] && break
    sleep 0.1
  done
  [ "$now" -le "$base" ] || { echo "descriptors held: $now, $base before" >&2; return 1; }
  # A create that fits works afterwards.
  expect_status 0 r topic create em -p 20 || return 1
  stop_broker || return 1
}

# topic alter -p adds partitions (never fewer); the new ones take records;
# a producer that was already running learns the count from metadata.
test_add_partitions() {
  fresh
  start_broker || return 1
  r topic create ap -p 3 >/dev/null || return 1
  expect_status 1 r topic alter ap -p 2 || return 1
  grep -q "can only grow" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 1 r topic alter ap -p 3 || return 1
  expect_status 1 r topic alter nosuch -p 4 || return 1
  # A producer started before the change, fed through a FIFO.
  mkfifo "$TMP/feed"
  timeout 60 "$RUNNEL" produce ap -K : -X metadata.max.age.ms=100 -X linger.ms=0 <"$TMP/feed" \
    >/dev/null 2>"$TMP/prod.err" &
  local prod=$!
  exec 7>"$TMP/feed"
  seq 1 30 | sed 's/^/a&:v/' >&7
  sleep 0.5
  expect_status 0 r topic alter ap -p 6 || { exec 7>&-; return 1; }
  grep -qx "Topic ap now has 6 partitions." "$TMP/out" || { exec 7>&-; cat "$TMP/out" >&2; return 1; }
  sleep 0.3
  # The producer looks metadata up again (metadata.max.age.ms) when it next
  # polls (runnel produce polls every 256 records); later records use the
  # new partitions.
  seq 1 300 | sed 's/^/b&:v/' >&7
  sleep 0.5
  seq 301 600 | sed 's/^/b&:v/' >&7
  exec 7>&-
  wait "$prod" || { echo "producer failed:" >&2; cat "$TMP/prod.err" >&2; return 1; }
  r topic describe ap >"$TMP/desc" || return 1
  grep -q "PartitionCount: 6" "$TMP/desc" || { cat "$TMP/desc" >&2; return 1; }
  [ "$(grep -c "Partition: [3-5]" "$TMP/desc")" = 3 ] || { cat "$TMP/desc" >&2; return 1; }
  local n
  n=$(r consume ap -o beginning -e -f '%p\n' | grep -c '^[3-5]$')
  [ "$n" -gt 0 ] || { echo "no record reached partitions 3-5" >&2; return 1; }
  [ "$(r consume ap -o beginning -e -f '%p\n' | wc -l)" = 630 ] || { echo "records lost" >&2; return 1; }
  # The new partitions survive a restart, with partition.metadata.
  stop_broker || return 1
  start_broker || return 1
  r topic describe ap | grep -q "PartitionCount: 6" || { echo "count lost on restart" >&2; return 1; }
  [ -e "$DATA/ap-5/partition.metadata" ] || { echo "ap-5 has no partition.metadata" >&2; return 1; }
  [ "$(r consume ap -o beginning -e -f '%p\n' | wc -l)" = 630 ] || { echo "records lost on restart" >&2; return 1; }
  # A group member running before the change is assigned the new
  # partitions (the coordinator sees the count change) and reads them.
  r topic create apg -p 2 >/dev/null || return 1
  timeout 60 "$RUNNEL" consume apg -G apg-group -c 4 -f '%p %s\n' >"$TMP/gout" 2>"$TMP/gerr" &
  local cons=$! i
  for i in $(seq 1 300); do grep -q "assigned" "$TMP/gerr" && break; sleep 0.1; done
  r topic alter apg -p 4 >/dev/null || return 1
  for i in $(seq 1 300); do grep -q "partitions 2,3\|0,1,2,3" "$TMP/gerr" && break; sleep 0.1; done
  for p in 0 1 2 3; do echo "v$p" | r produce apg -p "$p" || return 1; done
  wait "$cons" || { echo "group consumer failed:" >&2; cat "$TMP/gerr" >&2; return 1; }
  [ "$(sort "$TMP/gout" | tr '\n' ' ')" = "0 v0 1 v1 2 v2 3 v3 " ] || { cat "$TMP/gout" "$TMP/gerr" >&2; return 1; }
  # Past max.partitions.per.topic: refused.
  expect_status 1 r topic alter ap -p 20000 || return 1
  grep -q "max.partitions.per.topic" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  stop_broker || return 1
}

# describe shows the topic's overrides (kafka-topics' Configs); -a every
# setting; REST GET /topics/{t} has "overrides" beside the full "configs".
test_describe_overrides() {
  fresh
  start_broker || return 1
  r topic create plain -p 1 >/dev/null || return 1
  r topic create tuned -p 1 -c retention.ms=123456 >/dev/null || return 1
  local tab=$'\t'
  expect_status 0 r topic describe plain || return 1
  head -1 "$TMP/out" | grep -q "${tab}Configs: \$" || { echo "plain shows configs:" >&2; head -1 "$TMP/out" >&2; return 1; }
  expect_status 0 r topic describe tuned || return 1
  head -1 "$TMP/out" | grep -q "${tab}Configs: retention.ms=123456\$" || { head -1 "$TMP/out" >&2; return 1; }
  expect_status 0 r topic describe tuned -a || return 1
  head -1 "$TMP/out" | grep -q "Configs: .*retention.ms=123456.*segment.bytes=" || { head -1 "$TMP/out" >&2; return 1; }
  [ "$(head -1 "$TMP/out" | sed 's/.*Configs: //' | tr ',' '\n' | wc -l)" = 9 ] || { head -1 "$TMP/out" >&2; return 1; }
  expect_status 0 r topic alter tuned --delete-config retention.ms || return 1
  r topic describe tuned | head -1 | grep -q "${tab}Configs: \$" || { echo "override not gone" >&2; return 1; }
  expect_status 2 r topic list -a || return 1
  r topic alter tuned -c segment.ms=60000 >/dev/null || return 1
  python3 - "$HTTP_PORT" <<'PY' || return 1
import json, sys, urllib.request
base = "http://127.0.0.1:%s/topics/" % sys.argv[1]
plain = json.load(urllib.request.urlopen(base + "plain"))
tuned = json.load(urllib.request.urlopen(base + "tuned"))
assert plain["overrides"] == {}, plain["overrides"]
assert len(plain["configs"]) == 9, plain["configs"]
assert tuned["overrides"] == {"segment.ms": "60000"}, tuned["overrides"]
assert tuned["configs"]["segment.ms"] == "60000", tuned["configs"]
PY
  stop_broker || return 1
}

# ---------------------------------------------------------------------------

t "committed delete's directories: removed at start, name re-created empty" test_committed_delete_leftovers
t "directory of another topic id under a live name is discarded" test_foreign_id_discarded
t "kill -9 during topic delete, restart, re-create: empty, no leftovers" test_kill9_during_delete
t "data directory that is a file: clear error" test_data_dir_is_file
t "partition caps per topic and per broker" test_partition_caps
t "create that runs out of descriptors fails whole" test_create_fails_whole_on_emfile
t "topic alter -p adds partitions; a running producer uses them" test_add_partitions
t "describe shows overrides; -a all; REST overrides" test_describe_overrides
finish
