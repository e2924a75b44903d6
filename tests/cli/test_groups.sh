#!/usr/bin/env bash
# test_groups.sh — consumer groups through the runnel CLI: real runneld, real
# `runnel consume -G` processes, `runnel group list|describe|reset|delete`.
#
#   tests/cli/test_groups.sh RUNNEL RUNNELD     (meson passes both; prints TAP)
#
# One broker on a free 127.0.0.1 port with 4 reactors (so most group requests
# reach the coordinator on reactor 0 from another reactor), data under a mktemp directory in /tmp
# (removed at the end; the broker and every background consumer are stopped
# by their pid). Group members started in the background use a short session
# (2000 ms) and heartbeat (200 ms), so a killed one is noticed within seconds;
# the take-over times are printed as TAP comments.
RUNNEL=${1:?usage: test_groups.sh RUNNEL RUNNELD}
RUNNELD=${2:?usage: test_groups.sh RUNNEL RUNNELD}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cli-groups
RN_TIMEOUT=20
MEMBER_PIDS=()
FAST=(-X session.timeout.ms=2000 -X heartbeat.interval.ms=200 -X auto.commit.interval.ms=300
      -X fetch.max.wait.ms=100)

# At exit, every background member first, then lib.sh's broker.
rn_cleanup() {
  local p
  for p in "${MEMBER_PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
}

