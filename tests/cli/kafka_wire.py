"""kafka_wire.py — Kafka requests by hand, for tests/cli/test_kafka_clients.sh.

Frames what no client lets a test send on purpose: a retried idempotent
batch, a sequence gap, an old producer epoch, a wrong current leader epoch,
SASL on a PLAINTEXT listener. Written from Kafka's protocol guide: i32 size,
request header v1 (api_key, api_version, correlation_id, client_id), the
body; RecordBatch v2 with its CRC-32C.
"""
import socket
import struct
import time


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = b""
    while True:
        if n < 0x80:
            return out + bytes([n])
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7


def record_batch(values, producer_id=-1, epoch=-1, base_sequence=-1):
    """A RecordBatch v2 of uncompressed records (no keys, no headers)."""
    ts = int(time.time() * 1000)
    recs = b""
    for i, v in enumerate(values):
        body = b"\0" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(v)) + v + _varint(0)
        recs += _varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, producer_id, epoch,
                            base_sequence, len(values)) + recs
    head = struct.pack(">ib", 0, 2)  # partition leader epoch, magic
    crc = struct.pack(">I", crc32c(after_crc))
    rest = head + crc + after_crc
    return struct.pack(">qi", 0, len(rest)) + rest


def s16(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        self.cid = 0

    def call(self, key, ver, body=b"", flexible=False):
        """Send one request (header v1, or v2 with empty tags for a flexible
        version) and return the response body after the correlation id
        (which is checked; a flexible answer's header tags stay in front)."""
        self.cid += 1
        m = struct.pack(">hhi", key, ver, self.cid) + s16("wire") + (b"\0" if flexible else b"") + body
        self.s.sendall(struct.pack(">i", len(m)) + m)
        n = struct.unpack(">i", self._recv(4))[0]
        r = self._recv(n)
        assert struct.unpack(">i", r[:4])[0] == self.cid, r.hex()
        return r[4:]

    def _recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("connection closed")
            b += c
        return b

    def produce(self, topic, partition, batch, ver=3):
        """Produce v3 acks=-1: (error_code, base_offset) of the one partition."""
        body = (struct.pack(">hhii", -1, -1, 10000, 1) + s16(topic) +
                struct.pack(">iii", 1, partition, len(batch)) + batch)
        r = self.call(0, ver, body)
        # topics(1) name partitions(1) partition error base_offset ...
        off = 4 + 2 + len(topic) + 4 + 4
        return struct.unpack(">hq", r[off:off + 10])

    def init_producer_id(self):
        r = self.call(22, 0, struct.pack(">hi", -1, 60000))
        _, err, pid, epoch = struct.unpack(">ihqh", r[:16])
        assert err == 0, err
        return pid, epoch

    def batches(self, topic, partition, max_bytes=1 << 20):
        """Fetch v4 from offset 0: each stored batch's (base_offset, count,
        producer_id, producer_epoch, base_sequence), from its header."""
        body = (struct.pack(">iiiib", -1, 100, 1, max_bytes, 0) + struct.pack(">i", 1) +
                s16(topic) + struct.pack(">iiqi", 1, partition, 0, max_bytes))
        r = self.call(1, 4, body)
        at = 4 + 4 + 2 + len(topic) + 4 + 4
        err, = struct.unpack(">h", r[at:at + 2])
        assert err == 0, err
        at += 2 + 8 + 8 + 4  # high watermark, last stable offset, aborted (empty)
        n, = struct.unpack(">i", r[at:at + 4])
        rec = r[at + 4:at + 4 + n]
        out = []
        pos = 0
        while pos + 61 <= len(rec):
            base, blen = struct.unpack(">qi", rec[pos:pos + 12])
            h = rec[pos:pos + 61]
            last_delta, = struct.unpack(">i", h[23:27])
            pid, epoch, seq = struct.unpack(">qhi", h[43:57])
            out.append((base, last_delta + 1, pid, epoch, seq))
            pos += 12 + blen
        return out
