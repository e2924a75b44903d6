"""gwtest.py — shared helpers for the gateway tests (tests/gateway/*.py).

A test script starts its own runneld (native and HTTP listeners on free
127.0.0.1 ports, data under a mkdtemp directory in /tmp that is removed at
the end), runs test functions and prints TAP so meson counts each one.
Every network call has a timeout, so a hang fails a test instead of the
suite. Stopping the broker sends SIGTERM and requires exit status 0: a
crash, a hang on shutdown or (in the sanitizer build) a sanitizer report
fails the script.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, runneld, extra=()):
        self.runneld = runneld
        self.extra = list(extra)
        self.tmp = tempfile.mkdtemp(prefix="rn-gw-", dir="/tmp")
        self.log_path = os.path.join(self.tmp, "runneld.log")
        self.proc = None

    def start(self):
        env = dict(os.environ)
        # A sanitizer report must fail the run even when runneld exits 0.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":exitcode=86"
        env["UBSAN_OPTIONS"] = env.get("UBSAN_OPTIONS", "") + ":exitcode=86"
        for _ in range(3):
            self.port, self.http_port = free_port(), free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [self.runneld, "--data-dir", os.path.join(self.tmp, "data"),
                 "--listen", "127.0.0.1:%d" % self.port,
                 "--http", "127.0.0.1:%d" % self.http_port] + self.extra,
                stdout=subprocess.DEVNULL, stderr=log, env=env)
            log.close()
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.http_port), 0.2).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("runneld did not start:\n" + self.log_tail())

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if not self.proc:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.proc = None
        return rc

    def cleanup(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    # ---- HTTP ---------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers dict lower-cased, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hd = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hd, data

    def json(self, method, path, body=None, headers=None, timeout=10):
        st, hd, data = self.request(method, path, body, headers, timeout)
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, data

    def create_topic(self, name, partitions=1):
        st, j = self.json("POST", "/topics", {"name": name, "partitions": partitions})
        assert st == 201, (st, j)

    def produce(self, topic, records, partition=None):
        path = "/topics/%s" % topic if partition is None else \
            "/topics/%s/partitions/%d" % (topic, partition)
        st, j = self.json("POST", path, {"records": records},
                          {"Content-Type": "application/vnd.kafka.json.v2+json"})
        assert st == 200, (st, j)
        return j["offsets"]

    def metric(self, name):
        st, _, data = self.request("GET", "/metrics")
        assert st == 200
        for line in data.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None


def raw_exchange(port, data, timeout=5, until_close=True, max_bytes=1 << 20):
    """Send raw bytes, read until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.settimeout(timeout)
    if data:
        s.sendall(data)
    out = b""
    try:
        while len(out) < max_bytes:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if not until_close:
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        out += b"<RESET>"
    s.close()
    return out


class Reader:
    """Reads HTTP responses (Content-Length or chunked bodies) off a socket."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def _more(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError
        self.buf += b

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hd = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hd[k.strip().lower()] = v.strip()
        n = int(hd.get("content-length", "0"))
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hd, body

    def closed(self, timeout=5):
        """True when the server closes the connection (EOF) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return True
        except (socket.timeout, ConnectionResetError):
            return False


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def run(tests, broker=None, plan=True):
    """Run test functions (name, fn) and print TAP. Returns the exit code."""
    if plan:
        print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        t0 = time.time()
        try:
            fn()
            print("ok %d - %s (%.2fs)" % (i, name, time.time() - t0), flush=True)
        except Exception:  # any failure is this test's, the rest still run
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line)
            if broker:
                for line in broker.log_tail(1500).splitlines()[-10:]:
                    print("# runneld: " + line)
            sys.stdout.flush()
    return 1 if failed else 0
