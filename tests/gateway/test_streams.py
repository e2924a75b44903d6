#!/usr/bin/python3
"""test_streams.py — WebSocket (/ws) and Server-Sent Events with real clients.

    tests/gateway/test_streams.py RUNNELD        (meson passes it; prints TAP)

WebSocket through Debian's python3-websockets: subscribe from every start
position, live delivery, produce with acks, the server-side filter, errors,
ping/pong and the close handshake, and the per-socket byte budget: a client
that stops reading is cut off with close 1008 while a reading client gets
every record. SSE through a plain socket reader: ids are offsets, resume
from Last-Event-ID, heartbeat comments, an error event when the topic goes.

The broker runs with connection.send.budget.bytes=65536, so the stream
budget is 64 KiB and the cut-off test needs only a few MB of records.
"""
import asyncio
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
from gwtest import check  # noqa: E402

try:
    import websockets
    import websockets.exceptions
except ImportError:
    print("1..0 # SKIP python3-websockets is not installed for " + sys.executable)
    sys.exit(0)

B = None


def ws_url():
    return "ws://127.0.0.1:%d/ws" % B.http_port


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_records(ws, n, timeout=10):
    """Collect n records from "records" messages (other messages are returned too)."""
    got, others = [], []
    deadline = time.time() + timeout
    while len(got) < n:
        m = await recv_json(ws, max(0.1, deadline - time.time()))
        if m["type"] == "records":
            got.extend(m["records"])
        else:
            others.append(m)
    return got, others


def arun(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# ---- WebSocket ---------------------------------------------------------------

def test_ws_subscribe_positions():
    B.create_topic("ws1", 2)
    B.produce("ws1", [{"value": {"i": i}} for i in range(5)], partition=1)
    # Strictly after the first batch's millisecond: s@MS means timestamp >= MS,
    # so a batch stamped in the same millisecond as t_mid would match.
    time.sleep(0.005)
    t_mid = int(time.time() * 1000) + 1
    time.sleep(0.02)
    B.produce("ws1", [{"value": {"i": i}} for i in range(5, 8)], partition=1)

    async def go():
        async with websockets.connect(ws_url()) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "partition": 1,
                                      "offset": "beginning", "id": "a"}))
            m = await recv_json(ws)
            check(m == {"type": "subscribed", "topic": "ws1", "partition": 1, "offset": 0,
                        "id": "a"}, m)
            recs, _ = await recv_records(ws, 8)
            check([r["offset"] for r in recs] == list(range(8)), recs)
            check(recs[3]["value"] == {"i": 3} and recs[3]["topic"] == "ws1", recs[3])
            # N, end and s@MS replace the subscription.
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "partition": 1,
                                      "offset": 6}))
            m = await recv_json(ws)
            check(m["type"] == "subscribed" and m["offset"] == 6, m)
            recs, _ = await recv_records(ws, 2)
            check([r["offset"] for r in recs] == [6, 7], recs)
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "partition": 1,
                                      "offset": "s@%d" % t_mid}))
            m = await recv_json(ws)
            check(m["type"] == "subscribed" and m["offset"] == 5, m)
            recs, _ = await recv_records(ws, 3)
            check([r["offset"] for r in recs] == [5, 6, 7], recs)
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "partition": 1,
                                      "offset": "end"}))
            m = await recv_json(ws)
            check(m["type"] == "subscribed" and m["offset"] == 8, m)
            # A time past every record starts at the end.
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "partition": 1,
                                      "offset": "s@%d" % (t_mid + 3600000)}))
            m = await recv_json(ws)
            check(m["type"] == "subscribed" and m["offset"] == 8, m)
    arun(go())


