#!/bin/bash
# test_host_pauses.sh HOST_PAUSES — tests/perf/host_pauses (TAP): its arguments
# are checked before anything runs, and a pause is reported. The pause is made
# for sure: the process is stopped (SIGSTOP) for 150 ms, so every watching
# thread wakes at least that late, whatever the machine.
set -u
HP=$1
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bad() { # bad DESCRIPTION ARGS...: exit 2, a message on stderr, nothing on stdout
    local what=$1
    shift
    "$HP" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc = 2 ] && [ -s "$tmp/err" ] && [ ! -s "$tmp/out" ]; then
        ok "$what: exit 2 with a message"
    else
        notok "$what: exit $rc, stderr '$(head -c 200 "$tmp/err")', stdout '$(head -c 200 "$tmp/out")'"
    fi
}
bad "--seconds not a number" --seconds x
bad "--seconds 0" --seconds 0
bad "--seconds with trailing bytes" --seconds 1s
bad "--seconds over a day" --seconds 100000
bad "--over below 1.5 ms" --over 0.5
bad "--over not a number" --over ''
bad "an argument it does not take" extra
bad "an unknown option" --frobnicate

"$HP" --seconds 2 >"$tmp/run" 2>"$tmp/err" &
pid=$!
sleep 0.5
kill -STOP $pid
sleep 0.15
kill -CONT $pid
wait $pid
rc=$?
[ $rc = 0 ] && ok "a 2 s run exits 0" || notok "a 2 s run exits $rc: $(cat "$tmp/err")"
if python3 - "$tmp/run" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
end = lines[-1]
assert end.get("end") is True and end["seconds"] == 2, end
assert all("end" not in l for l in lines[:-1])
for l in lines[:-1]:
    assert set(l) == {"t", "cpu", "ms", "steal_ms"}, l
    # Over 3 ms, printed to 0.01 ms: 3.004 shows as 3.00.
    assert l["ms"] >= 3 and l["t"] > 0 and l["cpu"] >= 0, l
PY
then ok "every line is JSON: pauses over 3 ms, then one end line"; else notok "output: $(head -c 400 "$tmp/run")"; fi
ncpu=$(nproc) # the CPUs this process may run on: one watcher each
big=$(python3 -c "
import json, sys
print(len({l['cpu'] for l in map(json.loads, open(sys.argv[1])) if l.get('ms', 0) >= 140}))" "$tmp/run")
[ "$big" = "$ncpu" ] && ok "the 150 ms stop is a pause of at least 140 ms on each of $ncpu CPUs" \
    || notok "the 150 ms stop was seen on $big of $ncpu CPUs: $(cat "$tmp/run")"
echo "1..$n"
[ $fails = 0 ]
