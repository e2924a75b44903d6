"""kafka_capture.py — checks of a packet capture of runneld's Kafka listener,
for tests/cli/test_kafka_tshark.sh:

    kafka_capture.py CHECK CAPTURE KPORT

CHECK is one of
  malformed  tshark's Kafka dissector flags no packet as malformed, except
             where it misreads well-formed frames (DEFECTS below: Debian 12's
             Wireshark 4.0 reads a non-flexible BYTES length as an int16, so
             it cannot read JoinGroup/SyncGroup from any client or broker, as
             the clients' own flagged requests show; and it reads DeleteTopics
             v1-v2 answers without their throttle_time_ms); the `walk` check
             reads those answers by Kafka's schema instead.
  decoded    tshark decodes a request of every API the clients were made to
             send, and an answer to each kind.
  walk       an independent reading of every TCP stream (payloads joined per
             direction): each side is a run of whole size-prefixed frames,
             answers come in the order of their requests with known
             correlation ids, and every JoinGroup, SyncGroup and DeleteTopics
             answer reads to its last byte by Kafka's schema (JoinGroup v0-5,
             SyncGroup v0-3, DeleteTopics v1-3: what runneld advertises).
Prints what it found; exits 1 with the reason when the check fails.
"""
import struct
import subprocess
import sys

# The APIs the test makes the clients send (by key): ApiVersions, Metadata,
# Produce, Fetch, ListOffsets, FindCoordinator, JoinGroup, SyncGroup,
# OffsetCommit, OffsetFetch, LeaveGroup, InitProducerId, CreateTopics,
# DeleteTopics, DescribeConfigs, CreatePartitions.
WANT = {18, 3, 0, 1, 2, 10, 11, 14, 8, 9, 13, 22, 19, 20, 32, 37}
NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
         9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
         13: "LeaveGroup", 14: "SyncGroup", 18: "ApiVersions", 19: "CreateTopics",
         20: "DeleteTopics", 22: "InitProducerId", 32: "DescribeConfigs",
         37: "CreatePartitions"}


# Where Wireshark 4.0's Kafka dissector misreads well-formed frames, by API
# key: (which frames: side "req"/"resp" and version -> bool, why, evidence
# needed that it is the dissector: "client" = some request a client wrote
# is flagged the same way).
DEFECTS = {
    11: (lambda side, ver: True, "reads the non-flexible BYTES length of the protocol metadata "
         "as an int16 (Kafka: int32)", "client"),
    14: (lambda side, ver: True, "reads the non-flexible BYTES length of the member assignment "
         "as an int16 (Kafka: int32)", "client"),
    20: (lambda side, ver: side == "resp" and ver in (1, 2), "reads throttle_time_ms only from "
         "v3 (Kafka's DeleteTopicsResponse has it from v1)", None),
}


