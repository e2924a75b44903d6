#!/usr/bin/python3
"""test_conn_limits.py — max.connections, as a client over it sees it (issue 11, item 8).

    tests/gateway/test_conn_limits.py RUNNELD        (meson passes it; prints TAP)

The broker runs with max.connections=20 (counted over the whole broker:
native and HTTP, every reactor), so the limit is cheap to reach. With 20 SSE
streams open:
  - another HTTP client gets 503 with Retry-After and a JSON error, then the
    connection closes (never a bare close or reset);
  - /healthz, /readyz and /metrics still answer, on fresh connections, from
    the reserve of connections kept for them; the refusals are counted;
  - a native client over the limit is closed at once and counted in
    runnel_connections_rejected_total;
  - a stream that ends frees its slot for the next client.
And a broker whose descriptor limit (128) is far below max.connections: the
clients it cannot take are refused at once (a spare descriptor lets it
accept and close them) and counted, with one log line a second at most
instead of a failed accept in a loop, and it serves again afterwards.
By hand, the same with 11,000 SSE clients: tests/perf/conn_flood.py.
"""
import json
import os
import select
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
from gwtest import Reader, check  # noqa: E402

B = None
MAX = 20
RESERVE = 32  # RN_HTTP_RESERVE_MIN (a tenth of max.connections, at least 32)
streams = []


def connect(port=None, timeout=5):
    s = socket.create_connection(("127.0.0.1", port or B.http_port), timeout)
    s.settimeout(timeout)
    return s