def test_ws_live_delivery_and_produce():
    B.create_topic("ws2", 1)

    async def go():
        async with websockets.connect(ws_url()) as sub, websockets.connect(ws_url()) as pub:
            await sub.send(json.dumps({"op": "subscribe", "topic": "ws2", "offset": "end"}))
            check((await recv_json(sub))["type"] == "subscribed")
            # REST produce shows up on the socket.
            t0 = time.time()
            B.produce("ws2", [{"value": "via-rest"}])
            recs, _ = await recv_records(sub, 1, 2)
            check(recs[0]["value"] == "via-rest" and time.time() - t0 < 1.5, recs)
            # A WebSocket produce: ack with offsets; strings are stored as text.
            await pub.send(json.dumps({"op": "produce", "topic": "ws2", "id": 7,
                                       "records": [{"key": "k", "value": "plain text"},
                                                   {"value": {"json": True}}]}))
            ack = await recv_json(pub)
            check(ack["type"] == "ack" and ack["id"] == 7, ack)
            check([o["offset"] for o in ack["offsets"]] == [1, 2], ack)
            check(all(o["error_code"] is None for o in ack["offsets"]), ack)
            recs, _ = await recv_records(sub, 2, 2)
            check(recs[0]["key"] == "k" and recs[0]["value"] == "plain text", recs)
            check(recs[1]["value"] == {"json": True}, recs)
    arun(go())
    # The text was stored as text, not JSON-quoted: binary rendering shows the bytes.
    st, hd, data = B.request("GET", "/topics/ws2/partitions/0/records?offset=1",
                             headers={"Accept": "application/vnd.kafka.binary.v2+json"})
    check(st == 200 and json.loads(data)[0]["value"] == "cGxhaW4gdGV4dA==", data)


def test_ws_filter():
    B.create_topic("ws3", 1)
    B.produce("ws3", [{"key": "a", "value": "apple pie"}, {"key": "b", "value": "banana"},
                      {"key": "needle", "value": "x"}, {"value": "pineapple"}])

    async def go():
        async with websockets.connect(ws_url()) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws3", "offset": "beginning",
                                      "filter": "apple"}))
            await recv_json(ws)
            recs, _ = await recv_records(ws, 2)
            check([r["offset"] for r in recs] == [0, 3], recs)
            # Keys match too; later records are filtered live.
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws3", "offset": 0,
                                      "filter": "needle"}))
            await recv_json(ws)
            recs, _ = await recv_records(ws, 1)
            check([r["offset"] for r in recs] == [2], recs)
            B.produce("ws3", [{"value": "hay"}, {"value": "a needle!"}])
            recs, _ = await recv_records(ws, 1)
            check([r["offset"] for r in recs] == [5], recs)
            await ws.send(json.dumps({"op": "unsubscribe", "id": 1}))
            m = await recv_json(ws)
            check(m == {"type": "unsubscribed", "id": 1}, m)
            B.produce("ws3", [{"value": "needle after unsubscribe"}])
            try:
                m = await recv_json(ws, 0.5)
                raise AssertionError("got %r after unsubscribe" % m)
            except asyncio.TimeoutError:
                pass
    arun(go())


def test_ws_errors():
    async def go():
        async with websockets.connect(ws_url()) as ws:
            cases = [
                ("not json", 42201),
                (json.dumps([1, 2]), 42201),
                (json.dumps({"op": "dance"}), 42201),
                (json.dumps({"op": "subscribe", "topic": "nope"}), 40401),
                (json.dumps({"op": "subscribe", "topic": "ws1", "partition": 5}), 40402),
                (json.dumps({"op": "subscribe", "topic": "ws1", "offset": "yesterday"}), 42201),
                (json.dumps({"op": "subscribe", "topic": 3}), 42201),
                (json.dumps({"op": "produce", "topic": "nope", "records": [{"value": 1}]}), 40401),
                (json.dumps({"op": "produce", "topic": "ws1", "records": []}), 42201),
                (json.dumps({"op": "produce", "topic": "ws1", "partition": 9,
                             "records": [{"value": 1}]}), 40402),
            ]
            for msg, code in cases:
                await ws.send(msg)
                m = await recv_json(ws)
                check(m["type"] == "error" and m["error_code"] == code, (msg, m))
            await ws.send(b"\x00binary")
            m = await recv_json(ws)
            check(m["type"] == "error", m)
            # Offsets past the end stop the subscription with an error.
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "partition": 1,
                                      "offset": 1000}))
            check((await recv_json(ws))["type"] == "subscribed")
            m = await recv_json(ws)
            check(m["type"] == "error" and m["error_code"] == 42201, m)
            # The socket still works.
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
    arun(go())


def test_ws_close_handshake():
    async def go():
        ws = await websockets.connect(ws_url())
        await ws.send(json.dumps({"op": "subscribe", "topic": "ws1", "offset": "end"}))
        await recv_json(ws)
        await ws.close(code=1000, reason="bye")
        check(ws.close_code == 1000, ws.close_code)
    arun(go())