# A passing test's take-over times ("TIMING …" on its stderr) as TAP comments.
t_ok_extra() {
  grep '^TIMING' "$TMP/diag" | sed 's/^TIMING /# /'
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# member GROUP TOPIC OUT: a background `consume -G` printing "partition offset value".
member() {
  "$RUNNEL" consume "$2" -G "$1" "${FAST[@]}" -f '%p %o %s\n' >"$3" 2>>"$TMP/members.log" &
  LAST_PID=$!
  MEMBER_PIDS+=("$LAST_PID")
}

# stop_member PID: SIGTERM (final commit, leave) and a clean exit 0; a
# sanitizer report (exit 86) or a crash fails the test.
stop_member() {
  local st
  kill -TERM "$1"
  wait "$1"
  st=$?
  [ "$st" -eq 0 ] || { echo "member $1 exited $st on SIGTERM" >&2; tail -5 "$TMP/members.log" >&2; return 1; }
}

# owners GROUP: "partition consumer-id" for every row of describe.
owners() {
  r group describe "$1" 2>/dev/null | awk 'NR > 1 { print $3, $7 }'
}

# state GROUP: "STATE EPOCH #MEMBERS" of the group (describe --state).
state() {
  r group describe "$1" --state 2>/dev/null | awk 'NR == 2 { print $3, $4, $5 }'
}

# wait_owners GROUP MEMBERS PARTITIONS: until the group is settled with
# MEMBERS members holding all PARTITIONS, at most 15 s. Settled: Stable (every
# member holds exactly its share of the target) with the same group epoch
# before and after the owners were read, so the owners seen are the target of
# that epoch and not a hand-over half done (a member that has let a partition
# go while the next has not taken it yet, or 3/2/1 on the way to 2/2/2).
# Prints nothing; status says.
wait_owners() {
  local i o s1 s2
  for i in $(seq 1 300); do
    s1=$(state "$1")
    o=$(owners "$1")
    s2=$(state "$1")
    if [ "$s1" = "$s2" ] && [ "$(echo "$s1" | awk '{ print $1, $3 }')" = "Stable $2" ] &&
       [ "$(echo "$o" | awk '$2 != "-"' | wc -l)" -eq "$3" ] &&
       [ "$(echo "$o" | awk '$2 != "-" { print $2 }' | sort -u | wc -l)" -eq "$2" ]; then
      return 0
    fi
    sleep 0.05
  done
  echo "group $1: never settled with $2 members holding $3 partitions; last: $s1 / $s2" >&2
  echo "$o" >&2
  return 1
}

# produce_parts TOPIC PARTS PER PREFIX: PER records "<PREFIX>-<p>-<i>" into each partition.
produce_parts() {
  local p
  for p in $(seq 0 $(($2 - 1))); do
    seq 0 $(($3 - 1)) | sed "s/^/$4-$p-/" | r produce "$1" -p "$p" || return 1
  done
}

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# A group member with -o e@MS and no -e: it prints the records before MS,
# exits once every partition has passed MS (a window in the past ends where
# the log does), and commits the end of the window, so the next run starts
# with the first record past it. Once, -G refused e@MS.
test_group_window() {
  r topic create gwin -p 2 >/dev/null || return 1
  local p
  for p in 0 1; do
    printf "a-$p-0\na-$p-1\n" | r produce gwin -p "$p" --timestamp 1000 || return 1
  done
  printf 'b-0-2\nb-0-3\n' | r produce gwin -p 0 --timestamp 2000 || return 1
  expect_status 0 r consume gwin -G gw -o e@1500 "${FAST[@]}" -f '%p %o %s\n' || return 1
  [ "$(sort "$TMP/out" | tr '\n' ';')" = "0 0 a-0-0;0 1 a-0-1;1 0 a-1-0;1 1 a-1-1;" ] ||
    { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r group describe gw || return 1
  [ "$(awk 'NR > 1 { print $3, $4, $5 }' "$TMP/out" | tr '\n' ';')" = "0 2 4;1 2 2;" ] ||
    { cat "$TMP/out" >&2; return 1; }
  # A window wholly in the past of every record: nothing printed, nothing moves.
  expect_status 0 r consume gwin -G gw -o e@500 "${FAST[@]}" -f '%s\n' || return 1
  [ ! -s "$TMP/out" ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r consume gwin -G gw -e "${FAST[@]}" -f '%s\n' || return 1
  [ "$(tr '\n' ';' <"$TMP/out")" = "b-0-2;b-0-3;" ] || { cat "$TMP/out" >&2; return 1; }
}

# Group command lines that cannot work exit 2 with a hint, before any request.
test_usage_errors() {
  expect_status 2 r consume t -G g -p 0 || return 1
  expect_status 2 r consume t -G g -o 5 || return 1
  expect_status 2 r consume t -G g -o s@1000 || return 1
  expect_status 2 r consume t -o stored || return 1
  grep -q -- "-G" "$TMP/err" || { echo "-o stored does not point at -G" >&2; return 1; }
  expect_status 2 r group || return 1
  expect_status 2 r group frob || return 1
  expect_status 2 r group describe || return 1
  expect_status 2 r group list --state || return 1
  expect_status 2 r group reset g --to-earliest || return 1
  expect_status 2 r group reset g --topic t || return 1
  expect_status 2 r group reset g --topic t --to-earliest --to-latest || return 1
  expect_status 2 r group reset g --topic t --to-datetime yesterday || return 1
  expect_status 2 r group list --topic t || return 1
  grep -q "Try 'runnel group" "$TMP/err" || { echo "no --help hint" >&2; return 1; }
}

# --help of group and consume: examples, and the group options explained.
test_help() {
  expect_status 0 r group --help || return 1
  grep -q "^examples:" "$TMP/out" || { echo "group --help: no examples" >&2; return 1; }
  local w
  for w in "list" "describe" "reset" "delete" "--execute" "--to-datetime" "CURRENT-OFFSET"; do
    grep -q -- "$w" "$TMP/out" || { echo "group --help does not mention $w" >&2; return 1; }
  done
  expect_status 0 r consume --help || return 1
  grep -q -- "-G, --group" "$TMP/out" || { echo "consume --help: no -G" >&2; return 1; }
  grep -q "stored" "$TMP/out" || { echo "consume --help: no stored" >&2; return 1; }
  ! grep -q "not in this build" "$TMP/out" || { echo "consume --help still says no groups" >&2; return 1; }
  expect_status 0 r --help || return 1
  grep -q "^  group" "$TMP/out" || { echo "runnel --help does not list group" >&2; return 1; }
}

# consume -G -c M commits exactly what it printed; describe shows
# CURRENT-OFFSET, LOG-END-OFFSET and LAG = N - M per partition; a second
# member run with -e prints the rest, nothing twice, nothing lost.
test_lag_and_resume() {
  r topic create lagt -p 3 >/dev/null || return 1
  produce_parts lagt 3 10 v || return 1
  expect_status 0 r consume lagt -G lagg -c 12 -f '%s\n' || return 1
  cp "$TMP/out" "$TMP/first"
  [ "$(wc -l <"$TMP/first")" -eq 12 ] || { echo "printed $(wc -l <"$TMP/first"), want 12" >&2; return 1; }
  expect_status 0 r group describe lagg || return 1
  cp "$TMP/out" "$TMP/describe"
  head -1 "$TMP/describe" | grep -Eq \
    '^GROUP +TOPIC +PARTITION +CURRENT-OFFSET +LOG-END-OFFSET +LAG +CONSUMER-ID +HOST +CLIENT-ID$' ||
    { echo "bad header:" >&2; head -1 "$TMP/describe" >&2; return 1; }
  grep -q "no active members" "$TMP/err" || { echo "no 'no active members' note" >&2; return 1; }
  # Per partition: committed = how many of its records were printed; lag = 10 - that.
  local p printed row
  for p in 0 1 2; do
    printed=$(grep -c "^v-$p-" "$TMP/first")
    row=$(awk -v p="$p" 'NR > 1 && $3 == p { print $1, $2, $4, $5, $6, $7, $8, $9 }' "$TMP/describe")
    if [ "$printed" -eq 0 ]; then
      # Never printed from: committed where it started (0), or nothing.
      case "$row" in
        "lagg lagt 0 10 10 - - -" | "lagg lagt - 10 - - - -") ;;
        *) echo "partition $p: '$row' (printed 0)" >&2; return 1 ;;
      esac
    else
      [ "$row" = "lagg lagt $printed 10 $((10 - printed)) - - -" ] ||
        { echo "partition $p: '$row', printed $printed" >&2; return 1; }
    fi
  done
  # The next member reads exactly the 18 others.
  expect_status 0 r consume lagt -G lagg -e -f '%s\n' || return 1
  [ "$(wc -l <"$TMP/out")" -eq 18 ] || { echo "second run printed $(wc -l <"$TMP/out"), want 18" >&2; return 1; }
  [ "$(sort "$TMP/first" "$TMP/out" | uniq | wc -l)" -eq 30 ] || { echo "records lost or repeated" >&2; return 1; }
  # At the end now: -e exits at once with nothing; lag 0 everywhere.
  expect_status 0 r consume lagt -G lagg -e || return 1
  [ ! -s "$TMP/out" ] || { echo "a third run printed records" >&2; return 1; }
  expect_status 0 r group describe lagg || return 1
  [ "$(awk 'NR > 1 && $6 == 0' "$TMP/out" | wc -l)" -eq 3 ] || { cat "$TMP/out" >&2; return 1; }
  {
    echo "TIMING describe after 12 of 30 records:"
    sed 's/^/TIMING   /' "$TMP/describe"
  } >&2
}

# Two then three CLI members split a 6-partition topic (never a partition
# twice, all covered), then a clean stop (SIGTERM: commit and leave) hands
# over at once and a kill -9 within the session timeout; every record
# produced along the way is printed, duplicates only after the killed
# member's last commit.
test_members_split_kill_leave() {
  r topic create split -p 6 >/dev/null || return 1
  produce_parts split 6 20 a || return 1
  member gs split "$TMP/m1"; local m1=$LAST_PID
  wait_owners gs 1 6 || return 1
  member gs split "$TMP/m2"; local m2=$LAST_PID
  wait_owners gs 2 6 || return 1
  [ "$(owners gs | awk '{ print $2 }' | sort | uniq -c | awk '{ print $1 }' | sort -u)" = "3" ] ||
    { echo "not 3/3:" >&2; owners gs >&2; return 1; }
  member gs split "$TMP/m3"; local m3=$LAST_PID
  wait_owners gs 3 6 || return 1
  [ "$(owners gs | awk '{ print $2 }' | sort | uniq -c | awk '{ print $1 }' | sort -u)" = "2" ] ||
    { echo "not 2/2/2:" >&2; owners gs >&2; return 1; }
  # HOST is each member's own address, also when its heartbeat reached the
  # coordinator (reactor 0) through another reactor: it once said "reactor".
  r group describe gs 2>/dev/null | awk 'NR > 1 { print $8 }' >"$TMP/hosts"
  [ "$(grep -cE '^127\.0\.0\.1:[0-9]+$' "$TMP/hosts")" -eq 6 ] ||
    { echo "HOST column:" >&2; cat "$TMP/hosts" >&2; return 1; }
  produce_parts split 6 20 b || return 1

  # Clean leave of m3: the others hold everything about a heartbeat later.
  local t0 t1
  t0=$(now_ms)
  stop_member "$m3" || return 1
  t1=$(now_ms)
  wait_owners gs 2 6 || return 1
  echo "TIMING clean leave (SIGTERM): consume exited in $((t1 - t0)) ms, the others held all 6 partitions $(($(now_ms) - t0)) ms after the signal" >&2
  produce_parts split 6 20 c || return 1

  # kill -9 of m2: its partitions move to m1 after the session timeout.
  sleep 0.5
  t0=$(now_ms)
  kill -KILL "$m2"
  wait "$m2" 2>/dev/null
  wait_owners gs 1 6 || return 1
  t1=$(now_ms)
  echo "TIMING kill -9: the survivor held all 6 partitions $((t1 - t0)) ms after the kill (session.timeout.ms 2000, heartbeat.interval.ms 200)" >&2
  [ $((t1 - t0)) -ge 1500 ] || { echo "moved after $((t1 - t0)) ms: before the session could expire" >&2; return 1; }
  [ $((t1 - t0)) -le 6000 ] || { echo "moved only after $((t1 - t0)) ms" >&2; return 1; }
  produce_parts split 6 20 d || return 1

  # The survivor reads everything that is left; then stop it cleanly.
  local i total=$((6 * 80))
  for i in $(seq 1 200); do
    [ "$(cat "$TMP"/m[123] | awk '{ print $3 }' | sort -u | wc -l)" -ge "$total" ] && break
    sleep 0.05
  done
  stop_member "$m1" || return 1
  local distinct all dups
  distinct=$(cat "$TMP"/m[123] | awk '{ print $3 }' | sort -u | wc -l)
  all=$(cat "$TMP"/m[123] | wc -l)
  dups=$((all - distinct))
  [ "$distinct" -eq "$total" ] || { echo "$distinct distinct records printed of $total" >&2; return 1; }
  # Every value sits at its own offset: "<prefix>-<p>-<i>" in partition p.
  cat "$TMP"/m[123] | awk '{ split($3, v, "-"); if (v[2] != $1) { print "bad", $0; exit 1 } }' >&2 || return 1
  # Only the killed member's uncommitted window may repeat: no repeats in
  # the records of the survivor or of the cleanly stopped member alone.
  [ "$(awk '{ print $3 }' "$TMP/m1" | sort | uniq -d | wc -l)" -eq 0 ] || { echo "m1 printed a record twice" >&2; return 1; }
  awk '{ print $3 }' "$TMP/m3" | sort -u >"$TMP/v3"
  cat "$TMP/m1" "$TMP/m2" | awk '{ print $3 }' | sort -u >"$TMP/v12"
  [ "$(comm -12 "$TMP/v3" "$TMP/v12" | wc -l)" -eq 0 ] ||
    { echo "records of the cleanly stopped member were read again" >&2; return 1; }
  echo "TIMING $total records produced: $all printed, $distinct distinct, $dups repeated after the kill -9 (the uncommitted window)" >&2
  # The group is empty now: everything committed, lag 0.
  expect_status 0 r group describe gs || return 1
  [ "$(awk 'NR > 1 && $6 == 0 && $7 == "-"' "$TMP/out" | wc -l)" -eq 6 ] || { cat "$TMP/out" >&2; return 1; }
}

# reset: the plan alone changes nothing; --execute commits it; earliest,
# latest, an offset (clamped into the log) and a date; refused while a
# member runs.
test_reset() {
  r topic create rst -p 2 >/dev/null || return 1
  produce_parts rst 2 10 x || return 1
  expect_status 0 r consume rst -G rg -e -f '' || return 1
  expect_status 0 r group describe rg || return 1
  cp "$TMP/out" "$TMP/before"
  expect_status 0 r group reset rg --topic rst --to-earliest || return 1
  [ "$(head -1 "$TMP/out")" = "GROUP  TOPIC  PARTITION  NEW-OFFSET" ] || { head -1 "$TMP/out" >&2; return 1; }
  [ "$(awk 'NR > 1 { print $1, $2, $3, $4 }' "$TMP/out" | tr '\n' ';')" = "rg rst 0 0;rg rst 1 0;" ] ||
    { cat "$TMP/out" >&2; return 1; }
  grep -q "preview only" "$TMP/err" || { echo "no 'preview only' note" >&2; return 1; }
  expect_status 0 r group describe rg || return 1
  cmp -s "$TMP/out" "$TMP/before" || { echo "the preview changed the offsets" >&2; return 1; }
  expect_status 0 r group reset rg --topic rst --to-offset 4 --execute || return 1
  expect_status 0 r group describe rg || return 1
  [ "$(awk 'NR > 1 { print $4, $6 }' "$TMP/out" | tr '\n' ';')" = "4 6;4 6;" ] || { cat "$TMP/out" >&2; return 1; }
  # Past the end is kept at the end, with a note.
  expect_status 0 r group reset rg --topic rst --to-offset 99 || return 1
  grep -q "outside" "$TMP/err" || { echo "no clamp note" >&2; return 1; }
  [ "$(awk 'NR > 1 { print $4 }' "$TMP/out" | tr '\n' ';')" = "10;10;" ] || { cat "$TMP/out" >&2; return 1; }
  # A date before every record: the start; one far ahead: the end.
  expect_status 0 r group reset rg --topic rst --to-datetime 2001-01-01T00:00:00Z --execute || return 1
  [ "$(awk 'NR > 1 { print $4 }' "$TMP/out" | tr '\n' ';')" = "0;0;" ] || { cat "$TMP/out" >&2; return 1; }
  expect_status 0 r group reset rg --topic rst --to-datetime 2999-01-01T00:00:00+02:00 || return 1
  [ "$(awk 'NR > 1 { print $4 }' "$TMP/out" | tr '\n' ';')" = "10;10;" ] || { cat "$TMP/out" >&2; return 1; }
  # After the reset to 0 the group reads everything again.
  expect_status 0 r consume rst -G rg -e -f '%s\n' || return 1
  [ "$(wc -l <"$TMP/out")" -eq 20 ] || { echo "after reset read $(wc -l <"$TMP/out")" >&2; return 1; }
  expect_status 0 r group reset rg --topic rst --to-latest --execute || return 1
  expect_status 0 r consume rst -G rg -e || return 1
  [ ! -s "$TMP/out" ] || { echo "read after --to-latest" >&2; return 1; }
  # A running member: refused, preview and --execute alike, offsets untouched.
  member rg rst "$TMP/rm"; local m=$LAST_PID
  wait_owners rg 1 2 || return 1
  expect_status 1 r group reset rg --topic rst --to-earliest || return 1
  grep -q "active member" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  expect_status 1 r group reset rg --topic rst --to-earliest --execute || return 1
  grep -q "stop its consumers" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  stop_member "$m" || return 1
  expect_status 0 r group describe rg || return 1
  [ "$(awk 'NR > 1 { print $4 }' "$TMP/out" | tr '\n' ';')" = "10;10;" ] || { cat "$TMP/out" >&2; return 1; }
}

# list and delete: listed while known; delete refused while a member runs,
# then the group is gone (describe exits 1).
test_list_delete() {
  r topic create ld -p 1 >/dev/null || return 1
  produce_parts ld 1 3 y || return 1
  expect_status 0 r consume ld -G ldg -e || return 1
  expect_status 0 r group list || return 1
  grep -qx "ldg" "$TMP/out" || { echo "ldg not listed" >&2; cat "$TMP/out" >&2; return 1; }
  expect_status 0 r group list -l || return 1
  grep -Eq '^GROUP +STATE +MEMBERS$' "$TMP/out" || { head -1 "$TMP/out" >&2; return 1; }
  grep -Eq '^ldg +Empty +0$' "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  member ldg ld "$TMP/lm"; local m=$LAST_PID
  wait_owners ldg 1 1 || return 1
  expect_status 0 r group list -l || return 1
  grep -Eq '^ldg +Stable +1$' "$TMP/out" || { cat "$TMP/out" >&2; return 1; }
  expect_status 1 r group delete ldg || return 1
  [ "$(cat "$TMP/err")" = "runnel: group ldg has active members: stop its consumers first" ] ||
    { cat "$TMP/err" >&2; return 1; }
  stop_member "$m" || return 1
  expect_status 0 r group delete ldg || return 1
  expect_status 1 r group describe ldg || return 1
  [ "$(cat "$TMP/err")" = "runnel: group ldg does not exist (it has no member and nothing committed)" ] ||
    { cat "$TMP/err" >&2; return 1; }
  expect_status 0 r group list || return 1
  ! grep -qx "ldg" "$TMP/out" || { echo "ldg still listed" >&2; return 1; }
  expect_status 1 r group delete ldg || return 1
}

# -e in group mode with more members than partitions: the one given nothing
# exits on its own instead of waiting forever.
test_exit_without_partitions() {
  r topic create one -p 1 >/dev/null || return 1
  member eg one "$TMP/em"; local m=$LAST_PID
  wait_owners eg 1 1 || return 1
  local t0
  t0=$(now_ms)
  expect_status 0 r consume one -G eg -e || return 1
  grep -q "no partition" "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  echo "TIMING a member given nothing left after $(($(now_ms) - t0)) ms" >&2
  stop_member "$m" || return 1
}

# Background members said nothing alarming (a sanitizer report, a crash).
test_members_log_clean() {
  ! grep -E "Sanitizer|runtime error|Segmentation|Aborted" "$TMP/members.log" >&2
}

# ---------------------------------------------------------------------------

start_broker --reactors 4 || { echo "1..0 # SKIP runneld did not start"; exit 1; }
t "group usage errors exit 2" test_usage_errors
t "group and consume --help" test_help
t "consume -G -c commits what it printed; describe lag; resume" test_lag_and_resume
t "members split, clean leave, kill -9: take-over and no loss" test_members_split_kill_leave
t "group reset: preview, --execute, refused while active" test_reset
t "group list and delete" test_list_delete
t "-e with no partition given exits" test_exit_without_partitions
t "-G with -o e@MS: prints the window, commits its end, exits" test_group_window
t "background members ran clean" test_members_log_clean
if [ "$FAILED" -ne 0 ]; then
  echo "# members log:"
  tail -20 "$TMP/members.log" 2>/dev/null | sed 's/^/#   /'
fi
finish
