#!/usr/bin/env python3
"""proxy.py — the fault suite's user-space TCP proxy (issue 14 item 1): delay, jitter
(which reorders messages across connections), loss and black holes, where the kernel
has no netem qdisc.

    proxy.py --route LISTEN=TARGET [--route ...] [--control FILE] [--seed N]

LISTEN and TARGET are HOST:PORT. tests/cluster/run puts one proxy in a broker's
namespace, in front of that broker: the broker binds 127.0.0.1 there, and the proxy
listens on the namespace's bridge address with the ports the cluster knows, so every
connection into that broker (clients, followers, voters) crosses it.

The faults come from FILE (JSON, read again whenever its mtime changes, checked
every 100 ms; absent or empty = none), and apply to each chunk read from either side:

    {"delay_ms": 40, "jitter_ms": 60, "loss": 0.01, "blackhole": false}

    delay_ms, jitter_ms  the chunk is written delay + uniform(0, jitter) ms after it
                         was read, never before the chunk read before it on the same
                         connection: a byte stream stays in order, but requests on
                         different connections overtake each other (reordering as a
                         TCP peer can see it).
    loss                 the probability that a chunk is lost; a TCP stream cannot
                         lose bytes in the middle and go on, so the connection is reset
                         (both sides, SO_LINGER 0), as a link that drops enough packets
                         ends it.
    blackhole            nothing is read or written and connections stay open: a
                         silent network (TCP's windows fill, senders block), until the
                         file says otherwise; then the held bytes flow again, intact,
                         as after a partition heals before TCP gives up.

Stops on SIGTERM or SIGINT. Prints one line a connection to stderr only with -v.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys
import time


class Faults:
    def __init__(self, path, rng):
        self.path = path
        self.rng = rng
        self.mtime = None
        self.conf = {}

    def reload(self):
        if not self.path:
            return
        try:
            m = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            m = None
        if m == self.mtime:
            return
        self.mtime = m
        conf = {}
        if m is not None:
            try:
                with open(self.path) as f:
                    text = f.read().strip()
                conf = json.loads(text) if text else {}
            except (OSError, ValueError) as exc:
                print(f"proxy: {self.path}: {exc}; keeping the faults in force",
                      file=sys.stderr)
                return
        self.conf = conf

    def hold_s(self):
        d = float(self.conf.get("delay_ms", 0))
        j = float(self.conf.get("jitter_ms", 0))
        return (d + (self.rng.uniform(0, j) if j > 0 else 0)) / 1000.0

    def lose(self):
        p = float(self.conf.get("loss", 0))
        return p > 0 and self.rng.random() < p

    def blackhole(self):
        return bool(self.conf.get("blackhole", False))


def reset(writer):
    """Close with RST (SO_LINGER 0), not FIN: a lost link, not a polite goodbye."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.close()


async def pump(reader, writer, faults, peer_writer, stats):
    """Copy reader -> writer chunk by chunk, each held per the faults, in order."""
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def sender():
        while True:
            item = await queue.get()
            if item is None:
                break
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            while faults.blackhole():
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()
            stats["bytes"] += len(data)

    task = asyncio.ensure_future(sender())
    last_due = 0.0
    try:
        while True:
            while faults.blackhole():
                await asyncio.sleep(0.05)
            data = await reader.read(65536)
            if not data:
                break
            if faults.lose():
                stats["resets"] += 1
                reset(writer)
                reset(peer_writer)
                return
            due = max(last_due, loop.time() + faults.hold_s())
            last_due = due
            queue.put_nowait((due, data))
        queue.put_nowait(None)
        await task
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, asyncio.CancelledError):
        reset(writer)
        reset(peer_writer)
    finally:
        task.cancel()


async def serve_route(listen, target, faults, stats, verbose):
    lh, lp = listen.rsplit(":", 1)
    th, tp = target.rsplit(":", 1)

    async def handle(creader, cwriter):
        try:
            treader, twriter = await asyncio.wait_for(asyncio.open_connection(th, int(tp)), 5)
        except (OSError, asyncio.TimeoutError):
            reset(cwriter)
            return
        stats["conns"] += 1
        if verbose:
            print(f"proxy: {cwriter.get_extra_info('peername')} -> {target}", file=sys.stderr)
        try:
            await asyncio.gather(pump(creader, twriter, faults, cwriter, stats),
                                 pump(treader, cwriter, faults, twriter, stats),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass  # stopping: the connections close below
        for w in (cwriter, twriter):
            if not w.is_closing():
                w.close()

    return await asyncio.start_server(handle, lh, int(lp), reuse_address=True)


async def main_async(a):
    faults = Faults(a.control, random.Random(a.seed))
    faults.reload()
    stats = {"conns": 0, "bytes": 0, "resets": 0}
    servers = []
    for r in a.route:
        listen, _, target = r.partition("=")
        if not target:
            raise SystemExit(f"proxy: --route {r}: want LISTEN=TARGET")
        servers.append(await serve_route(listen, target, faults, stats, a.verbose))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    if a.ready:
        with open(a.ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    while not stop.is_set():
        faults.reload()
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
    for s in servers:
        s.close()
    print(f"proxy: {stats['conns']} connections, {stats['bytes']} bytes forwarded, "
          f"{stats['resets']} resets", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description="delay/jitter/loss TCP proxy for the fault suite")
    ap.add_argument("--route", action="append", required=True, help="LISTEN=TARGET")
    ap.add_argument("--control", help="JSON faults file, re-read when it changes")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--ready", help="file written (our pid) once every route listens")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    asyncio.run(main_async(a))


if __name__ == "__main__":
    main()