def test_ws_handshake_errors():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    base = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n" % B.http_port)
    out = gwtest.raw_exchange(B.http_port, (base + "Sec-WebSocket-Version: 13\r\n"
                                            "Sec-WebSocket-Key: %s\r\n\r\n" % key).encode(),
                              until_close=False)
    check(out.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in out, out)
    out = gwtest.raw_exchange(B.http_port, (base + "Sec-WebSocket-Version: 8\r\n"
                                            "Sec-WebSocket-Key: %s\r\n\r\n" % key).encode(),
                              until_close=False)
    check(out.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in out, out)
    out = gwtest.raw_exchange(B.http_port, (base + "Sec-WebSocket-Version: 13\r\n"
                                            "Sec-WebSocket-Key: short\r\n\r\n").encode(),
                              until_close=False)
    check(out.startswith(b"HTTP/1.1 400"), out)
    out = gwtest.raw_exchange(B.http_port, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
                              until_close=False)
    check(out.startswith(b"HTTP/1.1 426"), out)
    # A page from another site may not open a socket.
    out = gwtest.raw_exchange(B.http_port, (base + "Origin: http://evil.example\r\n"
                                            "Sec-WebSocket-Version: 13\r\n"
                                            "Sec-WebSocket-Key: %s\r\n\r\n" % key).encode(),
                              until_close=False)
    check(out.startswith(b"HTTP/1.1 403") and b"40301" in out, out)


def test_ws_budget_cut_off():
    """A client that stops reading is cut off with 1008; a reading one gets every record."""
    B.create_topic("ws4", 1)
    value = "v" * 60000
    n_records, batch = 96, 8
    closes_before = B.metric("runnel_stream_budget_closes_total")

    async def go():
        # The slow client: a tiny receive buffer, a tiny message queue, and it never reads.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", B.http_port))
        slow = await websockets.connect(ws_url(), sock=sock, max_queue=1, read_limit=4096,
                                        max_size=None)
        fast = await websockets.connect(ws_url(), max_size=None)
        for ws in (slow, fast):
            await ws.send(json.dumps({"op": "subscribe", "topic": "ws4", "offset": "end"}))
        check((await recv_json(fast))["type"] == "subscribed")
        # (the slow client's "subscribed" sits in its tiny queue, unread)

        async def read_fast():
            recs, _ = await recv_records(fast, n_records, 40)
            return recs

        reader = asyncio.ensure_future(read_fast())
        for i in range(0, n_records, batch):
            B.produce("ws4", [{"value": value} for _ in range(batch)])
        recs = await reader
        check([r["offset"] for r in recs] == list(range(n_records)), "fast client lost records")
        # The slow one is cut off within the stall time (3 s) plus a tick.
        deadline = time.time() + 10
        while time.time() < deadline:
            if B.metric("runnel_stream_budget_closes_total") > closes_before:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("no budget cut-off")
        # Reading now drains what the kernel held, then the close frame: 1008.
        try:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        except websockets.exceptions.ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1008, "closed with %r" % (e.rcvd,))
        await fast.close()
        # Memory was bounded: the broker is alive and answering.
        st, _, _ = B.request("GET", "/healthz")
        check(st == 200)
    arun(go())


# ---- SSE ----------------------------------------------------------------------

