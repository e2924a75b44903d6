#!/usr/bin/env python3
"""powerloss.py — rewind data directories to what a power loss would leave.

    powerloss.py [--seed N] [--mode random|drop|keep] JOURNAL DATADIR...

kill -9 keeps the page cache, so a broker killed -9 finds on restart every
byte it wrote, synced or not. A power loss does not. Brokers started with
RUNNEL_CRASH_JOURNAL=JOURNAL (storage/crash.h: a test facility, never on by
default) record in it every file they create, every range they write (before
the write is issued), every fdatasync/syncfs begun and completed, renames
(the file a rename replaces hard-linked to JOURNAL.d/) and unlinks. After
kill -9 of every broker that wrote the journal, this tool turns each data
directory into what the disk would hold had the power gone at that moment
(SQLite's test6.c model, as the unit tests' crash layer in
tests/unit/storage/helpers.h):

  - bytes written since the last completed sync of their file (fdatasync of
    it, or a syncfs) are, sector (512 B) by sector, kept, zeroed or garbled
    (--mode random; drop zeroes them all, keep keeps them all). Only bytes a
    write touched change: synced bytes sharing a sector with a torn write
    stay (power-safe overwrite, as SQLite assumes by default);
  - a file created since the journal began whose creation nothing made
    durable (no sync of its directory or of the file itself after it) is
    deleted;
  - a rename no later sync of the target's directory covered is undone: the
    file goes back to its old name and the file it replaced comes back.

Metadata other than file names (sizes, truncations, unlinks, new
directories) is taken as durable at once: lenient there, strict about data,
as the unit crash layer is. A write still in flight when a sync of its file
began counts as covered by it (the log syncs only what its completed writes
hold; the unit crash tests check that order strictly).

Prints one summary line and, with -v, what it did to each file. The journal
and JOURNAL.d are left for the caller to remove (a restarted broker must
start a new journal: the rewound state is the new durable base).
"""
import argparse
import os
import random
import sys

SECTOR = 512


def parse(journal):
    """The journal's events, in order, as tuples."""
    out = []
    with open(journal, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # a line cut by the kill: the event did not happen yet
            line = raw[:-1].decode("utf-8", "surrogateescape")
            kind, _, rest = line.partition(" ")
            out.append((kind, rest))
    return out


class Model:
    def __init__(self):
        self.dirty = {}  # ino -> [[lo, hi, seq]]
        self.created = {}  # ino -> {seq, dir, path, durable}
        self.begins = {}  # sync id -> (ino, seq)
        self.renames = []  # dicts, in order
        self.syncs = 0

    def run(self, events):
        for seq, (kind, rest) in enumerate(events):
            if kind == "O":
                ino, d, new, path = rest.split(" ", 3)
                ino, d = int(ino), int(d)
                if new == "1":
                    self.dirty[ino] = []
                    self.created[ino] = {"seq": seq, "dir": d, "path": path, "durable": False}
            elif kind == "W":
                ino, lo, hi = (int(x) for x in rest.split())
                self.dirty.setdefault(ino, []).append([lo, hi, seq])
            elif kind == "T":
                pass  # sizes: lenient (durable at once)
            elif kind == "U":
                ino = int(rest)
                self.dirty.pop(ino, None)
                self.created.pop(ino, None)
            elif kind == "B":
                sid, ino = rest.split()
                self.begins[sid] = (int(ino), seq)
            elif kind == "S":
                sid, rc = rest.split()
                if int(rc) != 0 or sid not in self.begins:
                    continue
                ino, bseq = self.begins.pop(sid)
                self.synced(ino, bseq)
            elif kind == "R":
                side, fd, td, paths = rest.split(" ", 3)
                frm, _, to = paths.partition("\t")
                self.renames.append({"seq": seq, "side": side, "fdir": int(fd), "tdir": int(td),
                                     "from": frm, "to": to, "durable": False})

    def synced(self, ino, bseq):
        """A sync of ino (0: the whole file system) begun at bseq completed."""
        self.syncs += 1
        inos = list(self.dirty) if ino == 0 else [ino]
        for i in inos:
            if i in self.dirty:
                self.dirty[i] = [r for r in self.dirty[i] if r[2] >= bseq]
        for i, c in self.created.items():
            if c["seq"] < bseq and (ino == 0 or ino == i or ino == c["dir"]):
                c["durable"] = True
        for r in self.renames:
            if r["seq"] < bseq and (ino == 0 or ino == r["tdir"]):
                r["durable"] = True


def ino_map(dirs):
    m = {}
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            for name in files:
                p = os.path.join(root, name)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                m[st.st_ino] = p
    return m


def rewind(journal, dirs, mode, rng, verbose):
    m = Model()
    events = parse(journal)
    m.run(events)
    tops = [os.path.abspath(d) for d in dirs]

    def mine(path):
        a = os.path.abspath(path)
        return any(a == t or a.startswith(t + "/") for t in tops)

    undone = 0
    for r in reversed(m.renames):
        if r["durable"] or not mine(r["to"]) or r["side"] == "!":
            continue  # "!": the replaced file was not kept (journal on another fs)
        if not os.path.lexists(r["to"]) or os.path.lexists(r["from"]):
            continue
        os.rename(r["to"], r["from"])
        if r["side"] != "-" and os.path.exists(r["side"]):
            os.link(r["side"], r["to"])
        undone += 1
        if verbose:
            print(f"# undo rename {r['from']} -> {r['to']}")
    where = ino_map(tops)
    deleted = 0
    for ino, c in m.created.items():
        if c["durable"] or ino not in where:
            continue
        if verbose:
            print(f"# delete {where[ino]} (creation never made durable)")
        os.unlink(where[ino])
        del where[ino]
        m.dirty.pop(ino, None)
        deleted += 1
    files = kept = zeroed = garbled = 0
    for ino, ranges in m.dirty.items():
        if not ranges or ino not in where:
            continue
        path = where[ino]
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            changed = 0
            # Sector by sector over the union of the unsynced ranges.
            touched = {}
            for lo, hi, _ in ranges:
                lo, hi = max(0, lo), min(hi, size)
                for s in range(lo // SECTOR, (hi + SECTOR - 1) // SECTOR) if hi > lo else ():
                    a, b = max(lo, s * SECTOR), min(hi, (s + 1) * SECTOR)
                    spans = touched.setdefault(s, [])
                    spans.append((a, b))
            for s in sorted(touched):
                what = {"drop": "zero", "keep": "keep"}.get(mode) or rng.choice(("keep", "zero", "garble"))
                if what == "keep":
                    kept += 1
                    continue
                for a, b in touched[s]:
                    f.seek(a)
                    f.write(bytes(b - a) if what == "zero" else rng.randbytes(b - a))
                    changed += b - a
                if what == "zero":
                    zeroed += 1
                else:
                    garbled += 1
            if changed:
                files += 1
                if verbose:
                    print(f"# {path}: {changed} unsynced bytes changed")
    print(f"powerloss: {len(events)} journal events, {m.syncs} syncs; {files} files rewound "
          f"(sectors kept {kept}, zeroed {zeroed}, garbled {garbled}), {deleted} files deleted, "
          f"{undone} renames undone")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=("random", "drop", "keep"), default="random")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("journal")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    rewind(a.journal, a.dirs, a.mode, random.Random(a.seed), a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