def tshark(cap, port, *args):
    p = subprocess.run(["tshark", "-r", cap, "-d", "tcp.port==%s,kafka" % port] + list(args),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit("tshark %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr[-500:]))
    return [l.split("\t") for l in p.stdout.splitlines() if l.strip()]


def keys(field):
    return {int(k) for k in field.split(",") if k}


def check_malformed(cap, port):
    rows = tshark(cap, port, "-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number",
                  "-e", "kafka.request_key", "-e", "kafka.response_key", "-e",
                  "kafka.request.version", "-e", "kafka.response.version")
    by_api = {}
    for frame, req, resp, req_ver, resp_ver in ((r + [""] * 5)[:5] for r in rows):
        if not req and not resp:
            sys.exit("frame %s is malformed and not even a Kafka frame to tshark" % frame)
        side, key, ver = ("req", req, req_ver) if req else ("resp", resp, resp_ver)
        for k in keys(key):
            by_api.setdefault(k, []).append((frame, side, int(ver.split(",")[0] or -1)))
    bad = []
    for k, frames in sorted(by_api.items()):
        name = NAMES.get(k, str(k))
        d = DEFECTS.get(k)
        if d and all(d[0](side, ver) for _, side, ver in frames) and \
                (d[2] != "client" or any(side == "req" for _, side, _ in frames)):
            print("%s: %d frames flagged (%d client requests): the dissector %s; the walk check "
                  "reads these answers" % (name, len(frames),
                                           sum(side == "req" for _, side, _ in frames), d[1]))
            continue
        bad.append("%s (%d): malformed frames %s" % (
            name, k, ", ".join("%s (%s v%d)" % f for f in frames)))
    if bad:
        sys.exit("; ".join(bad))
    print("no other malformed frame in %d flagged" % len(rows))


def check_decoded(cap, port):
    rows = tshark(cap, port, "-Y", "kafka", "-T", "fields", "-e", "kafka.request_key",
                  "-e", "kafka.response_key")
    req, resp = set(), set()
    for r in rows:
        r = (r + ["", ""])[:2]
        req |= keys(r[0])
        resp |= keys(r[1])
    print("requests decoded: %s" % ", ".join(NAMES.get(k, str(k)) for k in sorted(req)))
    print("answers decoded: %s" % ", ".join(NAMES.get(k, str(k)) for k in sorted(resp)))
    if WANT - req:
        sys.exit("no request decoded for %s" % sorted(WANT - req))
    if WANT - resp:
        sys.exit("no answer decoded for %s" % sorted(WANT - resp))


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if n < 0 or self.i + n > len(self.b):
            raise ValueError("%d bytes wanted at %d of %d" % (n, self.i, len(self.b)))
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self, nullable=False):
        n = self.i16()
        if n == -1 and nullable:
            return None
        return self.take(n).decode()

    def bytes_(self):
        n = self.i32()
        return self.take(n) if n != -1 else None


def join_group_response(r, ver):
    if ver >= 2:
        r.i32()  # throttle_time_ms
    r.i16(), r.i32()  # error_code, generation_id
    r.string(), r.string(), r.string()  # protocol_name, leader, member_id
    for _ in range(r.i32()):
        r.string()  # member_id
        if ver >= 5:
            r.string(nullable=True)  # group_instance_id
        r.bytes_()  # metadata


def sync_group_response(r, ver):
    if ver >= 1:
        r.i32()
    r.i16()
    r.bytes_()  # assignment


def delete_topics_response(r, ver):
    if ver >= 1:
        r.i32()
    for _ in range(r.i32()):
        r.string(), r.i16()  # name, error_code


# The versions runneld advertises for the APIs read here.
ADVERTISED = {11: range(0, 6), 14: range(0, 4), 20: range(1, 4)}
PARSERS = {11: join_group_response, 14: sync_group_response, 20: delete_topics_response}


def check_walk(cap, port):
    rows = tshark(cap, port, "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.stream",
                  "-e", "tcp.srcport", "-e", "tcp.payload")
    streams = {}
    for stream, src, payload in rows:
        side = "out" if src == str(port) else "in"
        streams.setdefault(stream, {"in": bytearray(), "out": bytearray()})[side] += \
            bytes.fromhex(payload.replace(":", ""))
    n_req = n_resp = 0
    read = {}
    for s, d in sorted(streams.items(), key=lambda x: int(x[0])):
        pending = []  # (correlation id, api key, version) in request order
        r = Reader(bytes(d["in"]))
        while r.i < len(r.b):
            size = r.i32()
            f = Reader(r.take(size))
            key, ver, corr = f.i16(), f.i16(), f.i32()
            pending.append((corr, key, ver))
            n_req += 1
        r = Reader(bytes(d["out"]))
        while r.i < len(r.b):
            size = r.i32()
            f = Reader(r.take(size))
            corr = f.i32()
            if not pending:
                sys.exit("stream %s: an answer (correlation id %d) to no request" % (s, corr))
            # acks=0 produce requests get no answer: skip them.
            while pending and pending[0][0] != corr and pending[0][1] == 0:
                pending.pop(0)
            want, key, ver = pending.pop(0)
            if want != corr:
                sys.exit("stream %s: answer %d where %d was next (%s v%d)" % (
                    s, corr, want, NAMES.get(key, key), ver))
            n_resp += 1
            if key in PARSERS and len(f.b) == 6 and ver not in ADVERTISED.get(key, ()):
                pass  # UNSUPPORTED_VERSION: an error code is the whole body
            elif key in PARSERS:
                try:
                    PARSERS[key](f, ver)
                except ValueError as e:
                    sys.exit("stream %s: %s v%d answer %d: %s" % (s, NAMES[key], ver, corr, e))
                if f.i != len(f.b):
                    sys.exit("stream %s: %s v%d answer %d: %d bytes after its last field" % (
                        s, NAMES[key], ver, corr, len(f.b) - f.i))
                read[key] = read.get(key, 0) + 1
    print("%d streams: %d requests, %d answers in order; read to their last byte: %s" % (
        len(streams), n_req, n_resp, ", ".join("%d %s" % (n, NAMES[k]) for k, n in
                                                sorted(read.items()))))
    if set(read) != set(PARSERS):
        sys.exit("no answer of %s in the capture" % sorted(set(PARSERS) - set(read)))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("malformed", "decoded", "walk"):
        sys.exit("usage: kafka_capture.py malformed|decoded|walk CAPTURE KPORT")
    {"malformed": check_malformed, "decoded": check_decoded, "walk": check_walk}[sys.argv[1]](
        sys.argv[2], sys.argv[3])
