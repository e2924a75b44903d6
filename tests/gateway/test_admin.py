#!/usr/bin/python3
"""test_admin.py — the REST routes behind the console's admin pages (admin_routes.c).

    tests/gateway/test_admin.py RUNNELD        (meson passes it; prints TAP)

GET /brokers; GET /cluster (the quorum, brokers, partition health and every
topic's partitions with leader, replicas, ISR and flags); GET /topics/{t}/configs with each config marked default or
overridden (a topic with no override has none: the console's old "8 config
overrides"); PUT and DELETE of one config; POST /groups/{g}/reset as
`runnel group reset` (a preview changes nothing, execute commits exactly the
previewed plan, offsets are clamped into the log, a time resolves through
ListOffsets, a group with an active member is refused with 409); DELETE
/groups/{g}; and the errors of each.
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402
from gwtest import check  # noqa: E402

B = None
V2 = {"Content-Type": "application/vnd.kafka.v2+json"}


def committed(group):
    st, j = B.json("GET", "/groups/" + group)
    check(st == 200, (st, j))
    return {(p["topic"], p["partition"]): p["committed_offset"] for p in j["partitions"]}


def test_brokers():
    B.create_topic("b1", 3)
    st, j = B.json("GET", "/brokers")
    check(st == 200, (st, j))
    check(j["controller_id"] == 1 and j["topics"] >= 1, j)
    check(len(j["brokers"]) == 1, j)
    b = j["brokers"][0]
    check(b["node_id"] == 1 and b["controller"] is True, b)
    check(b["host"] == "127.0.0.1" and b["port"] == B.port, b)
    check(b["leaders"] >= 3 and b["partitions"] >= 3, b)
    st, _, _ = B.request("POST", "/brokers", b"{}")
    check(st == 405, st)


def test_cluster():
    B.create_topic("c3", 3)
    st, j = B.json("GET", "/cluster")
    check(st == 200, (st, j))
    # A single node: itself, leading, the only broker, nothing unhealthy.
    check(j["node_id"] == 1 and j["controller_id"] == 1 and j["role"] == "leader", j)
    check(j["clustered"] is False and j["voters"] == [], j)
    check(len(j["brokers"]) == 1 and j["brokers"][0]["id"] == 1, j)
    check(j["brokers"][0]["fenced"] is False and j["brokers"][0]["controller"] is True, j)
    check(j["brokers"][0]["endpoint"] == "127.0.0.1:%d" % B.port, j)
    check(j["under_replicated_count"] == 0 and j["offline_count"] == 0, j)
    check(j["under_replicated"] == [] and j["offline"] == [], j)
    topics = {t["name"]: t for t in j["topics"]}
    check("c3" in topics and topics["c3"]["internal"] is False, topics.keys())
    parts = topics["c3"]["partitions"]
    check([p["partition"] for p in parts] == [0, 1, 2], parts)
    for p in parts:
        check(p["leader"] == 1 and p["replicas"] == [1] and p["isr"] == [1], p)
        check(p["under_replicated"] is False and p["offline"] is False, p)
    # Counts are of the whole image, and every partition is listed here.
    n = sum(len(t["partitions"]) for t in j["topics"])
    check(j["partitions"] == n and j["partitions_listed"] == n, (j["partitions"], n))
    check(all(t["partition_count"] == len(t["partitions"]) for t in j["topics"]), j["topics"])
    st, _, _ = B.request("DELETE", "/cluster")
    check(st == 405, st)
    # /metrics counts the same partitions; nothing unhealthy, no ISR change,
    # no follower lag on a single node.
    st, _, body = B.request("GET", "/metrics")
    check(st == 200, st)
    m = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            m[k] = v
    want = {"runnel_cluster_partitions": str(n), "runnel_cluster_offline_partitions": "0",
            "runnel_cluster_under_replicated_partitions": "0",
            "runnel_under_replicated_partitions": "0", "runnel_isr_shrinks_total": "0",
            "runnel_isr_expands_total": "0"}
    check(all(m.get(k) == v for k, v in want.items()),
          {k: m.get(k) for k in want})
    check(not any(k.startswith("runnel_partition_replica_lag{") for k in m), m.keys())


def test_client_leaves_mid_cluster():
    # Two requests in flight per GET /cluster: a client that closes at once
    # must leave no job behind (the sanitizer build checks leaks at the stop).
    for i in range(40):
        s = socket.create_connection(("127.0.0.1", B.http_port), 5)
        s.sendall(b"GET /cluster HTTP/1.1\r\nHost: x\r\n\r\n")
        if i % 2:
            time.sleep(0.001 * (i % 5))
        s.close()
    st, j = B.json("GET", "/cluster")
    check(st == 200 and j["node_id"] == 1, (st, j))


def test_configs_mark_overrides():
    B.create_topic("plain", 1)
    st, j = B.json("POST", "/topics", {"name": "tuned", "partitions": 1,
                                       "configs": {"retention.ms": "86400000"}})
    check(st == 201, (st, j))
    st, plain = B.json("GET", "/topics/plain/configs")
    check(st == 200, (st, plain))
    check(len(plain) >= 8 and all(c["is_default"] for c in plain),
          "a topic created without configs has overrides: %s" % plain)
    st, tuned = B.json("GET", "/topics/tuned/configs")
    check(st == 200, (st, tuned))
    over = {c["name"]: c["value"] for c in tuned if not c["is_default"]}
    check(over == {"retention.ms": "86400000"}, tuned)
    st, j = B.json("GET", "/topics/nope/configs")
    check(st == 404 and j["error_code"] == 40401 and "nope" in j["message"], (st, j))


def test_alter_one_config():
    st, _, _ = B.request("PUT", "/topics/plain/configs/segment.ms", {"value": "3600000"})
    check(st == 204, st)
    st, cfg = B.json("GET", "/topics/plain/configs")
    seg = [c for c in cfg if c["name"] == "segment.ms"][0]
    check(seg == {"name": "segment.ms", "value": "3600000", "is_default": False}, seg)
    st, _, _ = B.request("PUT", "/topics/plain/configs/retention.ms", {"value": 5000})
    check(st == 204, st)
    st, _, _ = B.request("DELETE", "/topics/plain/configs/segment.ms")
    check(st == 204, st)
    st, _, _ = B.request("DELETE", "/topics/plain/configs/retention.ms")
    check(st == 204, st)
    st, cfg = B.json("GET", "/topics/plain/configs")
    check(all(c["is_default"] for c in cfg), cfg)
    st, j = B.json("PUT", "/topics/plain/configs/no.such.setting", {"value": "1"})
    check(st == 422 and "no.such.setting" in j["message"], (st, j))
    st, j = B.json("PUT", "/topics/plain/configs/retention.ms", {"value": "soon"})
    check(st == 422, (st, j))
    st, j = B.json("PUT", "/topics/plain/configs/retention.ms", {"valu": "1"})
    check(st == 422 and j["error_code"] == 42201, (st, j))
    st, j = B.json("PUT", "/topics/nope/configs/retention.ms", {"value": "1"})
    check(st == 404 and j["error_code"] == 40401, (st, j))
    st, _, _ = B.request("POST", "/topics/plain/configs", b"{}")
    check(st == 405, st)


def seed_group():
    """Topic r (2 partitions, 10 + 4 records) and group g committed at 6 / 2."""
    B.create_topic("r", 2)
    B.produce("r", [{"value": i} for i in range(10)], partition=0)
    # t_mid must be later than partition 0's timestamps, not the same millisecond:
    # a reset to a time finds the first record at or after it (on a fast machine
    # the produce and this line share a millisecond, and partition 0 resets to 0).
    time.sleep(0.05)
    t_mid = int(time.time() * 1000)
    time.sleep(0.05)
    B.produce("r", [{"value": i} for i in range(4)], partition=1)
    # An admin commit through a reset to a fixed offset per partition is what we test;
    # seed with a REST Proxy instance that commits and leaves.
    g = "/consumers/g/instances/a"
    st, j = B.json("POST", "/consumers/g", {"name": "a", "format": "json",
                                            "auto.commit.enable": "false"}, V2)
    check(st == 200, (st, j))
    st, _, _ = B.request("POST", g + "/subscription", {"topics": ["r"]})
    check(st == 204, st)
    for _ in range(100):
        st, j = B.json("GET", g + "/assignments")
        if len(j["partitions"]) == 2:
            break
        time.sleep(0.05)
    st, _, body = B.request("POST", g + "/offsets", {"offsets": [
        {"topic": "r", "partition": 0, "offset": 5}, {"topic": "r", "partition": 1, "offset": 1}]})
    check(st in (200, 204), (st, body))
    return g, t_mid


def test_reset_preview_execute():
    inst, t_mid = seed_group()
    before = committed("g")
    check(before == {("r", 0): 6, ("r", 1): 2} or before == {("r", 0): 5, ("r", 1): 1}, before)
    # A member is active: refused, as `runnel group reset` refuses.
    st, j = B.json("POST", "/groups/g/reset", {"topics": ["r"], "to": "earliest"})
    check(st == 409 and "active member" in j["message"], (st, j))
    st, j = B.json("DELETE", "/groups/g")
    check(st == 409, (st, j))
    st, _, _ = B.request("DELETE", inst)
    check(st == 204, st)
    for _ in range(100):
        st, j = B.json("GET", "/groups/g")
        if not j["members"]:
            break
        time.sleep(0.05)
    # Preview: the plan, nothing committed.
    st, j = B.json("POST", "/groups/g/reset", {"topics": ["r"], "to": "earliest"})
    check(st == 200 and j["executed"] is False, (st, j))
    plan = {(o["topic"], o["partition"]): (o["current_offset"], o["new_offset"])
            for o in j["offsets"]}
    check(plan == {("r", 0): (before[("r", 0)], 0), ("r", 1): (before[("r", 1)], 0)}, plan)
    check(committed("g") == before, "a preview committed")
    # To an offset: kept within each partition's log (partition 1 ends at 4).
    st, j = B.json("POST", "/groups/g/reset",
                   {"topic": "r", "to": "offset", "offset": 7, "execute": True})
    check(st == 200 and j["executed"] is True, (st, j))
    got = {o["partition"]: (o["new_offset"], o["clamped"]) for o in j["offsets"]}
    check(got == {0: (7, False), 1: (4, True)}, got)
    check(committed("g") == {("r", 0): 7, ("r", 1): 4}, committed("g"))
    # To a time: partition 0's records are all older (the end), partition 1's all newer.
    st, j = B.json("POST", "/groups/g/reset",
                   {"topics": ["r"], "to": "datetime", "timestamp": t_mid, "execute": True})
    check(st == 200, (st, j))
    got = {o["partition"]: o["new_offset"] for o in j["offsets"]}
    check(got == {0: 10, 1: 0}, got)
    check(committed("g") == {("r", 0): 10, ("r", 1): 0}, committed("g"))
    st, j = B.json("POST", "/groups/g/reset", {"topics": ["r"], "to": "latest", "execute": True})
    check(st == 200 and committed("g") == {("r", 0): 10, ("r", 1): 4}, (st, j))


def test_reset_errors():
    for body, want in [
        ({"topics": ["r"], "to": "sideways"}, 422),
        ({"topics": ["r"], "to": "offset"}, 422),
        ({"topics": ["r"], "to": "offset", "offset": -1}, 422),
        ({"topics": ["r"], "to": "datetime", "timestamp": "yesterday"}, 422),
        ({"topics": [], "to": "earliest"}, 422),
        ({"topics": "r", "to": "earliest"}, 422),
        ({"topics": ["r"], "to": "earliest", "execute": "yes"}, 422),
        ([1, 2], 422),
        ({"topics": ["no-such-topic"], "to": "earliest"}, 404),
        ({"topic": "no-such-topic", "to": "earliest"}, 404),
    ]:
        st, j = B.json("POST", "/groups/g/reset", body)
        check(st == want, (body, st, j))
    st, j = B.json("POST", "/groups/g/reset", {"topic": "no-such-topic", "to": "earliest"})
    check("no-such-topic" in j["message"], j)
    st, _, _ = B.request("POST", "/groups/g/reset", b"{not json")
    check(st == 400, st)
    st, _, _ = B.request("GET", "/groups/g/reset")
    check(st == 405, st)
    st, j = B.json("POST", "/groups/" + "x" * 300 + "/reset", {"topics": ["r"], "to": "earliest"})
    check(st == 422, (st, j))


def test_reset_new_group_then_delete():
    # A group that never committed is reset into existence (as Kafka's tool does).
    st, j = B.json("POST", "/groups/fresh/reset",
                   {"topics": ["r"], "to": "earliest", "execute": True})
    check(st == 200 and all(o["current_offset"] == -1 for o in j["offsets"]), (st, j))
    check(committed("fresh") == {("r", 0): 0, ("r", 1): 0}, committed("fresh"))
    st, _, _ = B.request("DELETE", "/groups/fresh")
    check(st == 204, st)
    st, j = B.json("DELETE", "/groups/fresh")
    check(st == 404 and j["error_code"] == 40404, (st, j))


def test_client_leaves_mid_reset():
    # The reset runs in steps (NOPs between requests): a client that closes at any
    # point must leave no job behind (the sanitizer build checks leaks at the stop).
    body = json.dumps({"topics": ["r"], "to": "datetime", "timestamp": 0, "execute": True})
    req = ("POST /groups/gone/reset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode()
    for i in range(40):
        s = socket.create_connection(("127.0.0.1", B.http_port), 5)
        s.sendall(req)
        if i % 2:
            time.sleep(0.001 * (i % 5))
        s.close()
    st, j = B.json("GET", "/brokers")
    check(st == 200, (st, j))
    st, j = B.json("POST", "/groups/gone/reset", {"topics": ["r"], "to": "earliest"})
    check(st == 200 and len(j["offsets"]) == 2, (st, j))


def test_clean_stop():
    st = B.stop()
    check(st == 0, "runneld exit status %s" % st)


def main():
    global B
    B = gwtest.Broker(sys.argv[1])
    try:
        B.start()
        tests = [
            ("GET /brokers: the broker, controller, replicas and leaders", test_brokers),
            ("GET /cluster: quorum, brokers, health counts, partitions with leader/replicas/ISR",
             test_cluster),
            ("a client that leaves during GET /cluster leaves nothing behind",
             test_client_leaves_mid_cluster),
            ("GET /topics/{t}/configs marks overrides; none for a plain topic",
             test_configs_mark_overrides),
            ("PUT/DELETE /topics/{t}/configs/{name}: set and back to default",
             test_alter_one_config),
            ("group reset: 409 with members, preview, execute, clamp, datetime, latest",
             test_reset_preview_execute),
            ("group reset: bad requests answer 4xx with a message", test_reset_errors),
            ("group reset of a new group; DELETE /groups/{g}", test_reset_new_group_then_delete),
            ("a client that leaves in the middle of a reset leaves nothing behind",
             test_client_leaves_mid_reset),
            ("runneld stops cleanly (SIGTERM, exit 0)", test_clean_stop),
        ]
        return gwtest.run(tests, B)
    finally:
        B.cleanup()


if __name__ == "__main__":
    sys.exit(main())
