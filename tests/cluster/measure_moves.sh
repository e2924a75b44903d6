#!/usr/bin/env bash
# measure_moves.sh — by hand, for the report (not in the suite): a replica
# move's catch-up with and without --throttle (issue 13 item 3), and the
# acks=all produce latency of another partition meanwhile.
#
#   tests/cluster/measure_moves.sh RUNNEL RUNNELD [MIB] [THROTTLE_MIB]
#
# Three voters. Topic big (RF=1, on broker A) is filled with MIB MiB of 1 KiB
# records (acks=1); topic lat (RF=2) is moved to A,B so its leader is the
# one sending the catch-up and its follower the one receiving it. Then:
#   0. baseline: `bench produce lat` acks=all at 200 records/s, no move;
#   1. `topic move big 0 A,B` (B catches up unthrottled) with the same bench
#      running until the move completes;
#   2. `topic move big 0 A,C --throttle THROTTLE_MIB MiB/s` (C catches up,
#      B leaves at the end), the same bench again.
# Catch-up rate = the partition's batch bytes / (move accepted → in sync on
# every broker), polled every 0.1 s.
set -u
RUNNEL=${1:?usage: measure_moves.sh RUNNEL RUNNELD [MIB] [THROTTLE_MIB]}
RUNNELD=${2:?usage: measure_moves.sh RUNNEL RUNNELD [MIB] [THROTTLE_MIB]}
MIB=${3:-200}
TMIB=${4:-20}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh" measure-moves

read -r PORT[1] PORT[2] PORT[3] HTTP[1] HTTP[2] HTTP[3] CTL[1] CTL[2] CTL[3] < <(free_ports 9)
ALL="127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}"
for i in 1 2 3; do start_node "$i"; done

row() { # row TOPIC [NODE]: "replicas isr leader adding" of partition 0
  rn "${2:-1}" topic describe "$1" 2>/dev/null | awk -F'\t' '
    { delete f; for (i = 1; i <= NF; i++) { split($i, kv, ": "); f[kv[1]] = kv[2] } }
    ("Replicas" in f) && f["Partition"] == 0 { print f["Replicas"], f["Isr"], f["Leader"], (f["AddingReplicas"] == "" ? "-" : f["AddingReplicas"]); exit }'
}
sorted() { echo "$1" | tr ',' '\n' | sort -n | paste -sd, -; }
settled() { # settled TOPIC LIST: replicas = ISR = LIST, no move, on every broker
  local i r s l a
  for i in 1 2 3; do
    read -r r s l a <<<"$(row "$1" "$i")"
    [ "$(sorted "$r")" = "$(sorted "$2")" ] && [ "$(sorted "$s")" = "$(sorted "$2")" ] &&
      [ "$a" = - ] || return 1
  done
}
has_leader() { local r s l a; read -r r s l a <<<"$(row "$1")"; [ -n "$l" ] && [ "$l" != -1 ]; }
bench_lat() { # bench_lat OUT: acks=all to lat at 200/s until SIGINT (or 300 s)
  "$RUNNEL" -b "$ALL" bench produce lat -p 0 --records 150000 --record-size 1024 --acks all \
    --throughput 200 --time-limit 300 --json >"$1" 2>>"$TMP/bench.err" &
  BENCH=$!
}
lat_figures() {
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); l = d["latency_ms"]
print("%d records, p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (d["records"], l["p50"], l["p99"], l["max"]))' "$1" 2>/dev/null ||
    echo "no figures ($(head -c 200 "$1"))"
}

wait_for 120 bash -c "timeout 10 '$RUNNEL' -b 127.0.0.1:${PORT[1]} topic create big -p 1 -r 1 >/dev/null 2>&1" ||
  { echo "topic big not created"; exit 1; }
wait_for 60 has_leader big || { echo "big has no leader"; exit 1; }
read -r A _ _ _ <<<"$(row big)"
read -r B C <<<"$(printf '1\n2\n3\n' | grep -vx "$A" | paste -sd' ' -)"
rn 1 topic create lat -p 1 -r 2 >/dev/null 2>&1
wait_for 60 has_leader lat
rn 1 topic move lat 0 "$A,$B" >/dev/null 2>&1
wait_for 60 settled lat "$A,$B" || { echo "lat not moved to $A,$B"; exit 1; }
echo "big on broker $A; lat on $A,$B (leader $(row lat | awk '{print $3}'))"

bench_lat "$TMP/lat0.json"
sleep 10
kill -INT "$BENCH"
wait "$BENCH"
echo "0. acks=all on lat, no move: $(lat_figures "$TMP/lat0.json")"

t0=$(now_ms)
timeout 900 "$RUNNEL" -b "127.0.0.1:${PORT[$A]}" bench produce big -p 0 --records $((MIB * 1024)) \
  --record-size 1024 --acks 1 --json >"$TMP/fill.json" 2>>"$TMP/bench.err"
BYTES=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from checker import read_batches
print(sum(len(b) for _, _, b in read_batches(sys.argv[2])))' "$HERE" "$TMP/n$A/big-0")
echo "big-0 filled: $BYTES bytes of batches in $(($(now_ms) - t0)) ms"

move() { # move LIST TAG NAME [ARGS…]
  local list=$1 tag=$2 name=$3 ms
  shift 3
  bench_lat "$TMP/lat-$tag.json"
  t0=$(now_ms)
  rn 1 topic move big 0 "$list" "$@" >/dev/null || { echo "$name: move refused"; return; }
  if wait_for 1800 settled big "$list"; then
    ms=$(($(now_ms) - t0))
    kill -INT "$BENCH"
    wait "$BENCH"
    awk -v b="$BYTES" -v ms="$ms" -v n="$name" 'BEGIN {
      printf "%s: %.1f MiB in sync after %.1f s: %.1f MiB/s\n", n, b / 1048576, ms / 1000, b / 1048576 / (ms / 1000) }'
    echo "   acks=all on lat meanwhile: $(lat_figures "$TMP/lat-$tag.json")"
  else
    kill -INT "$BENCH"
    wait "$BENCH"
    echo "$name: not in sync in 1800 s ($(row big))"
  fi
}
move "$A,$B" free "1. unthrottled"
move "$A,$C" throttled "2. --throttle ${TMIB} MiB/s" --throttle $((TMIB * 1048576))
grep -h "removed replica" "$TMP"/n*.log | sed 's/^/   /'
for i in 1 2 3; do stop_node "$i"; done
