#!/usr/bin/env python3
"""kafka_coord.py — two raw Kafka requests for test_coordinator.sh, to one broker.

    kafka_coord.py HOST PORT find GROUP       FindCoordinator v0: prints "ERROR NODE HOST:PORT"
    kafka_coord.py HOST PORT heartbeat GROUP  Heartbeat v0 (generation 1, member "m"): prints ERROR

Kafka's wire format by hand (size-prefixed, request header v1), so the test
sees exactly the code the broker answered: 16 NOT_COORDINATOR from a broker
that does not lead the group's __offsets partition, 25 UNKNOWN_MEMBER_ID from
the one that does. Exit 2 when the broker cannot be reached or answers short.
"""
import socket
import struct
import sys


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def call(host, port, api, body):
    hdr = struct.pack(">hhi", api, 0, 7) + kstr("kafka-coord")
    msg = hdr + body
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        n = struct.unpack(">i", recv(s, 4))[0]
        data = recv(s, n)
    return data[4:]  # past the correlation id


def recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("short answer")
        out += chunk
    return out


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, what, group = argv[0], int(argv[1]), argv[2], argv[3]
    try:
        if what == "find":
            r = call(host, port, 10, kstr(group))
            err, node, hl = struct.unpack_from(">hih", r, 0)
            h = r[8:8 + hl].decode()
            (p,) = struct.unpack_from(">i", r, 8 + hl)
            print(f"{err} {node} {h}:{p}")
        elif what == "heartbeat":
            r = call(host, port, 12, kstr(group) + struct.pack(">i", 1) + kstr("m"))
            print(struct.unpack_from(">h", r, 0)[0])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (OSError, struct.error) as exc:
        print(f"kafka_coord: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
