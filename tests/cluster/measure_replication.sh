#!/usr/bin/env bash
# measure_replication.sh — by hand, for the report (not in the suite):
#  1. failover: over ROUNDS kills, the time from kill -9 of an RF=3
#     partition's leader to the next acknowledged acks=all produce (one
#     record through `runnel produce` with every broker as bootstrap, started
#     right after the kill; it retries inside its delivery timeout);
#  2. throughput: `runnel bench produce` of 1 KiB records, acks=all to an
#     RF=3 topic (min.insync.replicas=2) on the three brokers, beside acks=1
#     to a single-node broker (no quorum) on the same machine, in the same run.
#
#   tests/cluster/measure_replication.sh RUNNEL RUNNELD [ROUNDS] [RECORDS] [--override K=V …]
#
# Timing overrides come from lib.sh's TIMING (broker.session.timeout.ms=2000
# …) plus any given here (give Kafka's defaults to measure those).
set -u
RUNNEL=$1
RUNNELD=$2
ROUNDS=${3:-10}
RECORDS=${4:-100000}
shift 4 2>/dev/null || shift $#
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" measure-repl
TIMING+=(--override min.insync.replicas=2 "$@")
T=m

read -r PORT[1] PORT[2] PORT[3] HTTP[1] HTTP[2] HTTP[3] CTL[1] CTL[2] CTL[3] PORT[4] HTTP[4] \
  < <(free_ports 11)
ALL="127.0.0.1:${PORT[1]},127.0.0.1:${PORT[2]},127.0.0.1:${PORT[3]}"
for i in 1 2 3; do start_node "$i"; done

isr3() { [ "$(dfield "$1" Isr | tr ',' '\n' | sort -n | paste -sd, -)" = 1,2,3 ]; }
created() { rn 1 topic create "$T" -p 1 -r 3 >/dev/null 2>&1 || rn 1 topic describe "$T" >/dev/null 2>&1; }
wait_for 120 created || { echo "topic not created"; exit 1; }
wait_for 120 isr3 1 || { echo "ISR never 3"; exit 1; }
echo 0 | timeout 60 "$RUNNEL" -b "$ALL" produce "$T" -p 0 >/dev/null 2>&1

times=()
for r in $(seq 1 "$ROUNDS"); do
  L=$(dfield 1 Leader)
  [ -n "${PID[$L]:-}" ] || L=$(dfield 2 Leader)
  kill -KILL "${PID[$L]}"
  t0=$(now_ms)
  wait "${PID[$L]}" 2>/dev/null
  PID[$L]=
  if echo "$r" | timeout 60 "$RUNNEL" -b "$ALL" -X delivery.timeout.ms=60000 produce "$T" -p 0 \
    >/dev/null 2>>"$TMP/produce.log"; then
    ms=$(($(now_ms) - t0))
    times+=("$ms")
    echo "round $r: killed leader $L, next acks=all produce acknowledged after $ms ms"
  else
    echo "round $r: killed leader $L, produce FAILED"
  fi
  start_node "$L"
  back() { local i; for i in 1 2 3; do [ -n "${PID[$i]}" ] && { isr3 "$i"; return; }; done; }
  wait_for 120 back || echo "round $r: ISR not back to 3 in 120 s"
done
printf '%s\n' "${times[@]}" | sort -n |
  awk '{a[NR]=$1} END {if (NR) printf "failover: n=%d min=%d p50=%d max=%d ms\n", NR, a[1], a[int((NR+1)/2)], a[NR]}'

# Throughput: RF=3 acks=all on the cluster, then single-node acks=1.
echo "bench: RF=3 acks=all, 1 KiB, $RECORDS records"
timeout 300 "$RUNNEL" -b "$ALL" bench produce "$T" --records "$RECORDS" --record-size 1024 \
  --acks all -p 0 --json
for i in 1 2 3; do stop_node "$i"; done
"$RUNNELD" --data-dir "$TMP/n4" --listen "127.0.0.1:${PORT[4]}" --http "127.0.0.1:${HTTP[4]}" \
  --reactors 1 2>>"$TMP/n4.log" &
PID[4]=$!
single() { timeout 10 "$RUNNEL" -b "127.0.0.1:${PORT[4]}" topic create s -p 1 >/dev/null 2>&1; }
wait_for 60 single
echo "bench: single node acks=1, 1 KiB, $RECORDS records"
timeout 300 "$RUNNEL" -b "127.0.0.1:${PORT[4]}" bench produce s --records "$RECORDS" \
  --record-size 1024 --acks 1 -p 0 --json
