#!/usr/bin/env python3
"""test_checker.py — the fault suite's checker proven on planted histories and planted
segment files before it judges a cluster (issue 14 item 3). A clean history passes;
each anomaly planted alone is reported under its own name, with its count, and the
first example shows the history lines around it; replicas equal below the high
watermark pass, and a flipped byte, a missing batch or a short replica fails.

    tests/cluster/test_checker.py        (prints TAP; no broker, no namespace)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "checker.py")
N = 0
FAILED = 0


def tap(ok, name, detail=""):
    global N, FAILED
    N += 1
    if not ok:
        FAILED += 1
    print(f"{'ok' if ok else 'not ok'} {N} - {name}")
    if not ok and detail:
        for line in detail.splitlines()[-40:]:
            print("# " + line)


class H:
    """A history being planted: a clean run of one producer, one assigned
    consumer, one group member, and a final read, which tests then spoil."""

    def __init__(self):
        self.ev = []
        self.t = 1000
        self.ids = 0

    def add(self, **e):
        self.t += 1
        e.setdefault("t", self.t)
        self.ev.append(e)
        return e

    def send(self, v, p, off, outcome="ok"):
        self.ids += 1
        self.add(type="invoke", f="send", proc="p0", id=self.ids, value=v, partition=p)
        if outcome == "ok":
            return self.add(type="ok", f="send", proc="p0", id=self.ids, value=v,
                            partition=p, offset=off)
        return self.add(type=outcome, f="send", proc="p0", id=self.ids, value=v,
                        err="TIMEOUT")

    def poll(self, proc, recs, f="poll"):
        self.ids += 1
        self.add(type="invoke", f=f, proc=proc, id=self.ids)
        return self.add(type="ok", f=f, proc=proc, id=self.ids, recs=[list(r) for r in recs])

    def commit(self, proc, group, offs):
        self.ids += 1
        self.add(type="invoke", f="commit", proc=proc, id=self.ids, group=group)
        return self.add(type="ok", f="commit", proc=proc, id=self.ids, group=group,
                        offsets=[list(x) for x in offs])

    def committed(self, proc, group, p, off):
        self.ids += 1
        self.add(type="invoke", f="committed", proc=proc, id=self.ids, group=group,
                 partition=p)
        return self.add(type="ok", f="committed", proc=proc, id=self.ids, group=group,
                        partition=p, offset=off)

    def write(self, path):
        with open(path, "w") as f:
            for e in self.ev:
                f.write(json.dumps(e) + "\n")


def clean(n=12, final=True, skip_final=None):
    """Records v0..v(n-1) over partitions 0 and 1 (even to 0, odd to 1)."""
    h = H()
    offs = {0: 0, 1: 0}
    recs = []
    for i in range(n):
        p = i % 2
        h.send(f"p0:{i}", p, offs[p])
        recs.append((p, offs[p], f"p0:{i}"))
        offs[p] += 1
    h.add(type="info", f="assign", proc="c0", partition=0, assigned=1)
    h.add(type="info", f="assign", proc="c0", partition=1, assigned=1)
    h.poll("c0", recs[:4])
    h.poll("c0", recs[4:])
    h.add(type="info", f="assign", proc="g0", partition=0, assigned=1)
    h.poll("g0", [r for r in recs if r[0] == 0][:3])
    h.commit("g0", "grp", [(0, 3)])
    h.committed("g0", "grp", 0, 3)
    h.poll("g0", [r for r in recs if r[0] == 0][3:])
    h.commit("g0", "grp", [(0, offs[0])])
    h.committed("g0", "grp", 0, offs[0])
    if final:
        for p in (0, 1):
            if skip_final is not None:
                rs = [r for r in recs if r[0] == p and r[2] != skip_final]
            else:
                rs = [r for r in recs if r[0] == p]
            h.add(type="info", f="assign", proc="final", partition=p, assigned=1)
            h.poll("final", rs, f="final")
            h.add(type="ok", f="hw", proc="final", partition=p, hw=offs[p], complete=True)
    return h, recs


def run_checker(args):
    r = subprocess.run([sys.executable, CHECKER] + args, capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def count(out, kind):
    for line in out.splitlines():
        if line.startswith(kind + ": "):
            return int(line.split(": ", 1)[1])
    return None


def expect(tmp, name, h, kind, n=1, neighbour=None, also=None):
    path = os.path.join(tmp, name + ".jsonl")
    h.write(path)
    rc, out = run_checker([path])
    others = [k for k in ("lost", "unseen", "vanished", "duplicate", "offset_conflict",
                          "phantom", "poll_skip", "poll_backwards", "commit_backwards")
              if k != kind and count(out, k) != (also or {}).get(k, 0)]
    good = (rc == 1 and count(out, kind) == n and f"FIRST {kind}:" in out and not others
            and "verdict: FAIL" in out)
    if good and neighbour is not None:
        good = neighbour in out
    tap(good, f"{name}: reported as {n} {kind}", out)


def batch(base, lod, payload, epoch=1, ts=0, crc=0):
    body = struct.pack(">ibIhiqqqhii", epoch, 2, crc, 0, lod, ts, ts, -1, -1, -1, lod + 1)
    body += payload
    return struct.pack(">qi", base, len(body)) + body


def write_replica(root, name, batches, zeros=0):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "00000000000000000000.log"), "wb") as f:
        for b in batches:
            f.write(b)
        f.write(b"\0" * zeros)


def main():
    print("1..24")
    with tempfile.TemporaryDirectory(prefix="rn-checker-") as tmp:
        # A clean history passes, with its figures.
        h, _ = clean()
        path = os.path.join(tmp, "clean.jsonl")
        h.write(path)
        rc, out = run_checker([path])
        tap(rc == 0 and "verdict: ok" in out and count(out, "acknowledged") == 12 and
            count(out, "read_back") == 12 and count(out, "lost") == 0,
            "a clean history passes: 12 acknowledged, 12 read back, no anomaly", out)

        # An indeterminate send that never shows up is not an anomaly; one that
        # shows up once, at one offset, is not either.
        h, recs = clean()
        h.send("p0:maybe", 0, None, outcome="info")
        h.send("p0:maybe2", 1, None, outcome="info")
        h.poll("final", [(1, 6, "p0:maybe2")], f="final")
        path = os.path.join(tmp, "info.jsonl")
        h.write(path)
        rc, out = run_checker([path])
        tap(rc == 0 and count(out, "indeterminate") == 2, "indeterminate sends pass", out)

        # Lost: acknowledged, absent from a complete final read (whose read
        # jumps over the acknowledged offset: a poll_skip as well).
        h, _ = clean(skip_final="p0:5")
        expect(tmp, "lost", h, "lost", neighbour='"value": "p0:5"', also={"poll_skip": 1})

        # Unseen: the final read of partition 1 never completed.
        h, _ = clean()
        h.ev = [e for e in h.ev if not (e["f"] == "hw" and e["partition"] == 1)]
        h.ev = [e for e in h.ev if not (e["f"] == "final" and e["type"] == "ok" and
                                        e["recs"] and e["recs"][0][0] == 1)]
        expect(tmp, "unseen", h, "unseen", n=6)

        # Vanished: an unacknowledged record read during the run, gone after healing.
        h, _ = clean(final=False)
        h.send("p0:ghost", 0, None, outcome="info")
        h.poll("c0", [(0, 6, "p0:ghost")])
        for p in (0, 1):
            rs = [(p, o, f"p0:{2 * o + p}") for o in range(6)]
            h.poll("final", rs, f="final")
            h.add(type="ok", f="hw", proc="final", partition=p, hw=6, complete=True)
        expect(tmp, "vanished", h, "vanished")

        # Duplicate: one value at two offsets (an idempotence failure).
        h, recs = clean(final=False)
        h.send("p0:12", 0, 6)
        for p in (0, 1):
            rs = [r for r in recs if r[0] == p]
            if p == 0:
                rs += [(0, 6, "p0:12"), (0, 7, "p0:12")]
            h.poll("final", rs, f="final")
            h.add(type="ok", f="hw", proc="final", partition=p, hw=len(rs), complete=True)
        expect(tmp, "duplicate", h, "duplicate", neighbour="p0:12")

        # One offset holding two values: acknowledged at 1/2, read there as another.
        h, recs = clean()
        h.poll("c1", [(1, 2, "p0:3-but-not")])
        h.send("p0:3-but-not", 1, None, outcome="info")
        # (the stray record is also gone after healing: vanished)
        expect(tmp, "offset_conflict", h, "offset_conflict", also={"vanished": 1})

        # Phantom: read, never sent; and read though its send failed for certain.
        h, recs = clean()
        h.poll("c1", [(0, 0, "p0:0"), (0, 1, "p0:2"), (0, 2, "p0:4")])
        h.add(type="ok", f="final", proc="x", recs=[[1, 99, "nobody-sent-me"]])
        expect(tmp, "phantom", h, "phantom", neighbour="nobody-sent-me")
        h, recs = clean()
        h.send("p0:refused", 1, None, outcome="fail")
        h.poll("c1", [(1, 6, "p0:refused")])
        expect(tmp, "phantom_failed", h, "phantom")

        # A poll that skips: offset 0/3 jumped over, though 0/2 holds a record.
        h, recs = clean()
        h.add(type="info", f="assign", proc="c2", partition=0, assigned=1)
        h.poll("c2", [(0, 0, "p0:0"), (0, 1, "p0:2"), (0, 3, "p0:6")])
        expect(tmp, "poll_skip", h, "poll_skip")

        # A poll that goes backwards, inside one session (no assign between).
        h, recs = clean()
        h.add(type="info", f="assign", proc="c2", partition=1, assigned=1)
        h.poll("c2", [(1, 0, "p0:1"), (1, 1, "p0:3")])
        h.poll("c2", [(1, 1, "p0:3")])
        expect(tmp, "poll_backwards", h, "poll_backwards")
        # ... but a new session (assign, seek) may start lower.
        h, recs = clean()
        h.add(type="info", f="assign", proc="c2", partition=1, assigned=1)
        h.poll("c2", [(1, 0, "p0:1"), (1, 1, "p0:3")])
        h.add(type="info", f="assign", proc="c2", partition=1, assigned=1)
        h.poll("c2", [(1, 0, "p0:1")])
        path = os.path.join(tmp, "reassign.jsonl")
        h.write(path)
        rc, out = run_checker([path])
        tap(rc == 0, "a re-assigned partition may be read again from a lower offset", out)

        # A committed offset that moves back: one proc's commits, then reads
        # of the offset in real time.
        h, recs = clean()
        h.commit("g0", "grp", [(0, 2)])
        expect(tmp, "commit_backwards_own", h, "commit_backwards")
        h, recs = clean()
        h.committed("g1", "grp", 0, 1)
        expect(tmp, "commit_backwards_read", h, "commit_backwards")
        # ... and a committed offset read as -1 (none) after one was read: forgotten.
        h, recs = clean()
        h.committed("g1", "grp", 0, -1)
        expect(tmp, "commit_forgotten", h, "commit_backwards")

        # Replicas: equal bytes pass; a flipped byte below the high watermark,
        # a missing batch, and a replica short of the high watermark fail.
        bs = [batch(0, 2, b"abc"), batch(3, 0, b"d"), batch(4, 4, b"efghi")]
        for i in (1, 2, 3):
            write_replica(os.path.join(tmp, f"r{i}"), "t-0", bs, zeros=4096 if i == 2 else 0)
        dirs = ",".join(os.path.join(tmp, f"r{i}") for i in (1, 2, 3))
        rc, out = run_checker(["--replicas", dirs, "--partition-dir", "t-0", "--hw", "9"])
        tap(rc == 0 and count(out, "replica_batches_compared") == 9,
            "three equal replicas pass (sparse zero tail ignored), 3 batches x 3", out)

        flipped = bytearray(bs[1])
        flipped[-1] ^= 0x20
        write_replica(os.path.join(tmp, "r4"), "t-0", [bs[0], bytes(flipped), bs[2]])
        rc, out = run_checker(["--replicas", dirs + "," + os.path.join(tmp, "r4"),
                               "--partition-dir", "t-0", "--hw", "9"])
        tap(rc == 1 and count(out, "replica_mismatch") == 1 and "offset 3 differs" in out,
            "a flipped byte in one replica is a replica_mismatch at its batch", out)

        write_replica(os.path.join(tmp, "r5"), "t-0", [bs[0], bs[1]])
        rc, out = run_checker(["--replicas", dirs + "," + os.path.join(tmp, "r5"),
                               "--partition-dir", "t-0", "--hw", "9"])
        tap(rc == 1 and count(out, "replica_mismatch") == 1 and "below the high watermark" in out,
            "a replica that ends below the high watermark is a replica_mismatch", out)
        # ... but not when the difference is above the high watermark.
        rc, out = run_checker(["--replicas", dirs + "," + os.path.join(tmp, "r5"),
                               "--partition-dir", "t-0", "--hw", "4"])
        tap(rc == 0, "a difference at or above the high watermark is not a mismatch", out)

        # Timestamps and CRC: a difference there alone fails the byte check,
        # and passes with --mask-timestamps; a payload difference fails both.
        stamped = [batch(0, 2, b"abc", ts=111, crc=0x05000000), batch(3, 0, b"d", ts=222, crc=6),
                   batch(4, 4, b"efghi", ts=333, crc=7)]
        write_replica(os.path.join(tmp, "r6"), "t-0", stamped)
        pair = dirs.split(",")[0] + "," + os.path.join(tmp, "r6")
        rc, out = run_checker(["--replicas", pair, "--partition-dir", "t-0"])
        rc2, out2 = run_checker(["--replicas", pair, "--partition-dir", "t-0",
                                 "--mask-timestamps"])
        tap(rc == 1 and "first at byte 17" in out and rc2 == 0,
            "batches differing only in CRC and timestamps: a mismatch, unless masked",
            out + out2)
        rc, out = run_checker(["--replicas", dirs + "," + os.path.join(tmp, "r4"),
                               "--partition-dir", "t-0", "--mask-timestamps"])
        tap(rc == 1 and count(out, "replica_mismatch") == 1,
            "with --mask-timestamps a flipped payload byte is still a mismatch", out)

        # Epochs: samples that agree pass; two leaders in one epoch, and a
        # broker going back to an older epoch, fail.
        ep = os.path.join(tmp, "epochs.txt")
        good = ["1 1 1 2", "1 2 1 2", "1 3 1 -", "2 1 2 -", "2 2 2 3", "3 3 2 3", "4 3 5 1"]
        with open(ep, "w") as f:
            f.write("\n".join(good) + "\n")
        rc, out = run_checker(["--epochs", ep])
        tap(rc == 0 and count(out, "epochs_seen") == 3, "agreeing epoch samples pass", out)
        with open(ep, "w") as f:
            f.write("\n".join(good + ["5 1 2 1"]) + "\n")
        rc, out = run_checker(["--epochs", ep])
        tap(rc == 1 and count(out, "two_leaders") == 1 and count(out, "epoch_backwards") == 0,
            "two leaders named in epoch 2 are two_leaders", out)
        with open(ep, "w") as f:
            f.write("\n".join(good + ["5 3 4 1"]) + "\n")
        rc, out = run_checker(["--epochs", ep])
        tap(rc == 1 and count(out, "epoch_backwards") == 1 and count(out, "two_leaders") == 0,
            "a broker naming epoch 4 after epoch 5 is epoch_backwards", out)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
