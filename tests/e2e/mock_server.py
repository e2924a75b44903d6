#!/usr/bin/env python3
"""mock_server.py — a stand-in for runneld's HTTP gateway, for developing the web console.

Not shipped and not what the e2e test checks (that runs the real broker): it serves
broker/gateway/console/ and fakes the JSON API the console uses (DESIGN §7) with in-memory
topics, so the page can be worked on before or apart from broker/gateway/. Standard library only.

    python3 tests/e2e/mock_server.py --port 9781 [--groups] [--load N]

--groups answers GET /groups and /groups/{g} (a runnel extension) with one fake group,
whose offsets POST /groups/{g}/reset moves (preview unless "execute");
GET /brokers, GET|PUT|DELETE /topics/{t}/configs[/{name}] and DELETE /topics/{t} work too;
--load N produces N records/s of JSON to topic "orders" so the sparkline moves.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "broker", "gateway", "console")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

lock = threading.Condition()
topics = {}  # name -> [ [record, ...] per partition ]
overrides = {}  # name -> {config: value}
committed = {}  # (topic, p) -> offset of the fake group, once reset
DEFAULTS = {"retention.ms": "604800000", "retention.bytes": "-1", "segment.bytes": "1073741824",
            "segment.ms": "604800000", "max.message.bytes": "1048576", "flush": "always"}
stats = {}  # (topic, p) -> [records_in, bytes_in]
GROUPS = False


def create(name, n):
    with lock:
        if name in topics:
            return False
        topics[name] = [[] for _ in range(n)]
        overrides[name] = {}
        for p in range(n):
            stats[(name, p)] = [0, 0]
        return True


def append(topic, p, key, value, headers=None):
    with lock:
        log = topics[topic][p]
        rec = {"topic": topic, "partition": p, "offset": len(log),
               "timestamp": int(time.time() * 1000), "key": key, "value": value,
               "headers": headers or []}
        log.append(rec)
        st = stats[(topic, p)]
        st[0] += 1
        st[1] += len(json.dumps(value)) + len(json.dumps(key))
        lock.notify_all()
        return rec["offset"]


def start_offset(log, spec):
    if spec == "beginning":
        return 0
    if spec == "end" or spec is None:
        return len(log)
    if isinstance(spec, str) and spec.startswith("s@"):
        ms = int(spec[2:])
        for r in log:
            if r["timestamp"] >= ms:
                return r["offset"]
        return len(log)
    return int(spec)


def matches(rec, flt):
    if not flt:
        return True
    text = (json.dumps(rec["key"]) + json.dumps(rec["value"])).lower()
    return flt.lower() in text


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, ec, msg):
        self.reply(code, {"error_code": ec, "message": msg})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def do_GET(self):
        u = urlparse(self.path)
        parts = [unquote(x) for x in u.path.split("/") if x]
        if u.path == "/ws":
            return self.websocket()
        if not parts or (len(parts) == 1 and "." in parts[0]):
            name = parts[0] if parts else "index.html"
            path = os.path.join(WEB, os.path.basename(name))
            if not os.path.isfile(path):
                return self.error(404, 40400, "not found")
            with open(path, "rb") as f:
                return self.reply(200, f.read(), TYPES.get(os.path.splitext(path)[1], "application/octet-stream"))
        if parts == ["metrics"]:
            return self.metrics()
        if parts == ["brokers"]:
            with lock:
                n = sum(len(v) for v in topics.values())
                return self.reply(200, {"cluster_id": "mock", "controller_id": 1, "topics": len(topics),
                                        "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": 9700,
                                                     "rack": None, "controller": True,
                                                     "partitions": n, "leaders": n}]})
        if len(parts) == 3 and parts[0] == "topics" and parts[2] == "configs" and parts[1] in topics:
            with lock:
                ov = overrides[parts[1]]
                return self.reply(200, [{"name": k, "value": ov.get(k, v), "is_default": k not in ov}
                                        for k, v in sorted(DEFAULTS.items())])
        if parts == ["topics"]:
            with lock:
                return self.reply(200, sorted(topics))
        if parts[0] == "groups" and GROUPS:
            return self.groups(parts)
        if parts[0] != "topics" or parts[1] not in topics:
            return self.error(404, 40401, "Topic not found")
        t = parts[1]
        with lock:
            logs = topics[t]
            if len(parts) == 2:
                return self.reply(200, {"name": t, "configs": {**DEFAULTS, **overrides[t]}, "partitions": [
                    {"partition": p, "leader": 1, "replicas": [{"broker": 1, "leader": True, "in_sync": True}]}
                    for p in range(len(logs))]})
            if len(parts) == 3 and parts[2] == "partitions":
                return self.reply(200, [{"partition": p, "leader": 1, "beginning_offset": 0,
                                         "end_offset": len(log)} for p, log in enumerate(logs)])
        if len(parts) == 5 and parts[4] == "events":
            return self.sse(t, int(parts[3]), parse_qs(u.query))
        return self.error(404, 40400, "not found")

    def do_PUT(self):
        parts = [unquote(x) for x in urlparse(self.path).path.split("/") if x]
        if len(parts) != 4 or parts[0] != "topics" or parts[2] != "configs" or parts[1] not in topics:
            return self.error(404, 40400, "not found")
        if parts[3] not in DEFAULTS:
            return self.error(422, 42201, f"unknown topic setting '{parts[3]}'")
        with lock:
            overrides[parts[1]][parts[3]] = str(self.body().get("value"))
        self.reply(204, b"")

    def do_DELETE(self):
        parts = [unquote(x) for x in urlparse(self.path).path.split("/") if x]
        with lock:
            if len(parts) == 2 and parts[0] == "topics" and parts[1] in topics:
                del topics[parts[1]]
                for k in [k for k in stats if k[0] == parts[1]]:
                    del stats[k]
                return self.reply(204, b"")
            if len(parts) == 4 and parts[0] == "topics" and parts[2] == "configs" and parts[1] in topics:
                overrides[parts[1]].pop(parts[3], None)
                return self.reply(204, b"")
            if len(parts) == 2 and parts[0] == "groups" and GROUPS:
                committed.clear()
                return self.reply(204, b"")
        self.error(404, 40400, "not found")

    def do_POST(self):
        parts = [unquote(x) for x in urlparse(self.path).path.split("/") if x]
        try:
            b = self.body()
        except ValueError:
            return self.error(400, 40001, "bad JSON")
        if len(parts) == 3 and parts[0] == "groups" and parts[2] == "reset" and GROUPS:
            return self.reset(b)
        if parts == ["topics"]:
            if not create(b["name"], int(b.get("partitions", 1))):
                return self.error(409, 40902, "Topic already exists")
            return self.reply(201, {"name": b["name"]})
        if len(parts) >= 2 and parts[0] == "topics" and parts[1] in topics:
            t = parts[1]
            out = []
            for r in b.get("records", []):
                p = int(parts[3]) if len(parts) == 4 else r.get("partition")
                if p is None:
                    p = random.randrange(len(topics[t]))
                if p >= len(topics[t]):
                    return self.error(404, 40402, "Partition not found")
                out.append({"partition": p, "offset": append(t, p, r.get("key"), r.get("value"), r.get("headers"))})
            return self.reply(200, {"offsets": out})
        return self.error(404, 40401, "Topic not found")

    def metrics(self):
        lines = []
        with lock:
            for fam, idx in (("runnel_partition_records_in_total", 0), ("runnel_partition_bytes_in_total", 1)):
                lines.append(f"# TYPE {fam} counter")
                for (t, p), st in sorted(stats.items()):
                    lines.append(f'{fam}{{topic="{t}",partition="{p}"}} {st[idx]}')
            for fam in ("runnel_partition_log_end_offset", "runnel_partition_log_start_offset",
                        "runnel_partition_high_watermark"):
                lines.append(f"# TYPE {fam} gauge")
                for t, logs in sorted(topics.items()):
                    for p, log in enumerate(logs):
                        v = 0 if fam.endswith("start_offset") else len(log)
                        lines.append(f'{fam}{{topic="{t}",partition="{p}"}} {v}')
        self.reply(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")

    def group_offset(self, t, p):
        return committed.get((t, p), max(0, len(topics[t][p]) - 3 - p * 40))

    def groups(self, parts):
        if len(parts) == 1:
            return self.reply(200, ["billing"])
        with lock:
            offs = [{"topic": t, "partition": p, "offset": self.group_offset(t, p)}
                    for t, logs in topics.items() for p, log in enumerate(logs)]
        return self.reply(200, {"group_id": parts[1], "state": "Empty", "members": [], "offsets": offs})

    def reset(self, b):
        with lock:
            out = []
            for t in b.get("topics") or [b.get("topic")]:
                if t not in topics:
                    return self.error(404, 40401, f"topic '{t}' does not exist")
                for p, log in enumerate(topics[t]):
                    to = b.get("to")
                    new = {"earliest": 0, "latest": len(log)}.get(to)
                    if to == "offset":
                        new = min(max(0, int(b.get("offset", 0))), len(log))
                    elif to == "datetime":
                        ms = int(b.get("timestamp", 0))
                        new = next((r["offset"] for r in log if r["timestamp"] >= ms), len(log))
                    if new is None:
                        return self.error(422, 42201, "bad \"to\"")
                    out.append({"topic": t, "partition": p, "current_offset": self.group_offset(t, p),
                                "new_offset": new, "log_start_offset": 0, "log_end_offset": len(log),
                                "clamped": to == "offset" and new != int(b.get("offset", 0))})
            if b.get("execute"):
                for o in out:
                    committed[(o["topic"], o["partition"])] = o["new_offset"]
        self.reply(200, {"group_id": "billing", "executed": bool(b.get("execute")), "offsets": out})

    def sse(self, t, p, q):
        if p >= len(topics[t]):
            return self.error(404, 40402, "Partition not found")
        last = self.headers.get("Last-Event-ID")
        spec = str(int(last) + 1) if last is not None else q.get("offset", ["end"])[0]
        flt = q.get("filter", [""])[0]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with lock:
            nxt = start_offset(topics[t][p], spec)
        try:
            while True:
                with lock:
                    log = topics[t][p]
                    if nxt >= len(log):
                        lock.wait(10)
                    batch = log[nxt:]
                    nxt = len(log)
                out = "".join(f"event: record\nid: {r['offset']}\ndata: {json.dumps(r)}\n\n"
                              for r in batch if matches(r, flt)) or ": heartbeat\n\n"
                self.wfile.write(out.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    # ---- WebSocket (RFC 6455, text frames only; enough for the console) ----------------

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or self.headers.get("Upgrade", "").lower() != "websocket":
            return self.error(400, 40000, "not a WebSocket request")
        acc = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc)
        self.end_headers()
        self.close_connection = True
        sub = {}
        wlock = threading.Lock()
        alive = [True]

        def send(obj):
            data = json.dumps(obj).encode()
            n = len(data)
            hdr = bytes([0x81, n]) if n < 126 else (struct.pack("!BBH", 0x81, 126, n) if n < 65536
                                                    else struct.pack("!BBQ", 0x81, 127, n))
            with wlock:
                self.wfile.write(hdr + data)
                self.wfile.flush()

        def reader():
            try:
                while True:
                    h = self.rfile.read(2)
                    if len(h) < 2:
                        break
                    op, n = h[0] & 0x0F, h[1] & 0x7F
                    if n == 126:
                        n = struct.unpack("!H", self.rfile.read(2))[0]
                    elif n == 127:
                        n = struct.unpack("!Q", self.rfile.read(8))[0]
                    mask = self.rfile.read(4) if h[1] & 0x80 else b"\0\0\0\0"
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
                    if op == 8:
                        break
                    if op != 1:
                        continue
                    m = json.loads(data)
                    with lock:
                        if m.get("op") == "subscribe":
                            if m.get("topic") not in topics:
                                send({"type": "error", "error_code": 40401, "message": "Topic not found"})
                                continue
                            log = topics[m["topic"]][int(m.get("partition", 0))]
                            sub.update(topic=m["topic"], partition=int(m.get("partition", 0)),
                                       next=start_offset(log, m.get("offset", "end")), filter=m.get("filter"))
                        elif m.get("op") == "unsubscribe":
                            sub.clear()
                        lock.notify_all()
            except (OSError, ValueError):
                pass
            alive[0] = False
            with lock:
                lock.notify_all()

        threading.Thread(target=reader, daemon=True).start()
        try:
            while alive[0]:
                with lock:
                    if not sub:
                        lock.wait(1)
                        continue
                    log = topics[sub["topic"]][sub["partition"]]
                    if sub["next"] >= len(log):
                        lock.wait(1)
                        continue
                    batch = [r for r in log[sub["next"]:] if matches(r, sub.get("filter"))]
                    sub["next"] = len(log)
                if batch:
                    send({"type": "records", "records": batch})
        except OSError:
            pass


def load(rate):
    create("orders", 3)
    n = 0
    while True:
        n += 1
        append("orders", n % 3, f"cust-{n % 17}", {"id": n, "item": random.choice(["tea", "rye", "figs", "oats"]),
                                                   "qty": random.randint(1, 9), "paid": n % 5 != 0})
        time.sleep(1.0 / rate * random.uniform(0.3, 1.7))


def main():
    global GROUPS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9781)
    ap.add_argument("--groups", action="store_true")
    ap.add_argument("--load", type=float, default=0)
    a = ap.parse_args()
    GROUPS = a.groups
    if a.load:
        threading.Thread(target=load, args=(a.load,), daemon=True).start()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(f"mock gateway on http://127.0.0.1:{a.port}/", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
