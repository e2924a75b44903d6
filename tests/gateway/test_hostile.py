#!/usr/bin/python3
"""test_hostile.py — HTTP input that once crashed runneld (issue 11, item 1).

    tests/gateway/test_hostile.py RUNNELD        (meson passes it; prints TAP)

The 64-byte request found by fuzzing (a chunked POST with an empty body and
two trailer fields) made libhttp-parser call the header callbacks after the
headers had been finalised: the broker segfaulted on each try. Here it is
sent to a live broker, alone, again and again on one connection, pipelined,
and with trailers over 1 KB and over the header limit; after each the broker
must still answer /healthz (and exit 0 on SIGTERM: a sanitizer report in the
ASan build fails the script).
"""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
from gwtest import Reader, check  # noqa: E402

B = None

REQ64 = (b"POST / HTTP/1.1\r\n"
         b"Transfer-Encoding: chunked\r\n"
         b"\r\n"
         b"0\r\n"
         b"A: 1\r\n"
         b"B: 2\r\n"
         b"\r\n")
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def connect(timeout=5):
    s = socket.create_connection(("127.0.0.1", B.http_port), timeout)
    s.settimeout(timeout)
    return s


def alive():
    check(B.proc.poll() is None, "runneld died (status %s)" % B.proc.poll())
    st, _, b = B.request("GET", "/healthz", timeout=5)
    check(st == 200 and json.loads(b) == {"status": "ok"}, (st, b))


def test_64_bytes():
    check(len(REQ64) == 64)
    for _ in range(3):
        s = connect()
        s.sendall(REQ64)
        r = Reader(s)
        st, _, b = r.response()
        check(st == 404 and json.loads(b)["error_code"] == 40400, (st, b))
        # The same connection goes on serving.
        s.sendall(HEALTHZ)
        st, _, _ = r.response()
        check(st == 200, st)
        s.close()
        alive()


def test_64_bytes_pipelined():
    s = connect()
    s.sendall(REQ64 * 50 + HEALTHZ)
    r = Reader(s)
    for i in range(50):
        st, _, _ = r.response()
        check(st == 404, (i, st))
    check(r.response()[0] == 200)
    s.close()
    alive()


def chunked_post(path, body, trailer):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/vnd.kafka.json.v2+json\r\n\r\n" % path.encode() +
            b"%x\r\n%s\r\n0\r\n" % (len(body), body) + trailer + b"\r\n")


def test_big_trailer():
    B.create_topic("tr", 1)
    body = json.dumps({"records": [{"value": "kept"}]}).encode()
    trailer = b"X-Big: " + b"b" * 12000 + b"\r\nX-Small: 1\r\n"
    s = connect()
    s.sendall(chunked_post("/topics/tr", body, trailer) + HEALTHZ)
    r = Reader(s)
    st, _, b = r.response()
    check(st == 200 and json.loads(b)["offsets"][0]["offset"] == 0, (st, b))
    check(r.response()[0] == 200)
    s.close()
    st, j = B.json("GET", "/topics/tr/partitions/0/records?offset=0",
                   headers={"Accept": "application/vnd.kafka.json.v2+json"})
    check(st == 200 and [x["value"] for x in j] == ["kept"], (st, j))
    alive()


def test_trailer_over_the_limit():
    s = connect()
    s.sendall(chunked_post("/topics/tr", b"{}", b"X-Huge: " + b"h" * 20000 + b"\r\n"))
    r = Reader(s)
    st, hd, b = r.response()
    check(st == 413 and hd.get("connection") == "close", (st, hd, b))
    check(r.closed(), "not closed after 413")
    s.close()
    alive()


def main():
    global B
    B = gwtest.Broker(sys.argv[1])
    try:
        B.start()
        tests = [
            ("issue 11's 64-byte request: 404, connection and broker go on",
             test_64_bytes),
            ("fifty of them pipelined, then /healthz", test_64_bytes_pipelined),
            ("a 12 KB trailer: the request is intact, the record stored", test_big_trailer),
            ("a trailer past the header limit: 413 and close", test_trailer_over_the_limit),
            ("SIGTERM: exit 0", lambda: check(B.stop() == 0, "runneld did not exit 0")),
        ]
        return gwtest.run(tests, B)
    finally:
        B.cleanup()


if __name__ == "__main__":
    sys.exit(main())