class SSE:
    """A minimal event-stream reader over a raw socket (chunked decoding)."""

    def __init__(self, path, headers=None, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", B.http_port), timeout)
        self.s.settimeout(timeout)
        h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                        % (path, B.http_port, h)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.text = ""
        self.ended = False

    def _more(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError("stream closed")
        self.buf += b

    def _chunk(self):
        while b"\r\n" not in self.buf:
            self._more()
        size_line, rest = self.buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            self._more()
            size_line, rest = self.buf.split(b"\r\n", 1)
        self.buf = rest[size + 2:]
        if size == 0:
            self.ended = True
        return rest[:size].decode()

    def event(self):
        """The next event or comment block, as a dict of fields (comments under ':')."""
        while "\n\n" not in self.text:
            if self.ended:
                raise EOFError("stream ended")
            self.text += self._chunk()
        block, self.text = self.text.split("\n\n", 1)
        ev = {}
        for line in block.split("\n"):
            k, _, v = line.partition(":")
            ev.setdefault(k, v[1:] if v.startswith(" ") else v)
        return ev

    def record_events(self, n):
        out = []
        while len(out) < n:
            ev = self.event()
            if ev.get("event") == "record":
                out.append(ev)
        return out

    def close(self):
        self.s.close()


def test_sse_stream_and_resume():
    B.create_topic("sse1", 2)
    B.produce("sse1", [{"value": i} for i in range(3)], partition=1)
    s = SSE("/topics/sse1/partitions/1/events?offset=beginning")
    check("200 OK" in s.head and "text/event-stream" in s.head and "chunked" in s.head, s.head)
    evs = s.record_events(3)
    check([e["id"] for e in evs] == ["0", "1", "2"], evs)
    check(json.loads(evs[2]["data"])["value"] == 2, evs)
    B.produce("sse1", [{"value": "live"}], partition=1)
    ev = s.record_events(1)[0]
    check(ev["id"] == "3" and json.loads(ev["data"])["value"] == "live", ev)
    s.close()
    # Reconnect as EventSource does: Last-Event-ID 1 resumes at 2, nothing lost or repeated.
    B.produce("sse1", [{"value": "while away"}], partition=1)
    s = SSE("/topics/sse1/partitions/1/events", {"Last-Event-ID": "1"})
    evs = s.record_events(3)
    check([e["id"] for e in evs] == ["2", "3", "4"], evs)
    s.close()
    # ?offset=N, and the filter.
    s = SSE("/topics/sse1/partitions/1/events?offset=3&filter=away")
    evs = s.record_events(1)
    check(evs[0]["id"] == "4", evs)
    s.close()


def test_sse_errors():
    for path, status, code in [("/topics/nope/partitions/0/events", 404, 40401),
                               ("/topics/sse1/partitions/9/events", 404, 40402),
                               ("/topics/sse1/partitions/0/events?offset=soon", 422, 42201)]:
        st, j = B.json("GET", path)
        check(st == status and j["error_code"] == code, (path, st, j))
    st, j = B.json("GET", "/topics/sse1/partitions/0/events", headers={"Last-Event-ID": "x"})
    check(st == 422, (st, j))
    # The topic goes away under an open stream: an error event, then the body ends.
    B.create_topic("sse2", 1)
    s = SSE("/topics/sse2/partitions/0/events?offset=end")
    ev = s.event()
    check(ev.get("retry") == "2000", ev)
    st, _, _ = B.request("DELETE", "/topics/sse2")
    check(st == 204, st)
    deadline = time.time() + 10
    ev = {}
    while time.time() < deadline and ev.get("event") != "error":
        ev = s.event()
    check(ev.get("event") == "error" and "error_code" in json.loads(ev["data"]), ev)
    try:
        s.event()
        raise AssertionError("stream did not end")
    except EOFError:
        pass
    s.close()


def test_sse_heartbeat():
    B.create_topic("sse3", 1)
    s = SSE("/topics/sse3/partitions/0/events", timeout=20)
    t0 = time.time()
    ev = s.event()  # retry + start comment
    ev = s.event()
    check(ev.get("") == "heartbeat", ev)  # a comment line: empty field name
    check(14 <= time.time() - t0 <= 18, time.time() - t0)
    s.close()


def test_clean_stop():
    st = B.stop()
    check(st == 0, "runneld exit status %s" % st)


def main():
    global B
    B = gwtest.Broker(sys.argv[1], ["--override", "connection.send.budget.bytes=65536"])
    try:
        B.start()
        tests = [
            ("ws: subscribe from beginning, N, s@MS, end", test_ws_subscribe_positions),
            ("ws: live delivery < 1 s, produce with acks", test_ws_live_delivery_and_produce),
            ("ws: server-side filter, unsubscribe", test_ws_filter),
            ("ws: errors keep the socket usable; ping/pong", test_ws_errors),
            ("ws: close handshake", test_ws_close_handshake),
            ("ws: handshake 101/400/403/426", test_ws_handshake_errors),
            ("ws: stalled client cut off with 1008, others get everything",
             test_ws_budget_cut_off),
            ("sse: ids are offsets, live, resume from Last-Event-ID", test_sse_stream_and_resume),
            ("sse: 404/422, error event when the topic is deleted", test_sse_errors),
            ("sse: heartbeat comment every 15 s", test_sse_heartbeat),
            ("runneld stops cleanly (SIGTERM, exit 0) with streams open", test_clean_stop),
        ]
        return gwtest.run(tests, B)
    finally:
        B.cleanup()


if __name__ == "__main__":
    sys.exit(main())