def open_sse():
    """An SSE stream on the limit's topic; returns the socket once its head came."""
    s = connect()
    s.sendall(b"GET /topics/lim/partitions/0/events HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            raise EOFError("stream closed before its head: %r" % buf)
        buf += b
    check(buf.startswith(b"HTTP/1.1 200"), buf[:200])
    return s


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def get(path):
    """GET path on a fresh connection: (status, headers, body)."""
    s = connect()
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    r = Reader(s)
    out = r.response()
    s.close()
    return out


def open_sse_retrying():
    """open_sse, again while the broker has not yet seen an earlier client
    (this script's own) go and answers 503."""
    deadline = time.time() + 10
    while True:
        try:
            return open_sse()
        except AssertionError:
            check(time.time() < deadline, "no slot came free for a stream")
            time.sleep(0.05)


def test_fill_with_streams():
    B.create_topic("lim", 1)
    while len(streams) < MAX:
        streams.append(open_sse_retrying())
    st, _, b = get("/metrics")
    check(st == 200, st)
    check(metric(b.decode(), "runnel_stream_connections_active{kind=\"sse\"}") == MAX, b[-400:])


def test_over_the_limit_gets_503():
    for path in [b"/topics/lim/partitions/0/events", b"/topics", b"/"]:
        s = connect()
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
        r = Reader(s)
        st, hd, body = r.response()
        check(st == 503, (path, st, hd, body))
        check(hd.get("retry-after", "").isdigit(), hd)
        check(hd.get("connection") == "close", hd)
        check(json.loads(body)["error_code"] == 50302, body)
        check(r.closed(), "not closed after the 503")
        s.close()


def test_health_and_metrics_answer():
    for _ in range(5):
        st, _, b = get("/healthz")
        check(st == 200 and json.loads(b) == {"status": "ok"}, (st, b))
        st, _, b = get("/readyz")
        check(st == 200, (st, b))
        st, _, b = get("/metrics")
        check(st == 200, st)
        text = b.decode()
        check(metric(text, "runnel_http_connections_rejected_total") >= 3, text[-2000:])
    # Keep-alive: a scraper on one connection asks again and again.
    s = connect()
    r = Reader(s)
    for _ in range(3):
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        check(r.response()[0] == 200)
    s.close()


def test_native_over_the_limit():
    st, _, b = get("/metrics")
    before = metric(b.decode(), "runnel_connections_rejected_total")
    s = connect(B.port)
    t0 = time.time()
    try:
        closed = s.recv(1) == b""
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        closed = False
    s.close()
    check(closed and time.time() - t0 < 5, "the native connection over the limit stayed open")
    st, _, b = get("/metrics")
    check(metric(b.decode(), "runnel_connections_rejected_total") == before + 1, b[-2000:])


def test_past_the_reserve():
    # More clients than the reserve holds, each with half a request (the
    # listener accepts a client once its first bytes are in): those past
    # it get their 503 at once.
    idle = []
    for _ in range(RESERVE + 5):
        s = connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        idle.append(s)
    deadline = time.time() + 10
    while True:
        ready = select.select(idle, [], [], 0.2)[0]
        if len(ready) >= 5 or time.time() > deadline:
            break
    answered = 0
    for s in ready:
        r = Reader(s)
        st, hd, body = r.response()
        check(st == 503 and hd.get("retry-after", "").isdigit(), (st, hd, body))
        check(json.loads(body)["error_code"] == 50302, body)
        check(r.closed())
        answered += 1
    check(answered >= 5, "only %d of %d answered at once" % (answered, len(idle)))
    # Past the reserve, a whole request for anything else: 503 at once; a
    # whole /healthz or /metrics request: served.
    st, hd, _ = get("/topics")
    check(st == 503 and hd.get("retry-after", "").isdigit(), (st, hd))
    st, _, b = get("/healthz")
    check(st == 200 and json.loads(b) == {"status": "ok"}, (st, b))
    st, _, b = get("/metrics")
    check(st == 200 and b"runnel_http_reserve_connections_active" in b, st)
    for s in idle:
        s.close()
    deadline = time.time() + 10
    while get("/healthz")[0] != 200:
        check(time.time() < deadline, "the reserve never came back")
        time.sleep(0.05)
    st, _, b = get("/metrics")
    check(metric(b.decode(), "runnel_http_reserve_connections_active") <= 1, b[-2000:])


def test_a_freed_slot_is_used_again():
    streams.pop().close()
    deadline = time.time() + 10
    while True:
        try:
            streams.append(open_sse())
            break
        except AssertionError:  # 503 until the broker has seen the close
            check(time.time() < deadline, "the freed slot never came back")
            time.sleep(0.05)
    st, _, _ = get("/healthz")
    check(st == 200)


def out_of_descriptors(runneld):
    """A broker whose descriptor limit (128) is far below max.connections:
    clients past what it can accept are refused at once and counted, the
    accept does not spin, and it serves again once descriptors come free."""
    global B
    tmp = tempfile.mkdtemp(prefix="rn-nofile-", dir="/tmp")
    wrapper = os.path.join(tmp, "runneld-nofile")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nulimit -n 128 || exit 97\nexec "%s" "$@"\n' % runneld)
    os.chmod(wrapper, 0o755)
    B = gwtest.Broker(wrapper)
    try:
        B.start()
        clients = [connect(B.port) for _ in range(200)]
        for c in clients:
            c.setblocking(False)
        # Until nothing changes for 2 s (longer than the broker's 1 s tick,
        # which retries a listener that could not shed at once).
        closed, last, since, deadline = set(), -1, time.time(), time.time() + 20
        while time.time() < deadline:
            for i, c in enumerate(clients):
                if i in closed:
                    continue
                try:
                    if c.recv(1) == b"":
                        closed.add(i)
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed.add(i)
            if len(closed) != last:
                last, since = len(closed), time.time()
            elif closed and time.time() - since > 2:
                break
            time.sleep(0.1)
        check(closed, "no client was refused: they wait unanswered in the listen queue")
        check(len(closed) < len(clients), "every client was refused")
        for c in clients:
            c.close()
        deadline = time.time() + 15
        while True:
            try:
                if get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            check(time.time() < deadline, "/healthz never came back")
            time.sleep(0.1)
        st, _, b = get("/metrics")
        text = b.decode()
        native = (metric(text, "runnel_connections_rejected_total") -
                  metric(text, "runnel_http_connections_rejected_total"))
        check(native == len(closed), (native, len(closed)))
        check(B.stop() == 0, "runneld did not exit 0")
        log = B.log_tail(1 << 20)
        refused_lines = log.count('msg="connection refused"')
        check("accept failed" not in log and 1 <= refused_lines <= 20,
              "a log line per failed accept: %d refused lines" % refused_lines)
    finally:
        B.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    global B
    B = gwtest.Broker(sys.argv[1], ["--override", "max.connections=%d" % MAX])
    try:
        B.start()
        tests = [
            ("%d SSE streams fill max.connections" % MAX, test_fill_with_streams),
            ("over the limit: 503 + Retry-After + close", test_over_the_limit_gets_503),
            ("/healthz, /readyz, /metrics still answer", test_health_and_metrics_answer),
            ("native client over the limit: closed at once, counted", test_native_over_the_limit),
            ("past the reserve: 503 at once, health still served; the reserve comes back",
             test_past_the_reserve),
            ("a stream that ends frees its slot", test_a_freed_slot_is_used_again),
            ("SIGTERM: exit 0", lambda: check(B.stop() == 0, "runneld did not exit 0")),
            ("out of descriptors: refused at once, counted, no spin, serves after",
             lambda: out_of_descriptors(sys.argv[1])),
        ]
        try:
            return gwtest.run(tests, B)
        finally:
            for s in streams:
                s.close()
    finally:
        B.cleanup()


if __name__ == "__main__":
    sys.exit(main())
