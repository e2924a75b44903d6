# netns.sh — the fault suite's network (issue 14 item 1), sourced after lib.sh
# by tests/cluster/run (not run by itself).
#
# Each broker I lives in its own network namespace $NETP-nI at 10.77.0.1I;
# the clients (the CLI, rn-workload, the proxy) live in $NETP-c at
# 10.77.0.100. Their veth pairs meet on a bridge inside a hub namespace
# $NETP-hub, so nothing is added to the machine's own network: no address,
# no route, no rule outside the namespaces, and two runs at once do not
# meet ($NETP holds the shell's pid). Ports inside a namespace are fixed
# (9700 native, 9780 HTTP, 9790 controller): nothing else listens there.
#
# Faults, all undone by net_heal (or by deleting the namespaces at exit):
#   net_cut A B          A and B cannot reach each other (nftables drops in A, both ways)
#   net_cut_oneway A B   what A sends to B is dropped, B to A still arrives
#   net_isolate I        I cut from every other broker, clients still reach it
#   net_isolate_all I    I cut from brokers and clients
#   net_split "1" "2 3"  every pair across the two sides cut (minority/majority)
#   net_heal             every drop rule removed
#   node_pause I, node_resume I   SIGSTOP / SIGCONT by pid
#   node_crash I         kill -9 by pid, reaped
# Drops, not rejects: a cut link looks like a dead network (TCP retransmits
# into silence), not like a closed port.
#
# net_check exits 77 with the reason when namespaces or nftables are not to
# be had (not root, no iproute2 or nft, a chroot that forbids them).

NETP=rnf$$
NET_UP=0
NET_NS=()
# Extra processes (workload, proxies, pollers) to stop by pid at exit.
EXTRA_PIDS=()

net_ip() { # net_ip I: the address of broker I (I = c: the clients)
  if [ "$1" = c ]; then echo 10.77.0.100; else echo "10.77.0.1$1"; fi
}

net_skip() {
  echo "1..0 # SKIP $*"
  echo "skip: $*" >&2
  exit 77
}

net_check() {
  [ "$(id -u)" = 0 ] || net_skip "network namespaces need root"
  command -v ip >/dev/null || net_skip "no ip (iproute2)"
  command -v nft >/dev/null || net_skip "no nft (apt-get install nftables)"
  local probe=$NETP-probe
  ip netns add "$probe" 2>/dev/null || net_skip "ip netns add is not allowed here"
  if ! ip netns exec "$probe" nft add table inet probe 2>/dev/null; then
    ip netns del "$probe"
    net_skip "nftables does not work inside a network namespace here"
  fi
  if ! ip -n "$probe" link add probe0 type bridge 2>/dev/null; then
    ip netns del "$probe"
    net_skip "no bridge devices here"
  fi
  ip netns del "$probe"
}

net_kill_extra() {
  local p
  for p in "${EXTRA_PIDS[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  EXTRA_PIDS=()
}

# Deleting a namespace also deletes its veth end and the bridge; the
# processes in them were killed by pid first (lib.sh's cleanup, net_kill_extra).
net_down() {
  net_kill_extra
  local ns
  for ns in "${NET_NS[@]}"; do
    ip netns del "$ns" 2>/dev/null
  done
  NET_NS=()
  NET_UP=0
}

# net_up N: the hub, N broker namespaces and the clients' namespace; sets
# HOST, NS, PORT, HTTP, CTL for lib.sh and CLIENT_NS.
net_up() {
  local n=$1 hub=$NETP-hub e ns i
  CLEANUP_HOOKS+=(net_down)
  NET_NS+=("$hub")
  ip netns add "$hub" || return 1
  ip -n "$hub" link set lo up
  ip -n "$hub" link add br0 type bridge || return 1
  ip -n "$hub" link set br0 up
  for e in c $(seq 1 "$n"); do
    ns=$NETP-$([ "$e" = c ] && echo c || echo "n$e")
    NET_NS+=("$ns")
    ip netns add "$ns" || return 1
    ip -n "$hub" link add "v$e" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$hub" link set "v$e" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(net_ip "$e")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip netns exec "$ns" nft -f - <<'EOF' || return 1
table inet rnfault {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
EOF
  done
  for i in $(seq 1 "$n"); do
    HOST[$i]=$(net_ip "$i")
    NS[$i]=$NETP-n$i
    PORT[$i]=9700
    HTTP[$i]=9780
    CTL[$i]=9790
  done
  CLIENT_NS=$NETP-c
  NET_UP=1
}

net_ns() { # net_ns I: the namespace of broker I (or c)
  if [ "$1" = c ]; then echo "$NETP-c"; else echo "$NETP-n$1"; fi
}

nft_in() { # nft_in I ARGS…: nft inside broker I's namespace
  local ns
  ns=$(net_ns "$1")
  shift
  ip netns exec "$ns" nft "$@"
}

net_cut_oneway() { # net_cut_oneway A B: packets from A to B are dropped (at B)
  nft_in "$2" add rule inet rnfault input ip saddr "$(net_ip "$1")" drop
}

net_cut() { # net_cut A B: both ways, dropped in A's namespace
  nft_in "$1" add rule inet rnfault input ip saddr "$(net_ip "$2")" drop &&
    nft_in "$1" add rule inet rnfault output ip daddr "$(net_ip "$2")" drop
}

net_split() { # net_split "A…" "B…": every pair across the sides cut
  local a b
  for a in $1; do
    for b in $2; do
      net_cut "$a" "$b" || return 1
    done
  done
}

net_isolate() { # net_isolate I: from every other broker (of 1..3); clients still reach it
  local j
  for j in 1 2 3; do
    [ "$j" = "$1" ] || net_cut "$1" "$j" || return 1
  done
}

net_isolate_all() { # net_isolate_all I: from brokers and clients
  net_isolate "$1" && net_cut "$1" c
}

net_heal() {
  local i
  for i in 1 2 3 c; do
    nft_in "$i" flush chain inet rnfault input 2>/dev/null
    nft_in "$i" flush chain inet rnfault output 2>/dev/null
  done
  return 0
}

net_rules() { # net_rules I: the drop rules in force in I's namespace (for logs)
  nft_in "$1" list chain inet rnfault input 2>/dev/null | grep -c drop
}

node_pause() { kill -STOP "${PID[$1]}"; }
node_resume() { kill -CONT "${PID[$1]}"; }

node_crash() { # node_crash I: kill -9, reaped; PID[I] emptied
  [ -n "${PID[$1]:-}" ] || return 0
  kill -CONT "${PID[$1]}" 2>/dev/null
  kill -KILL "${PID[$1]}" 2>/dev/null
  wait "${PID[$1]}" 2>/dev/null
  PID[$1]=
}
