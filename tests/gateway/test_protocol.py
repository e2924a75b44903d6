#!/usr/bin/python3
"""test_protocol.py — the gateway's HTTP/1.1 and WebSocket framing over raw sockets.

    tests/gateway/test_protocol.py RUNNELD        (meson passes it; prints TAP)

Pipelining and keep-alive, malformed requests (400), limits answered before
the body is read (413, with a lingering close so the client sees the answer
instead of a reset), HTTP/1.0, malformed WebSocket frames (close 1002 /
1007 / 1009), fragmented messages with a ping in between, a seeded burst of
random garbage that must leave the broker serving, and a shutdown that
answers pipelined requests with 503 and exits 0.
"""
import json
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
from gwtest import Reader, check  # noqa: E402

B = None


def connect(timeout=5):
    s = socket.create_connection(("127.0.0.1", B.http_port), timeout)
    s.settimeout(timeout)
    return s


def http_req(method, path, body=b"", headers=""):
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n%s\r\n"
            % (method, path, B.http_port, len(body), headers)).encode() + body


# ---- HTTP ------------------------------------------------------------------------

def test_pipelining():
    B.create_topic("p1", 1)
    body = json.dumps({"records": [{"value": "x"}]}).encode()
    s = connect()
    s.sendall(http_req("GET", "/healthz") +
              http_req("POST", "/topics/p1", body,
                       "Content-Type: application/vnd.kafka.json.v2+json\r\n") +
              http_req("GET", "/topics/p1/partitions/0/records?offset=0") +
              http_req("GET", "/readyz"))
    r = Reader(s)
    st, _, b = r.response()
    check(st == 200 and json.loads(b) == {"status": "ok"}, b)
    st, _, b = r.response()
    check(st == 200 and json.loads(b)["offsets"][0]["offset"] == 0, b)
    st, _, b = r.response()
    check(st == 200 and json.loads(b)[0]["value"] == "x", b)
    st, _, b = r.response()
    check(st == 200 and json.loads(b) == {"status": "ready"}, b)
    # Many more on the same connection, sent in one go.
    s.sendall(b"".join(http_req("GET", "/topics/p1/partitions/0/offsets") for _ in range(200)))
    for _ in range(200):
        st, _, b = r.response()
        check(st == 200 and json.loads(b)["end_offset"] == 1, b)
    s.close()


def test_pipelined_split_at_every_byte():
    data = http_req("GET", "/healthz") + http_req("GET", "/readyz")
    s = connect()
    r = Reader(s)
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
        if i % 16 == 0:
            time.sleep(0.001)
    check(r.response()[0] == 200 and r.response()[0] == 200)
    s.close()


