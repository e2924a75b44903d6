#!/usr/bin/env python3
"""test_powerloss.py — powerloss.py against journals written by hand (TAP).

No broker: each case builds files in a scratch directory, writes the journal
a broker would have written for what it did to them (storage/crash.h's line
format), runs the rewind and checks what is left: synced bytes stay, unsynced
ones are zeroed (--mode drop) or kept (--mode keep), a file whose creation
nothing made durable goes, a rename no directory sync covered is undone and
the file it replaced comes back, a syncfs covers everything before it, and a
sync that failed or never completed covers nothing.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "powerloss.py")
N = 0
FAILED = 0


def ok(cond, what):
    global N, FAILED
    N += 1
    if not cond:
        FAILED += 1
    print(f"{'ok' if cond else 'not ok'} {N} - {what}")


class Case:
    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="rn-powerloss-")
        self.d = os.path.join(self.top, "data")
        os.mkdir(self.d)
        self.j = os.path.join(self.top, "journal")
        self.lines = []
        self.sid = 0

    def ino(self, p):
        return os.lstat(p).st_ino

    def dino(self, p):
        return os.stat(os.path.dirname(p)).st_ino

    def create(self, name, data=b""):
        p = os.path.join(self.d, name)
        with open(p, "wb") as f:
            f.write(data)
        self.lines.append(f"O {self.ino(p)} {self.dino(p)} 1 {p}")
        if data:
            self.lines.append(f"W {self.ino(p)} 0 {len(data)}")
        return p

    def write(self, p, pos, data):
        self.lines.append(f"W {self.ino(p)} {pos} {pos + len(data)}")
        with open(p, "r+b") as f:
            f.seek(pos)
            f.write(data)

    def sync(self, p, rc=0, complete=True):
        self.sid += 1
        ino = 0 if p is None else self.ino(p)
        self.lines.append(f"B 1.{self.sid} {ino}")
        if complete:
            self.lines.append(f"S 1.{self.sid} {rc}")

    def rename(self, frm, to):
        side = "-"
        if os.path.exists(to):
            side = os.path.join(self.top, f"side{self.sid}")
            self.sid += 1
            os.link(to, side)
        self.lines.append(f"R {side} {self.dino(frm)} {self.dino(to)} {frm}\t{to}")
        os.rename(frm, to)

    def run(self, mode):
        with open(self.j, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        r = subprocess.run([sys.executable, TOOL, "--mode", mode, "--seed", "1", self.j, self.d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("# " + r.stderr.replace("\n", "\n# "))
        return r.returncode

    def read(self, p):
        with open(p, "rb") as f:
            return f.read()

    def done(self):
        shutil.rmtree(self.top)


def main():
    # An appended tail past the last completed sync: dropped, synced part kept.
    c = Case()
    p = c.create("seg.log", b"A" * 1000)
    c.sync(c.d)  # the creation made durable by a directory sync...
    c.sync(p)  # ...and the data by the file's
    c.write(p, 1000, b"B" * 700)
    ok(c.run("drop") == 0, "drop: runs")
    ok(c.read(p) == b"A" * 1000 + bytes(700), "drop: synced bytes stay, the unsynced tail is zeroed")
    c.done()

    c = Case()
    p = c.create("seg.log", b"A" * 1000)
    c.sync(p)
    c.write(p, 1000, b"B" * 700)
    c.run("keep")
    ok(c.read(p) == b"A" * 1000 + b"B" * 700, "keep: unsynced bytes kept; a synced file's creation survives")
    c.done()

    # A sync that failed, or began and never completed, covers nothing.
    c = Case()
    p = c.create("f", b"")
    c.sync(c.d)
    c.write(p, 0, b"X" * 600)
    c.sync(p, rc=-5)
    c.write(p, 600, b"Y" * 100)
    c.sync(p, complete=False)
    c.run("drop")
    ok(c.read(p) == bytes(700), "a failed or unfinished fdatasync makes nothing durable")
    c.done()

    # A write after the sync began is not covered by it.
    c = Case()
    p = c.create("f", b"")
    c.sync(c.d)
    c.write(p, 0, b"X" * 512)
    c.sid += 1
    c.lines.append(f"B 1.{c.sid} {c.ino(p)}")
    c.write(p, 512, b"Y" * 512)
    c.lines.append(f"S 1.{c.sid} 0")
    c.run("drop")
    ok(c.read(p) == b"X" * 512 + bytes(512), "only writes before the sync began are durable")
    c.done()

    # A syncfs (ino 0) covers every file and directory.
    c = Case()
    p = c.create("a", b"1" * 100)
    q = c.create("b", b"2" * 100)
    c.sync(None)
    c.run("drop")
    ok(os.path.exists(p) and c.read(p) == b"1" * 100 and c.read(q) == b"2" * 100,
       "a syncfs makes files, their data and their names durable")
    c.done()

    # A file created and never synced, nor its directory: gone.
    c = Case()
    p = c.create("new.log", b"Z" * 100)
    c.run("keep")
    ok(not os.path.exists(p), "a file whose creation nothing made durable is deleted")
    c.done()

    # A rename over an old file, the directory never synced: undone.
    c = Case()
    old = c.create("state", b"old")
    c.sync(old)
    c.sync(c.d)
    tmp = c.create("state.tmp", b"new")
    c.sync(tmp)
    c.rename(tmp, old)
    c.run("keep")
    ok(c.read(old) == b"old", "a rename no directory sync covered is undone: the old file is back")
    c.done()

    # The same with the directory synced after the rename: it stays.
    c = Case()
    old = c.create("state", b"old")
    c.sync(old)
    c.sync(c.d)
    tmp = c.create("state.tmp", b"new")
    c.sync(tmp)
    c.rename(tmp, old)
    c.sync(c.d)
    c.run("drop")
    ok(c.read(old) == b"new" and not os.path.exists(tmp), "a rename the directory sync covered stays")
    c.done()

    # random: every unsynced byte is old (zero), new, or garbage; synced ones stay.
    c = Case()
    p = c.create("seg.log", b"A" * 4096)
    c.sync(p)
    c.write(p, 4096, b"B" * 8192)
    c.run("random")
    d = c.read(p)
    ok(d[:4096] == b"A" * 4096 and len(d) == 4096 + 8192, "random: synced bytes and the size stay")
    c.done()

    print(f"1..{N}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
