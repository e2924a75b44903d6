#!/usr/bin/python3
"""gateway_load.py — many WebSocket tails of one topic under a steady produce rate.

    tests/perf/gateway_load.py RUNNELD [--clients 1000] [--stalled 10] [--seconds 20]
                               [--rate 4] [--batch 5] [--procs 2] [--override KEY=VALUE]

Starts its own runneld (free ports, data in a mkdtemp directory under /tmp,
removed at the end), opens CLIENTS WebSocket subscriptions to partition 0 of
one topic (spread over PROCS client processes, asyncio + Debian's
python3-websockets), plus STALLED clients that subscribe and never read.
Then it produces BATCH records RATE times a second for SECONDS (REST POST;
each value carries its send time) and checks that every reading client
received every record, in order, exactly once.

Prints: records delivered, delivery latency (p50/p99/max, produce call to
client receipt), how many stalled clients were cut off (close 1008 at their
byte budget), runneld's CPU while producing, and its RSS before, at peak and
after. The clients share the machine with the broker: on a small machine the
Python clients' own CPU is part of the latency. A benchmark, not
a test: it prints figures and exits 1 only when a record went missing or
the broker failed. Bounded in time: the whole run stays under SECONDS + 40 s.
"""
import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    import websockets
except ImportError:
    sys.exit("python3-websockets is needed (Debian: apt install python3-websockets; "
             "run with /usr/bin/python3)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def cpu_s(pid):
    """User + system CPU seconds of pid so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- Client processes ----------------------------------------------------------------

async def client_main(port, n, expect, ready_q, deadline):
    """n tails; returns (per-client counts ok, latencies ms, errors)."""
    url = "ws://127.0.0.1:%d/ws" % port
    lat = []
    errors = []
    done = [0]

    async def one(i):
        try:
            async with websockets.connect(url, max_size=None, open_timeout=30,
                                          ping_interval=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "topic": "load", "partition": 0,
                                          "offset": "end"}))
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if m.get("type") != "subscribed":
                    raise RuntimeError("not subscribed: %r" % m)
                ready_q.put(1)
                nxt = 0
                while nxt < expect:
                    left = deadline - time.time()
                    if left <= 0:
                        raise RuntimeError("timed out at record %d of %d" % (nxt, expect))
                    m = json.loads(await asyncio.wait_for(ws.recv(), left))
                    if m.get("type") != "records":
                        continue
                    now = time.time()
                    for r in m["records"]:
                        v = r["value"]
                        if v["seq"] != nxt:
                            raise RuntimeError("record %d where %d was due" % (v["seq"], nxt))
                        nxt += 1
                        if i % 10 == 0:  # sample: keeps the client's own CPU in check
                            lat.append((now - v["ts"]) * 1000.0)
                done[0] += 1
        except Exception as e:  # reported, counted as a failed client
            errors.append("%s: %s" % (type(e).__name__, e))
            ready_q.put(1)

    await asyncio.gather(*(one(i) for i in range(n)))
    return done[0], lat, errors


def client_proc(port, n, expect, ready_q, out_q, deadline):
    raise_nofile()
    t0 = time.time()
    done, lat, errors = asyncio.run(client_main(port, n, expect, ready_q, deadline))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out_q.put((done, lat, errors, ru.ru_utime + ru.ru_stime, time.time() - t0))


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    data = c.getresponse().read().decode()
    c.close()
    for line in data.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def stalled_main(port, n, ready_q, hold_s, out_q):
    """Subscribe, never read; once the broker reports the cut-offs (or hold_s
    passes), read: each socket should end with close 1008."""
    url = "ws://127.0.0.1:%d/ws" % port
    conns = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        ws = await websockets.connect(url, sock=s, max_queue=1, read_limit=4096, max_size=None,
                                      ping_interval=None)
        await ws.send(json.dumps({"op": "subscribe", "topic": "load", "partition": 0,
                                  "offset": "end"}))
        conns.append(ws)
        ready_q.put(1)
    until = time.time() + hold_s
    while time.time() < until and metric(port, "runnel_stream_budget_closes_total") < n:
        await asyncio.sleep(0.5)
    codes = []
    for ws in conns:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.exceptions.ConnectionClosed as e:
            codes.append(e.rcvd.code if e.rcvd else None)
        except asyncio.TimeoutError:
            codes.append("open")
    out_q.put(codes)


def stalled_proc(port, n, ready_q, hold_s, out_q):
    raise_nofile()
    asyncio.run(stalled_main(port, n, ready_q, hold_s, out_q))


# ---- Main -------------------------------------------------------------------------------

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100.0))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runneld")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--stalled", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=4, help="produce calls per second")
    ap.add_argument("--batch", type=int, default=5, help="records per produce call")
    ap.add_argument("--value-bytes", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra runneld setting, e.g. log.flush=never")
    a = ap.parse_args()
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="rn-gw-load-", dir="/tmp")
    port, http_port = free_port(), free_port()
    log = open(os.path.join(tmp, "runneld.log"), "wb")
    proc = subprocess.Popen([a.runneld, "--data-dir", os.path.join(tmp, "data"),
                             "--listen", "127.0.0.1:%d" % port,
                             "--http", "127.0.0.1:%d" % http_port,
                             # A small budget so stalled clients are cut off fast.
                             "--override", "connection.send.budget.bytes=16384",
                             "--override", "max.connections=20000"] +
                            [x for kv in a.override for x in ("--override", kv)],
                            stdout=subprocess.DEVNULL, stderr=log)
    ok = False
    children = []
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", http_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        st, _ = post(http_port, "/topics", {"name": "load", "partitions": 1})
        assert st == 201, st
        rss0 = rss_kib(proc.pid)
        n_calls = int(a.rate * a.seconds)
        expect = n_calls * a.batch
        deadline = time.time() + a.seconds + 35
        ready_q, out_q, st_q = mp.Queue(), mp.Queue(), mp.Queue()
        per = [a.clients // a.procs + (1 if i < a.clients % a.procs else 0) for i in range(a.procs)]
        t_conn = time.time()
        for n in per:
            p = mp.Process(target=client_proc, args=(http_port, n, expect, ready_q, out_q, deadline))
            p.start()
            children.append(p)
        if a.stalled:
            sp = mp.Process(target=stalled_proc,
                            args=(http_port, a.stalled, ready_q, a.seconds + 2, st_q))
            sp.start()
            children.append(sp)
        for _ in range(a.clients + a.stalled):
            ready_q.get(timeout=60)
        t_ready = time.time() - t_conn
        rss_ready = rss_kib(proc.pid)
        pad = "x" * max(0, a.value_bytes - 40)
        rss_peak = rss_ready
        cpu0 = cpu_s(proc.pid)
        t0 = time.time()
        seq = 0
        for k in range(n_calls):
            due = t0 + k / a.rate
            d = due - time.time()
            if d > 0:
                time.sleep(d)
            recs = []
            for _ in range(a.batch):
                recs.append({"value": {"seq": seq, "ts": time.time(), "pad": pad}})
                seq += 1
            st, data = post(http_port, "/topics/load/partitions/0", {"records": recs})
            if st != 200:
                raise RuntimeError("produce: %s %s" % (st, data[:200]))
            if k % 10 == 0:
                rss_peak = max(rss_peak, rss_kib(proc.pid))
        t_prod = time.time() - t0
        cpu_prod = cpu_s(proc.pid) - cpu0
        delivered, lats, errs, ccpu, cwall = 0, [], [], [], []
        for _ in per:
            d, l, e, cpu, wall = out_q.get(timeout=max(5, deadline - time.time() + 5))
            delivered += d
            lats += l
            errs += e
            ccpu.append(cpu)
            cwall.append(wall)
            rss_peak = max(rss_peak, rss_kib(proc.pid))
        codes = st_q.get(timeout=60) if a.stalled else []
        for p in children:
            p.join(10)
        rss_after = rss_kib(proc.pid)
        cut = sum(1 for c in codes if c == 1008)
        print("gateway_load: %d WebSocket tails (+%d stalled) of one partition, "
              "%d records in %.1f s (%.0f records/s, %d B values)"
              % (a.clients, a.stalled, expect, t_prod, expect / t_prod, a.value_bytes))
        print("  connected and subscribed in %.2f s" % t_ready)
        print("  clients that received every record, in order: %d / %d  (%d record deliveries)"
              % (delivered, a.clients, delivered * expect))
        print("  delivery latency ms (produce call -> client, %d samples): p50 %.1f  p99 %.1f  "
              "max %.1f" % (len(lats), pct(lats, 50), pct(lats, 99), max(lats) if lats else 0))
        print("  stalled clients cut off with 1008: %d / %d  (others: %s)"
              % (cut, a.stalled, sorted(set(str(c) for c in codes if c != 1008)) or "-"))
        print("  runneld CPU while producing: %.1f s over %.1f s (%.0f%% of one core)"
              % (cpu_prod, t_prod, 100.0 * cpu_prod / t_prod))
        print("  client processes CPU: %s s over ~%.0f s each"
              % (" ".join("%.1f" % x for x in ccpu), max(cwall) if cwall else 0))
        print("  runneld RSS MiB: idle %.1f  with %d sockets %.1f  peak %.1f  after %.1f"
              % (rss0 / 1024, a.clients + a.stalled, rss_ready / 1024, rss_peak / 1024,
                 rss_after / 1024))
        for e in errs[:5]:
            print("  client error: " + e)
        ok = delivered == a.clients and not errs
    finally:
        for p in children:
            if p.is_alive():
                p.kill()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
        log.close()
        if rc != 0:
            print("runneld exit status %s; log tail:" % rc)
            with open(os.path.join(tmp, "runneld.log"), "rb") as f:
                sys.stdout.write(f.read()[-3000:].decode(errors="replace"))
            ok = False
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
