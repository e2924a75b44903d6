#!/usr/bin/env bash
# delete_crash.sh — issue 11's scenario by hand: a 1,000-partition topic with
# 20,000 records, `topic delete`, kill -9 3 to 50 ms later, restart, create the
# name again; prints per try what came back. Not in `meson test` (minutes of
# work); tests/cli/test_topics.sh runs the small version.
#
#   tests/perf/delete_crash.sh RUNNEL RUNNELD [TRIES] [PARTITIONS] [RECORDS]
set -u
RUNNEL=${1:?usage: delete_crash.sh RUNNEL RUNNELD [TRIES] [PARTITIONS] [RECORDS]}
RUNNELD=${2:?}
TRIES=${3:-10}
PARTS=${4:-1000}
RECORDS=${5:-20000}
TMP=$(mktemp -d /tmp/rn-delcrash-XXXXXX)
DATA=$TMP/data
PID=
trap '[ -n "$PID" ] && kill -KILL $PID 2>/dev/null; rm -rf "$TMP"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {
  PORT=$(free_port)
  "$RUNNELD" --data-dir "$DATA" --listen 127.0.0.1:$PORT --http 127.0.0.1:$(free_port) 2>>"$TMP/log" &
  PID=$!
  export RUNNEL_BROKERS=127.0.0.1:$PORT
  for i in $(seq 1 400); do
    timeout 5 "$RUNNEL" topic list >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "runneld did not start" >&2; exit 1
}
for try in $(seq 1 "$TRIES"); do
  rm -rf "$DATA"; : >"$TMP/log"
  start
  timeout 60 "$RUNNEL" topic create big -p "$PARTS" >/dev/null || exit 1
  seq 1 "$RECORDS" | sed 's/^/k&:v/' | timeout 120 "$RUNNEL" produce big -K : >/dev/null || exit 1
  delay_ms=$((3 + (try - 1) * 47 / (TRIES > 1 ? TRIES - 1 : 1)))
  timeout 60 "$RUNNEL" topic delete big >/dev/null 2>&1 &
  cli=$!
  sleep "$(printf '0.%03d' "$delay_ms")"
  kill -KILL $PID; wait $PID 2>/dev/null; PID=
  wait $cli 2>/dev/null
  before_dirs=$(ls "$DATA" | grep -c '^big-[0-9]*$')
  before_del=$(ls "$DATA" | grep -c '\.deleted-')
  start
  # What start-up left, before anything else runs.
  after_del=$(ls "$DATA" | grep -c '\.deleted-')
  after_dirs=$(ls "$DATA" | grep -c '^big-[0-9]*$')
  live=$(timeout 10 "$RUNNEL" topic describe big >/dev/null 2>&1 && echo yes || echo no)
  # Not committed: the topic is still there; delete it for good.
  [ "$live" = yes ] && timeout 60 "$RUNNEL" topic delete big >/dev/null
  sweep=$(grep -o 'leftover partition directories removed.*removed=[0-9]*' "$TMP/log" | grep -o 'removed=[0-9]*' | head -1)
  timeout 60 "$RUNNEL" topic create big -p "$PARTS" >/dev/null || exit 1
  back=$(timeout 120 "$RUNNEL" consume big -o beginning -e -f '%s\n' | wc -l)
  echo "try $try: kill -9 ${delay_ms} ms after delete; at kill: big-N dirs=$before_dirs *.deleted-*=$before_del; delete committed=$([ "$live" = no ] && echo yes || echo no); after restart: big-N dirs=$after_dirs *.deleted-*=$after_del sweep=${sweep:-none}; re-created topic serves $back records"
  kill -TERM $PID; wait $PID 2>/dev/null; PID=
done