def test_malformed_is_400_and_close():
    for bad in [b"NOT HTTP AT ALL\r\n\r\n",
                b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
                b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
                b"POST /topics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64))]:
        s = connect()
        s.sendall(bad)
        r = Reader(s)
        st, hd, body = r.response()
        check(st == 400 and hd.get("connection") == "close", (bad, st, hd))
        check(json.loads(body)["error_code"] == 40001, body)
        check(r.closed(), "not closed after 400")
        s.close()


def test_limits_before_the_body():
    # A huge Content-Length: 413 at once, nothing of the body sent.
    s = connect()
    s.sendall(b"POST /topics/p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n"
              b"Content-Type: application/json\r\n\r\n")
    r = Reader(s)
    st, hd, body = r.response()
    check(st == 413 and json.loads(body)["error_code"] == 41301, (st, body))
    s.close()
    # The body already on its way: the client still reads the 413, not a reset.
    s = connect()
    big = b"x" * (5 << 20)
    s.sendall(b"POST /topics/p1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big))
    try:
        s.sendall(big)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = Reader(s)
    st, _, _ = r.response()
    check(st == 413, st)
    s.close()
    # A chunked body that grows past the limit (4 MiB by default).
    s = connect()
    s.sendall(b"POST /topics/p1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"100000\r\n" + b"y" * 0x100000 + b"\r\n"
    st = None
    try:
        for _ in range(6):
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    st, _, _ = Reader(s).response()
    check(st == 413, st)
    s.close()
    # Headers beyond 16 KiB.
    s = connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 20000 + b"\r\n\r\n")
    st, _, _ = Reader(s).response()
    check(st == 413, st)
    s.close()


def test_expect_continue():
    body = json.dumps({"records": [{"value": "after 100"}]}).encode()
    s = connect()
    s.sendall(b"POST /topics/p1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    r = Reader(s)
    st, _, _ = r.response()
    check(st == 100, st)
    s.sendall(body)
    st, _, b = r.response()
    check(st == 200 and json.loads(b)["offsets"][0]["error_code"] is None, b)
    s.close()


def test_http10():
    s = connect()
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = Reader(s)
    st, hd, _ = r.response()
    check(st == 200 and hd.get("connection") == "close", hd)
    check(r.closed())
    s.close()
    s = connect()
    s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
    r = Reader(s)
    check(r.response()[0] == 200 and r.response()[0] == 200)
    s.close()


# ---- WebSocket frames -----------------------------------------------------------------

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def ws_open():
    s = connect()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n"
               % (B.http_port, WS_KEY)).encode())
    r = Reader(s)
    st, hd, _ = r.response()
    check(st == 101 and hd["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", hd)
    return s, r


def frame(opcode, payload, fin=True, mask=True, length=None):
    n = len(payload) if length is None else length
    h = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        h += bytes([mbit | n])
    elif n < 65536:
        h += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        h += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return h + payload
    key = b"\x11\x22\x33\x44"
    return h + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(r):
    while len(r.buf) < 2:
        r._more()
    b0, b1 = r.buf[0], r.buf[1]
    n, off = b1 & 0x7f, 2
    if n == 126:
        while len(r.buf) < 4:
            r._more()
        n, off = struct.unpack("!H", r.buf[2:4])[0], 4
    elif n == 127:
        while len(r.buf) < 10:
            r._more()
        n, off = struct.unpack("!Q", r.buf[2:10])[0], 10
    while len(r.buf) < off + n:
        r._more()
    payload = r.buf[off:off + n]
    r.buf = r.buf[off + n:]
    return b0 & 0x0f, payload


def expect_close(r, code):
    while True:
        op, p = read_frame(r)
        if op == 0x8:
            got = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
            check(got == code, "close %d, wanted %d (%r)" % (got, code, p))
            return


def test_ws_bad_frames():
    cases = [("unmasked", frame(0x1, b"{}", mask=False), 1002),
             ("bad UTF-8", frame(0x1, b"\xc3\x28"), 1007),
             ("reserved opcode", frame(0x3, b"x"), 1002),
             ("RSV bits", bytes([0xf1]) + frame(0x1, b"x")[1:], 1002),
             # (wslay judges the length when payload starts to arrive)
             ("2^40-byte message", frame(0x1, b"", length=1 << 40) + b"abcd", 1009),
             ("continuation first", frame(0x0, b"x"), 1002),
             ("close code 999", frame(0x8, struct.pack("!H", 999)), 1002),
             # Frame-level violations wslay answers with a close without a code.
             ("fragmented ping", frame(0x9, b"p", fin=False), 1005),
             ("200-byte ping", frame(0x9, b"p" * 200), 1005)]
    for what, data, code in cases:
        s, r = ws_open()
        s.sendall(data)
        try:
            expect_close(r, code)
        except EOFError:
            raise AssertionError("%s: closed without a close frame" % what)
        check(r.closed(), "%s: socket not closed" % what)
        s.close()


def test_ws_fragments_and_control_frames():
    s, r = ws_open()
    msg = json.dumps({"op": "subscribe", "topic": "p1", "offset": 0}).encode()
    parts = [msg[:5], msg[5:17], msg[17:]]
    data = (frame(0x1, parts[0], fin=False) + frame(0x9, b"hello") +
            frame(0x0, parts[1], fin=False) + frame(0x0, parts[2], fin=True))
    # Sent one byte at a time: the server must reassemble across every boundary.
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
    op, p = read_frame(r)
    check(op == 0xA and p == b"hello", (op, p))
    op, p = read_frame(r)
    check(op == 0x1 and json.loads(p)["type"] == "subscribed", p)
    op, p = read_frame(r)
    check(op == 0x1 and json.loads(p)["type"] == "records", p)
    # A client close is answered with the same code, then the server closes.
    s.sendall(frame(0x8, struct.pack("!H", 1000) + b"bye"))
    expect_close(r, 1000)
    check(r.closed())
    s.close()


def test_garbage_never_hurts():
    rnd = random.Random(7)
    t0 = time.time()
    for i in range(150):
        n = rnd.choice([1, 7, 64, 500, 4000, 20000])
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        if i % 3 == 1:
            data = b"GET /" + data  # a request line gone wrong
        elif i % 3 == 2:
            s, r = ws_open()  # garbage as WebSocket frames
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(2)
                while s.recv(65536):
                    pass
            except OSError:
                pass
            s.close()
            continue
        s = connect(2)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()
    check(time.time() - t0 < 60, "too slow")
    st, _, _ = B.request("GET", "/healthz")
    check(st == 200, st)
    check(B.metric("runnel_http_bad_requests_total") > 0)


def test_shutdown_answers_503():
    B.create_topic("p2", 1)
    s = connect(15)
    # A long poll, then a request pipelined behind it.
    s.sendall(http_req("GET", "/topics/p2/partitions/0/records?offset=0&timeout=8000") +
              http_req("GET", "/readyz"))
    time.sleep(0.5)
    t0 = time.time()
    B.proc.send_signal(15)
    r = Reader(s)
    st, _, b = r.response()
    check(st == 200 and json.loads(b) == [] and time.time() - t0 < 3,
          "the long poll was not answered at once: %s %r" % (st, b))
    st, hd, b = r.response()
    check(st == 503 and json.loads(b)["error_code"] == 50301 and hd.get("connection") == "close",
          (st, b))
    check(r.closed())
    s.close()
    rc = B.stop()
    check(rc == 0, "runneld exit status %s" % rc)


def main():
    global B
    B = gwtest.Broker(sys.argv[1])
    try:
        B.start()
        tests = [
            ("pipelined requests answered in order, 200 on one connection", test_pipelining),
            ("pipelined requests split at every byte", test_pipelined_split_at_every_byte),
            ("malformed requests: 400 and close", test_malformed_is_400_and_close),
            ("413 before the body; lingering close; chunked; headers", test_limits_before_the_body),
            ("Expect: 100-continue", test_expect_continue),
            ("HTTP/1.0 with and without keep-alive", test_http10),
            ("WebSocket: bad frames closed with 1002/1007/1009/no code", test_ws_bad_frames),
            ("WebSocket: fragments + ping byte by byte, close echo",
             test_ws_fragments_and_control_frames),
            ("150 seeded garbage inputs leave the broker serving", test_garbage_never_hurts),
            ("shutdown: long poll answered, pipelined request 503, exit 0",
             test_shutdown_answers_503),
        ]
        return gwtest.run(tests, B)
    finally:
        B.cleanup()


if __name__ == "__main__":
    sys.exit(main())
