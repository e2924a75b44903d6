"""kafka_versions_probe.py — which version of each API a Kafka client would
use if runneld advertised more: run by hand, for docs/kafka.md (issue 15:
"flexible versions where the clients ask for them").

    [PROBE_KEYS=8,13] kafka_versions_probe.py KPORT -- CLIENT COMMAND WITH {bootstrap} ...

A proxy on a free 127.0.0.1 port between the client and runneld's Kafka
listener on KPORT: it passes every frame through, but in each ApiVersions
answer raises the maximum of the probed APIs (PROBE) to 30, and in each
Metadata (non-flexible) and FindCoordinator (v0-v2) answer points the
brokers at the proxy, so the client stays on it. A client then sends each probed API at its own
highest version (min(its maximum, 30)); runneld answers the ones above its
range UNSUPPORTED_VERSION, which is expected here. The command runs with
{bootstrap} replaced by the proxy's address (at most 30 s), then the proxy
prints, per API key, the versions the client sent. Everything stays on
127.0.0.1.
"""
import asyncio
import os
import struct
import subprocess
import sys

PROBE = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 19, 20, 22, 32, 37, 42}
if os.environ.get("PROBE_KEYS"):  # only these (an API probed too high stops a client early)
    PROBE = {int(k) for k in os.environ["PROBE_KEYS"].split(",")}
NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
         9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
         13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
         18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics", 22: "InitProducerId",
         32: "DescribeConfigs", 37: "CreatePartitions", 42: "DeleteGroups"}
seen = {}


def uvarint(b, i):
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, i
        shift += 7


def patch_api_versions(body, ver):
    """body: after the correlation id. Raises the probed maxima in place."""
    b = bytearray(body)
    i = 2  # error_code
    if ver >= 3:
        n, i = uvarint(b, i)
        n -= 1
    else:
        n = struct.unpack(">i", b[i:i + 4])[0]
        i += 4
    for _ in range(max(n, 0)):
        key = struct.unpack(">h", b[i:i + 2])[0]
        if key in PROBE:
            b[i + 4:i + 6] = struct.pack(">h", 30)
        i += 6
        if ver >= 3:
            t, i = uvarint(b, i)  # tagged fields: none expected
    return bytes(b)


def patch_metadata(body, ver, kport, proxy_port):
    if ver >= 9:
        return body
    b = bytearray(body)
    i = 4 if ver >= 3 else 0
    n = struct.unpack(">i", b[i:i + 4])[0]
    i += 4
    for _ in range(n):
        i += 4
        hl = struct.unpack(">h", b[i:i + 2])[0]
        i += 2 + hl
        if struct.unpack(">i", b[i:i + 4])[0] == kport:
            b[i:i + 4] = struct.pack(">i", proxy_port)
        i += 4
        if ver >= 1:
            rl = struct.unpack(">h", b[i:i + 2])[0]
            i += 2 + (rl if rl > 0 else 0)
    return bytes(b)


def patch_coordinator(body, ver, kport, proxy_port):
    """FindCoordinator v0-v3 (v4's list of coordinators: not patched)."""
    if ver >= 3:
        return body
    b = bytearray(body)
    i = 0
    if ver >= 1:
        i += 4 + 2  # throttle_time_ms, error_code
        ml = struct.unpack(">h", b[i:i + 2])[0]
        i += 2 + (ml if ml > 0 else 0)
    else:
        i += 2
    i += 4  # node_id
    hl = struct.unpack(">h", b[i:i + 2])[0]
    i += 2 + hl
    if struct.unpack(">i", b[i:i + 4])[0] == kport:
        b[i:i + 4] = struct.pack(">i", proxy_port)
    return bytes(b)


async def pipe(reader, writer, on_frame):
    try:
        while True:
            head = await reader.readexactly(4)
            size = struct.unpack(">i", head)[0]
            frame = await reader.readexactly(size)
            frame = on_frame(frame)
            writer.write(struct.pack(">i", len(frame)) + frame)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    kport = int(sys.argv[1])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    state = {}

    async def handle(cr, cw):
        sr, sw = await asyncio.open_connection("127.0.0.1", kport)
        pending = {}

        def up(f):
            key, ver, corr = struct.unpack(">hhi", f[:8])
            seen.setdefault(key, set()).add(ver)
            pending[corr] = (key, ver)
            return f

        def down(f):
            corr = struct.unpack(">i", f[:4])[0]
            key, ver = pending.pop(corr, (None, None))
            if key == 18 and len(f) > 6:
                return f[:4] + patch_api_versions(f[4:], ver)
            if key == 3 and len(f) > 6:
                return f[:4] + patch_metadata(f[4:], ver, kport, state["port"])
            if key == 10 and len(f) > 6:
                return f[:4] + patch_coordinator(f[4:], ver, kport, state["port"])
            return f

        await asyncio.gather(pipe(cr, sw, up), pipe(sr, cw, down))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state["port"] = server.sockets[0].getsockname()[1]
    argv = [a.replace("{bootstrap}", "127.0.0.1:%d" % state["port"]) for a in cmd]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL,
                                                stdin=subprocess.DEVNULL)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
    server.close()
    for key in sorted(seen):
        print("%-18s %s" % (NAMES.get(key, key), ",".join("v%d" % v for v in sorted(seen[key]))))


asyncio.run(main())
