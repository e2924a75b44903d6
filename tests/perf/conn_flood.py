#!/usr/bin/python3
"""conn_flood.py — more SSE clients than max.connections, and /healthz meanwhile.

    tests/perf/conn_flood.py RUNNELD [--clients 11000] [--max 10000] [--seconds 60]
                             [--batch 500] [--probe-ms 50]

Run by hand (issue 11, item 8; the suite's small version is
tests/gateway/test_conn_limits.py). Starts its own runneld (free ports on
127.0.0.1, data in a mkdtemp directory under /tmp, removed at the end) with
max.connections=MAX, raises this process's descriptor limit to its hard
limit (runneld inherits it), then opens CLIENTS SSE streams on one partition
from non-blocking sockets, a batch at a time. Every client is classified by
what it got: a stream (200), a 503 with Retry-After, another answer, a close
or reset with no answer, or nothing before the deadline. Meanwhile a thread
asks /healthz on a fresh connection every PROBE_MS (50) and records how
long each took, and /metrics is read once at the end.

Prints the counts, the /healthz timings (n, failures, median, p99, max) and
the broker's own counters. Exits 1 when a client over the limit got no
answer or /healthz failed. Bounded: the run stays under SECONDS + 30 s.
"""
import argparse
import errno
import http.client
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runneld")
    ap.add_argument("--clients", type=int, default=11000)
    ap.add_argument("--max", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--probe-ms", type=float, default=50)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = a.clients + 200
    if hard < need:
        print("descriptor limit %d is below %d; raise it (ulimit -Hn)" % (hard, need))
        return 2

    tmp = tempfile.mkdtemp(prefix="rn-flood-", dir="/tmp")
    port, http_port = free_port(), free_port()
    log = open(os.path.join(tmp, "runneld.log"), "wb")
    proc = subprocess.Popen([a.runneld, "--data-dir", os.path.join(tmp, "data"),
                             "--listen", "127.0.0.1:%d" % port,
                             "--http", "127.0.0.1:%d" % http_port,
                             "--override", "max.connections=%d" % a.max],
                            stdout=subprocess.DEVNULL, stderr=log)
    socks = []
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("runneld did not start")
                time.sleep(0.05)
        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        c.request("POST", "/topics", body=b'{"name":"flood","partitions":1}',
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 201, r.status

        # /healthz every probe_ms on a fresh connection, while the flood runs.
        health = []  # (seconds, status or error)
        stop = threading.Event()

        def prober():
            while not stop.is_set():
                t0 = time.time()
                try:
                    hc = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
                    hc.request("GET", "/healthz")
                    hr = hc.getresponse()
                    hr.read()
                    hc.close()
                    health.append((time.time() - t0, hr.status))
                except OSError as e:
                    health.append((time.time() - t0, repr(e)))
                stop.wait(a.probe_ms / 1000)

        th = threading.Thread(target=prober)
        th.start()

        req = (b"GET /topics/flood/partitions/0/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
               % http_port)
        sel = selectors.DefaultSelector()
        state = {}  # sock -> [phase, buffer]; phase: connecting, waiting, done
        result = {"stream": 0, "503 retry-after": 0, "503 without retry-after": 0,
                  "other answer": 0, "closed, no answer": 0, "reset, no answer": 0,
                  "connect failed": 0, "no answer by the deadline": 0}
        t_start = time.time()
        end = t_start + a.seconds
        opened = 0
        pending = 0

        def finish(s, what):
            nonlocal pending
            result[what] += 1
            pending -= 1
            sel.unregister(s)
            state[s][0] = "done"
            if what != "stream":
                s.close()

        while time.time() < end:
            # Open the next batch once the previous one has its answers.
            if opened < a.clients and pending < a.batch:
                for _ in range(min(a.batch, a.clients - opened)):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    rc = s.connect_ex(("127.0.0.1", http_port))
                    if rc not in (0, errno.EINPROGRESS):
                        result["connect failed"] += 1
                        s.close()
                        opened += 1
                        continue
                    socks.append(s)
                    state[s] = ["connecting", b""]
                    sel.register(s, selectors.EVENT_WRITE)
                    opened += 1
                    pending += 1
            if opened >= a.clients and pending == 0:
                break
            for key, ev in sel.select(0.05):
                s = key.fileobj
                st = state[s]
                if st[0] == "connecting":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        finish(s, "connect failed")
                        continue
                    try:
                        s.send(req)
                    except OSError:
                        finish(s, "reset, no answer")
                        continue
                    st[0] = "waiting"
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    b = s.recv(4096)
                except ConnectionResetError:
                    finish(s, "reset, no answer" if not st[1] else "other answer")
                    continue
                except BlockingIOError:
                    continue
                if not b:
                    finish(s, "closed, no answer" if not st[1] else "other answer")
                    continue
                st[1] += b
                if b"\r\n\r\n" in st[1]:
                    head = st[1].split(b"\r\n\r\n", 1)[0].lower()
                    if head.startswith(b"http/1.1 200"):
                        finish(s, "stream")
                    elif head.startswith(b"http/1.1 503"):
                        finish(s, "503 retry-after" if b"\r\nretry-after:" in head
                               else "503 without retry-after")
                    else:
                        finish(s, "other answer")
        t_flood = time.time() - t_start
        result["no answer by the deadline"] += pending
        time.sleep(1)  # a few more probes with every stream open
        stop.set()
        th.join()

        try:
            c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
            c.request("GET", "/metrics")
            mt = c.getresponse().read().decode()
            c.close()
        except OSError as e:
            mt = "# /metrics failed: %r" % e
        want = ("runnel_connections_active ", "runnel_connections_rejected_total ",
                "runnel_http_connections_active ", "runnel_http_connections_rejected_total ",
                "runnel_http_reserve_connections_active ",
                'runnel_stream_connections_active{kind="sse"} ')
        metrics = [line for line in mt.splitlines()
                   if line.startswith(want) or line.startswith("# /metrics failed")]

        ok_h = sorted(t for t, st in health if st == 200)
        bad_h = [(round(t, 3), st) for t, st in health if st != 200]
        print("clients %d, max.connections %d, opened in %.1f s" % (a.clients, a.max, t_flood))
        for k, v in result.items():
            print("  %-28s %d" % (k, v))
        if ok_h:
            print("/healthz during the flood: %d answered 200, %d failed; median %.1f ms, "
                  "p99 %.1f ms, max %.1f ms" %
                  (len(ok_h), len(bad_h), 1000 * ok_h[len(ok_h) // 2],
                   1000 * ok_h[min(len(ok_h) - 1, int(len(ok_h) * 0.99))], 1000 * ok_h[-1]))
        if bad_h:
            print("  failures:", bad_h[:10])
        print("broker metrics:")
        for line in metrics:
            print("  " + line)
        over = a.clients - a.max
        bad = (result["closed, no answer"] + result["reset, no answer"] +
               result["no answer by the deadline"] + result["503 without retry-after"])
        return 1 if bad or bad_h or proc.poll() is not None or over < 0 else 0
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        proc.terminate()
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        print("runneld exit status %s" % rc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
