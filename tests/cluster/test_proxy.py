#!/usr/bin/env python3
"""test_proxy.py — the fault suite's TCP proxy on 127.0.0.1 (no namespace): bytes stay
intact and in order under jitter on parallel connections; a delay holds each direction
at least that long; loss resets the connection; a black hole holds bytes until it
lifts, then delivers them intact; the control file is read again while it runs.
Prints TAP. Every wait is bounded; the one timing check is a lower bound the proxy
guarantees (it never forwards a chunk before its delay), so a loaded machine cannot
fail it.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N = 0
FAILED = 0


def tap(ok, name):
    global N, FAILED
    N += 1
    FAILED += 0 if ok else 1
    print(f"{'ok' if ok else 'not ok'} {N} - {name}", flush=True)


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve(c):
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                try:
                    c.sendall(d)
                except OSError:
                    return

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def control(path, **conf):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(conf, f)
    os.replace(tmp, path)
    # The proxy checks every 100 ms; a new mtime is what it looks for.
    time.sleep(0.3)


def recv_exact(s, n, timeout):
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def main():
    print("1..5", flush=True)
    srv = echo_server()
    target = srv.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="rn-proxy-") as tmp:
        ctl = os.path.join(tmp, "faults.json")
        ready = os.path.join(tmp, "ready")
        port = free_port()
        proxy = subprocess.Popen([sys.executable, os.path.join(HERE, "proxy.py"), "--route",
                                  f"127.0.0.1:{port}=127.0.0.1:{target}", "--control", ctl,
                                  "--seed", "7", "--ready", ready])
        try:
            end = time.time() + 30
            while not os.path.exists(ready) and time.time() < end:
                time.sleep(0.05)
            control(ctl, jitter_ms=20)

            # 1. Four connections at once, 256 KiB each in uneven pieces.
            results = {}

            def talk(k):
                data = os.urandom(256 * 1024)
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    got = []
                    t = threading.Thread(target=lambda: got.append(
                        recv_exact(s, len(data), 60)))
                    t.start()
                    pos = 0
                    while pos < len(data):
                        step = 1 + (pos * 7919 + k) % 9000
                        s.sendall(data[pos:pos + step])
                        pos += step
                    t.join(90)
                    results[k] = got and got[0] == data

            ts = [threading.Thread(target=talk, args=(k,)) for k in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(120)
            tap(len(results) == 4 and all(results.values()),
                "256 KiB on each of 4 connections cross a jittery proxy intact and in order")

            # 2. A delay of 150 ms each way: a round trip takes at least 300 ms.
            control(ctl, delay_ms=150)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                t0 = time.monotonic()
                s.sendall(b"x")
                got = recv_exact(s, 1, 30)
                rtt = (time.monotonic() - t0) * 1000
            print(f"# round trip through a 150 ms proxy: {rtt:.0f} ms")
            tap(got == b"x" and rtt >= 300, "a 150 ms delay holds each direction at least 150 ms")

            # 3. Loss 1.0: the first chunk resets the connection, nothing comes back.
            control(ctl, loss=1.0)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"lost")
                try:
                    got = recv_exact(s, 4, 30)
                except (ConnectionResetError, socket.timeout):
                    got = b""
            tap(got == b"", "loss 1.0 resets the connection and forwards nothing")

            # 4. A black hole holds the bytes; when it lifts they arrive intact.
            control(ctl, blackhole=True)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"held-then-delivered")
                try:
                    early = recv_exact(s, 1, 0.5)
                except socket.timeout:
                    early = b""
                control(ctl)
                late = recv_exact(s, 19, 30)
            tap(early == b"" and late == b"held-then-delivered",
                "a black hole holds bytes (none within 0.5 s) and delivers them when it lifts")

            # 5. It stops on SIGTERM and says what it did.
            proxy.terminate()
            rc = proxy.wait(30)
            tap(rc == 0, "SIGTERM stops the proxy (exit 0)")
        finally:
            if proxy.poll() is None:
                proxy.kill()
                proxy.wait()
            srv.close()
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
