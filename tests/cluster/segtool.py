#!/usr/bin/env python3
"""segtool.py — disk faults in a stopped broker's partition directory, for the fault
suite (issue 14: "a flipped byte or a cut tail in a segment").

    segtool.py cut  PARTITION_DIR OFFSET   zero every byte from the batch holding OFFSET
                                           to the end of the data (as a lost page-cache
                                           tail would look); prints how many records went
    segtool.py flip PARTITION_DIR OFFSET [BYTE]
                                           flip one bit of byte BYTE (default 70: inside
                                           the records) of the batch holding OFFSET
    segtool.py end  PARTITION_DIR          the log end offset the files hold

Only for a broker that is not running: a live broker's writes would race it. The
walk is checker.py's (independent of storage/). Exit 0 done, 1 no such offset, 2 usage.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checker import read_batches  # noqa: E402


def locate(pdir, offset):
    """(file, position, batch) of the batch holding offset, or None."""
    for name in sorted(x for x in os.listdir(pdir) if x.endswith(".log")):
        path = os.path.join(pdir, name)
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        for base, last, b in read_batches_of(data):
            if base <= offset <= last:
                return path, pos, (base, last, b)
            pos += len(b)
    return None


def read_batches_of(data):
    # read_batches walks a directory; this walks one file's bytes the same way.
    import struct
    pos = 0
    while pos + 12 <= len(data):
        base, blen = struct.unpack_from(">qi", data, pos)
        if base == 0 and blen == 0:
            return
        end = pos + 12 + blen
        if blen < 49 or end > len(data) or data[pos + 16] != 2:
            return
        (lod,) = struct.unpack_from(">i", data, pos + 23)
        yield base, base + lod, data[pos:end]
        pos = end


def main(argv):
    if len(argv) < 2 or argv[0] not in ("cut", "flip", "end"):
        print(__doc__.strip().splitlines()[2:7] and __doc__, file=sys.stderr)
        return 2
    cmd, pdir = argv[0], argv[1]
    if cmd == "end":
        bs = read_batches(pdir)
        print(bs[-1][1] + 1 if bs else 0)
        return 0
    if len(argv) < 3:
        return 2
    offset = int(argv[2])
    found = locate(pdir, offset)
    if found is None:
        print(f"segtool: no batch holds offset {offset} in {pdir}", file=sys.stderr)
        return 1
    path, pos, (base, last, b) = found
    with open(path, "r+b") as f:
        if cmd == "cut":
            data = f.read()
            end = pos
            for _b, _l, bb in read_batches_of(data[pos:]):
                end += len(bb)
            f.seek(pos)
            f.write(b"\0" * (end - pos))
            f.flush()
            os.fsync(f.fileno())
            print(f"cut {os.path.basename(path)} at byte {pos}: offsets {base}.. gone "
                  f"({end - pos} bytes zeroed)")
        else:
            k = int(argv[3]) if len(argv) > 3 else 70
            if k >= len(b):
                k = len(b) - 1
            f.seek(pos + k)
            old = f.read(1)[0]
            f.seek(pos + k)
            f.write(bytes([old ^ 0x01]))
            f.flush()
            os.fsync(f.fileno())
            print(f"flipped byte {k} of the batch at offset {base} in {os.path.basename(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
