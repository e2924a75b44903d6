#!/usr/bin/python3
"""test_input.py — numbers and bodies as a hostile client sends them (issue 11).

    tests/gateway/test_input.py RUNNELD        (meson passes it; prints TAP)

Every number the gateway reads from JSON or a query string is an integer in
its range or a 422 that says so — never a value cut to fit: a WebSocket
"partition": 4294967296 once subscribed to partition 0. Each place is tried
with too big, negative, fractional, string and bool values: WebSocket
subscribe and produce, REST produce (records[].partition), topic creation
(partitions, replication_factor), consumer offsets and positions, and the
query strings ?offset= ?max_bytes= ?timeout= and Last-Event-ID. An empty body
and a NUL in a body each get one plain sentence.
"""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
from gwtest import check  # noqa: E402

try:
    import websockets
except ImportError:
    print("1..0 # SKIP python3-websockets is not installed for " + sys.executable)
    sys.exit(0)

B = None
BAD_NUMBERS = ["4294967296", "2147483648", "-1", "1.5", "\"1\"", "true", "false", "1e3",
               "9223372036854775807"]
JSON_CT = {"Content-Type": "application/vnd.kafka.json.v2+json"}


def expect_422(st, j, field, what):
    check(st == 422, "%s: status %s %s" % (what, st, j))
    check(isinstance(j, dict) and j.get("error_code") == 42201, "%s: %s" % (what, j))
    check(field in j["message"] and "must be an integer in [" in j["message"],
          "%s: message %r" % (what, j["message"]))


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def test_ws_numbers():
    async def run():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % B.http_port) as ws:
            for bad in BAD_NUMBERS:
                await ws.send('{"op":"subscribe","topic":"nums","partition":%s,"id":1}' % bad)
                m = await recv_json(ws)
                check(m["type"] == "error" and m["error_code"] == 42201,
                      "partition %s: %s" % (bad, m))
                check("\"partition\" must be an integer in [0, 2147483647]" in m["message"],
                      "partition %s: %s" % (bad, m["message"]))
                await ws.send('{"op":"produce","topic":"nums","partition":%s,'
                              '"records":[{"value":"x"}]}' % bad)
                m = await recv_json(ws)
                check(m["type"] == "error" and "must be an integer" in m["message"],
                      "produce partition %s: %s" % (bad, m))
            for bad in ["-1", "1.5", "1e3"]:
                await ws.send('{"op":"subscribe","topic":"nums","offset":%s}' % bad)
                m = await recv_json(ws)
                check(m["type"] == "error" and "\"offset\" must be an integer" in m["message"],
                      "offset %s: %s" % (bad, m))
            # Nothing was produced by the refused messages; a good one still works.
            await ws.send('{"op":"subscribe","topic":"nums","partition":1,"offset":"beginning"}')
            m = await recv_json(ws)
            check(m["type"] == "subscribed" and m["partition"] == 1, str(m))
    asyncio.run(asyncio.wait_for(run(), 60))
    st, j = B.json("GET", "/topics/nums/partitions/0/offsets")
    check(st == 200 and j["end_offset"] == 0, "partition 0 got records: %s" % j)


def test_rest_produce_partition():
    for bad in BAD_NUMBERS:
        st, _, data = B.request("POST", "/topics/nums",
                                ('{"records":[{"value":1,"partition":%s}]}' % bad).encode(),
                                JSON_CT)
        expect_422(st, json.loads(data), "records[0].partition", "records[].partition " + bad)
    st, j = B.json("POST", "/topics/nums", {"records": [{"value": 1, "partition": 1}]}, JSON_CT)
    check(st == 200 and j["offsets"][0]["partition"] == 1, str(j))
    st, j = B.json("GET", "/topics/nums/partitions/0/offsets")
    check(st == 200 and j["end_offset"] == 0, "partition 0 got records: %s" % j)


def test_create_topic_numbers():
    for field in ("partitions", "replication_factor"):
        for bad in [b for b in BAD_NUMBERS if b != "-1"] + ["-2"]:  # -1: the default
            st, _, data = B.request("POST", "/topics",
                                    ('{"name":"t_%s","%s":%s}' % (field, field, bad)).encode(),
                                    {"Content-Type": "application/json"})
            expect_422(st, json.loads(data), field, "%s %s" % (field, bad))
    st, j = B.json("GET", "/topics")
    check(not [t for t in j if t.startswith("t_")], "a topic was created: %s" % j)


def test_query_numbers():
    for q in ("offset", "max_bytes", "timeout"):
        for bad in ["-5", "1.5", "abc", "%2B1", "%201", "99999999999999999999", "0x10", ""]:
            query = "offset=%s" % bad if q == "offset" else "offset=0&%s=%s" % (q, bad)
            st, j = B.json("GET", "/topics/nums/partitions/1/records?" + query)
            expect_422(st, j, q, "?" + query)
    st, j = B.json("GET", "/topics/nums/partitions/1/records?offset=0&max_bytes=100000")
    check(st == 200 and len(j) == 1, str(j))
    # Last-Event-ID of an event stream.
    st, _, data = B.request("GET", "/topics/nums/partitions/1/events",
                            headers={"Last-Event-ID": "1.5"})
    check(st == 422 and b"Last-Event-ID must be an integer" in data, "%s %s" % (st, data))


def test_consumer_numbers():
    g = "/consumers/numg"
    i = g + "/instances/a"
    st, j = B.json("POST", g, {"name": "a", "format": "json", "auto.offset.reset": "earliest"})
    check(st == 200, str(j))
    st, j = B.json("POST", i + "/subscription", {"topics": ["nums"]})
    check(st == 204, str(j))
    for bad in BAD_NUMBERS:
        body = '{"offsets":[{"topic":"nums","partition":%s,"offset":0}]}' % bad
        st, _, data = B.request("POST", i + "/offsets", body.encode(),
                                {"Content-Type": "application/json"})
        expect_422(st, json.loads(data), "\"partition\"", "offsets partition " + bad)
        if bad in ("-1", "1.5", "\"1\"", "true", "false", "1e3"):
            body = '{"offsets":[{"topic":"nums","partition":0,"offset":%s}]}' % bad
            st, _, data = B.request("POST", i + "/positions", body.encode(),
                                    {"Content-Type": "application/json"})
            expect_422(st, json.loads(data), "\"offset\"", "positions offset " + bad)
    for q in ("timeout", "max_bytes"):
        for bad in ["-1", "1.5", "abc", "99999999999999999999"]:
            st, j = B.json("GET", i + "/records?%s=%s" % (q, bad))
            expect_422(st, j, q, "records ?%s=%s" % (q, bad))
    st, _, _ = B.request("DELETE", i)
    check(st == 204)


def test_body_messages():
    ct = {"Content-Type": "application/json"}
    for path in ("/topics", "/topics/nums"):
        st, j = B.json("POST", path, b"", ct)
        check(st == 400, "%s: %s %s" % (path, st, j))
        check(j["message"] == "request body is empty; expected a JSON object", j["message"])
    st, j = B.json("POST", "/topics", b'{"name":"a\x00b"}', ct)
    check(st == 400 and j["message"] ==
          "request body is not valid JSON: NUL byte at position 10", str(j))
    st, j = B.json("POST", "/topics", b'{"name":"a\\u0000b"}', ct)
    check(st == 400 and "a string holds \\u0000 (NUL)" in j["message"] and
          "JSON_ALLOW_NUL" not in j["message"], str(j))
    st, j = B.json("POST", "/topics", b'{"name":', ct)
    check(st == 400 and j["message"].startswith("request body is not valid JSON: ") and
          "line -1" not in j["message"], str(j))


def test_clean_stop():
    st = B.stop()
    check(st == 0, "runneld exit status %s" % st)


def main():
    global B
    B = gwtest.Broker(sys.argv[1])
    try:
        B.start()
        B.create_topic("nums", 2)
        tests = [
            ("ws: partition/offset too big, negative, fractional, string, bool", test_ws_numbers),
            ("rest: records[].partition out of range is 422, not partition 0",
             test_rest_produce_partition),
            ("rest: topic partitions/replication_factor bounded", test_create_topic_numbers),
            ("rest: ?offset= ?max_bytes= ?timeout= Last-Event-ID strict", test_query_numbers),
            ("rest: consumer offsets, positions, poll params bounded", test_consumer_numbers),
            ("rest: empty body and NUL get one sentence", test_body_messages),
            ("runneld stops cleanly", test_clean_stop),
        ]
        return gwtest.run(tests, B)
    finally:
        B.cleanup()


if __name__ == "__main__":
    sys.exit(main())
