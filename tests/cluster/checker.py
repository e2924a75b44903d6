#!/usr/bin/env python3
"""checker.py — the cluster fault suite's verdict over a history and the replicas' files
(issue 14 item 3).

    checker.py HISTORY [--replicas DIR,DIR,... --partition-dir NAME [--hw N]]...
    checker.py --replicas DIR,DIR --partition-dir NAME [--hw N]
    checker.py --epochs FILE

HISTORY is what tests/cluster/workload.c writes: one JSON object a line, each with
"type" (invoke | ok | fail | info), "f" (send | poll | commit | committed | assign |
final | hw), "proc" (the client that did it), "t" (wall-clock ms) and, for
operations that take time, "id" (an invoke and its completion share proc and id).

    send    invoke {value, partition}; ok {value, partition, offset}: acknowledged;
            info {value, err}: indeterminate (it may or may not be in the log);
            fail {value, err}: definite, never queued, must never be read.
    poll    ok {recs: [[partition, offset, value], ...]} in the order returned;
            info {err}: the poll failed (the position must not move for it).
    assign  info {partition, assigned: 0|1}: a group (re)assignment or a seek; the
            next poll of that partition by that proc starts a new session.
    commit  ok {group, offsets: [[partition, offset], ...]}: what one proc committed.
    committed ok {group, partition, offset}: a committed offset read back (FetchOffsets).
    final   ok {recs} like poll, by the read after the faults healed;
    hw      ok {partition, hw, complete}: where the final read of a partition
            ended, complete=true when it reached the high watermark it aimed at.

What is an anomaly (each counted, the first of each kind printed with the history
lines around it):

    lost              acknowledged, but absent from a complete final read of its partition
    unseen            acknowledged, but the final read of its partition never completed
                      and never saw it (never seen after healing)
    vanished          read by a consumer during the run, not acknowledged, and absent
                      from a complete final read (a read of uncommitted data)
    duplicate         one value at two offsets
    offset_conflict   one offset holding two values (acknowledged or read)
    phantom           a value read that no send invoked, or whose send failed definitely
    poll_skip         a consumer session jumped over offsets known to hold records
    poll_backwards    a consumer session returned an offset at or below one it had returned
    commit_backwards  a group's committed offset of a partition moved back: one proc's
                      commits, or reads of it, where the later read began after the
                      earlier ended (a read of -1, nothing committed, after one that
                      saw an offset counts: the group forgot it)
    replica_mismatch  replicas whose segment bytes differ below the high watermark
    two_leaders       one quorum epoch with two different leaders named (--epochs)
    epoch_backwards   a broker that named an epoch, then a lower one (--epochs): an
                      epoch reused or forgotten

--epochs FILE holds "T NODE EPOCH LEADER" lines, samples of `runnel cluster status`
on every broker during a run (LEADER "-" when none is known).

The replica check walks each DIR/NAME/*.log itself (RecordBatch v2 headers, DESIGN
§3; independent of storage/ on purpose: a checker must not share the code it judges)
and compares the raw bytes of every batch whose last offset is below the high
watermark (--hw, else the smallest log end among the replicas). --mask-timestamps
leaves out each batch's CRC and its two timestamps (bytes 17-20 and 27-42): the
metadata log's voters each build their own batch of an entry with their own clock
(broker/meta/quorum_store.c, rn__quorum_log_append), so only the rest of the batch can agree there.

Exit status: 0 clean, 1 at least one anomaly, 2 usage or unreadable input.
"""
import argparse
import json
import os
import struct
import sys

KINDS = ["lost", "unseen", "vanished", "duplicate", "offset_conflict", "phantom",
         "poll_skip", "poll_backwards", "commit_backwards", "replica_mismatch", "two_leaders",
         "epoch_backwards"]


class Result:
    def __init__(self):
        self.counts = {k: 0 for k in KINDS}
        self.first = {}  # kind -> (message, [history line numbers])
        self.stats = {}

    def add(self, kind, msg, lines=()):
        self.counts[kind] += 1
        if kind not in self.first:
            self.first[kind] = (msg, [n for n in lines if n])

    def failed(self):
        return any(self.counts.values())


def load_history(path):
    """The events of a history, each with its line number in "_n"."""
    events = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                e = json.loads(line)
            except ValueError as exc:
                # A line cut by a killed writer can only be the last one.
                raise ValueError(f"{path}:{n}: not JSON ({exc})")
            if not isinstance(e, dict) or "type" not in e or "f" not in e:
                raise ValueError(f"{path}:{n}: not an event (needs type and f)")
            e["_n"] = n
            events.append(e)
    return events


def check_history(events, res):
    sends = {}       # value -> {"invoke": e, "ok": e, "info": e, "fail": e}
    at = {}          # (partition, offset) -> {value: first line}
    where = {}       # value -> {(partition, offset): first line}
    read_by = {}     # value -> first line of a poll (not final) that returned it
    final_seen = set()   # (partition, value) from final reads
    final_done = {}  # partition -> complete?
    acked_times = []

    def observe(p, o, v, n):
        at.setdefault((p, o), {}).setdefault(v, n)
        where.setdefault(v, {}).setdefault((p, o), n)

    for e in events:
        f, ty, n = e["f"], e["type"], e["_n"]
        if f == "send":
            s = sends.setdefault(e["value"], {})
            s.setdefault(ty, e)
            if ty == "ok":
                observe(e["partition"], e["offset"], e["value"], n)
                acked_times.append(e["t"])
        elif f in ("poll", "final") and ty == "ok":
            for p, o, v in e["recs"]:
                observe(p, o, v, n)
                if f == "final":
                    final_seen.add((p, v))
                else:
                    read_by.setdefault(v, n)
        elif f == "hw" and ty == "ok":
            final_done[e["partition"]] = final_done.get(e["partition"], False) or bool(
                e.get("complete"))

    # One offset, two values; one value, two offsets.
    for (p, o), vals in sorted(at.items()):
        if len(vals) > 1:
            desc = ", ".join(f"{v!r} (line {ln})" for v, ln in sorted(vals.items(),
                                                                        key=lambda x: x[1]))
            res.add("offset_conflict", f"partition {p} offset {o} holds {desc}",
                    sorted(vals.values()))
    for v, places in sorted(where.items(), key=lambda x: min(x[1].values())):
        if len(places) > 1:
            desc = ", ".join(f"{p}/{o} (line {ln})" for (p, o), ln in
                             sorted(places.items(), key=lambda x: x[1]))
            res.add("duplicate", f"value {v!r} at {desc}", sorted(places.values()))

    # Phantoms: read, but never sent, or sent and refused for certain.
    for v, places in where.items():
        s = sends.get(v)
        if s is None or ("invoke" not in s and "ok" not in s):
            ln = min(places.values())
            res.add("phantom", f"value {v!r} read at line {ln} was never sent", [ln])
        elif "fail" in s and "ok" not in s:
            ln = min(places.values())
            res.add("phantom", f"value {v!r} read at line {ln}, but its send failed "
                    f"for certain (line {s['fail']['_n']})", [s["fail"]["_n"], ln])

    # Lost and unseen: every acknowledged value against the read after healing.
    n_acked = 0
    for v, s in sends.items():
        ok = s.get("ok")
        if ok is None:
            continue
        n_acked += 1
        p = ok["partition"]
        if (p, v) in final_seen:
            continue
        if final_done.get(p):
            res.add("lost", f"value {v!r} acknowledged at {p}/{ok['offset']} (line "
                    f"{ok['_n']}) is not in the final read of partition {p}", [ok["_n"]])
        else:
            res.add("unseen", f"value {v!r} acknowledged at {p}/{ok['offset']} (line "
                    f"{ok['_n']}) was never seen after healing: the final read of partition "
                    f"{p} did not complete", [ok["_n"]])
    # Vanished: read during the run, not acknowledged, gone after healing.
    for v, ln in read_by.items():
        s = sends.get(v, {})
        if "ok" in s or "invoke" not in s or "fail" in s:
            continue  # acknowledged: lost above; never sent or refused: a phantom
        ps = {p for (p, _o) in where[v]}
        for p in ps:
            if final_done.get(p) and (p, v) not in final_seen:
                res.add("vanished", f"value {v!r} read at line {ln} (not acknowledged) is "
                        f"not in the final read of partition {p}", [ln])

    check_polls(events, at, res)
    check_commits(events, res)

    acked_times.sort()
    gap = max((b - a for a, b in zip(acked_times, acked_times[1:])), default=0)
    res.stats.update({
        "invoked": sum(1 for s in sends.values() if "invoke" in s),
        "acknowledged": n_acked,
        "indeterminate": sum(1 for s in sends.values() if "info" in s and "ok" not in s),
        "read_back": sum(1 for s in sends.values() if "ok" in s and
                         (s["ok"]["partition"], s["ok"]["value"]) in final_seen),
        "polls": sum(1 for e in events if e["f"] == "poll" and e["type"] == "ok"),
        "unavailable_ms": gap,
    })


def check_polls(events, at, res):
    """Each (proc, partition) session reads offsets that go up by one, where the
    offsets between two reads are known to hold records (any observation)."""
    last = {}  # (proc, partition) -> (offset, line)
    for e in events:
        f, ty, n = e["f"], e["type"], e["_n"]
        if f == "assign":
            last.pop((e["proc"], e["partition"]), None)
        elif f in ("poll", "final") and ty == "ok":
            for p, o, v in e["recs"]:
                key = (e["proc"], p)
                prev = last.get(key)
                if prev is not None:
                    po, pn = prev
                    if o <= po:
                        res.add("poll_backwards", f"{e['proc']} read {p}/{o} (line {n}) after "
                                f"{p}/{po} (line {pn})", [pn, n])
                    elif o > po + 1:
                        known = [k for k in range(po + 1, o) if (p, k) in at]
                        if known:
                            res.add("poll_skip", f"{e['proc']} read {p}/{o} (line {n}) right "
                                    f"after {p}/{po} (line {pn}), skipping {len(known)} "
                                    f"offset(s) known to hold records, first {p}/{known[0]}",
                                    [pn, n])
                last[key] = (o, n)


def check_commits(events, res):
    # One proc's own commits of a (group, partition) never go back.
    own = {}  # (proc, group, partition) -> (offset, line)
    for e in events:
        if e["f"] == "commit" and e["type"] == "ok":
            for p, o in e["offsets"]:
                key = (e["proc"], e["group"], p)
                prev = own.get(key)
                if prev is not None and o < prev[0]:
                    res.add("commit_backwards", f"{e['proc']} committed {e['group']} {p} at "
                            f"{o} (line {e['_n']}) after committing {prev[0]} (line {prev[1]})",
                            [prev[1], e["_n"]])
                if prev is None or o >= prev[0]:
                    own[key] = (o, e["_n"])
    # Reads of the committed offset, in real time: a read that began after
    # another ended sees at least what that one saw.
    invokes = {}
    reads = {}  # (group, partition) -> [(start, end, offset, line)]
    for e in events:
        if e["f"] != "committed":
            continue
        if e["type"] == "invoke":
            invokes[(e["proc"], e.get("id"))] = e["t"]
        elif e["type"] == "ok":
            # -1 (nothing committed) counts too: read after a commit was
            # seen, it means the group's offsets were forgotten.
            start = invokes.get((e["proc"], e.get("id")), e["t"])
            reads.setdefault((e["group"], e["partition"]), []).append(
                (start, e["t"], e["offset"], e["_n"]))
    for (g, p), rs in sorted(reads.items()):
        by_end = sorted(rs, key=lambda r: r[1])
        best = None  # (offset, line) the highest seen among reads ended so far
        i = 0
        for r in sorted(rs, key=lambda r: r[0]):
            while i < len(by_end) and by_end[i][1] < r[0]:
                if best is None or by_end[i][2] > best[0]:
                    best = (by_end[i][2], by_end[i][3])
                i += 1
            if best is not None and r[2] < best[0]:
                res.add("commit_backwards", f"group {g} partition {p}: committed offset read "
                        f"as {r[2]} (line {r[3]}) after a read that had ended with {best[0]} "
                        f"(line {best[1]})", [best[1], r[3]])


# ---- Replicas ------------------------------------------------------------------------

HEADER = 61  # the RecordBatch v2 header (DESIGN §3)


def read_batches(pdir):
    """[(base_offset, last_offset, bytes)] of every batch in pdir's segments, in order;
    a walk stops at a zero header (the sparse tail of an active segment) or at the
    first batch that is cut short or not magic 2 (what recovery would cut)."""
    out = []
    names = sorted(x for x in os.listdir(pdir) if x.endswith(".log"))
    for name in names:
        with open(os.path.join(pdir, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 12 <= len(data):
            base, blen = struct.unpack_from(">qi", data, pos)
            if base == 0 and blen == 0:
                break
            end = pos + 12 + blen
            if blen < HEADER - 12 or end > len(data) or data[pos + 16] != 2:
                break
            (lod,) = struct.unpack_from(">i", data, pos + 23)
            out.append((base, base + lod, data[pos:end]))
            pos = end
    return out


def masked(b):
    """A batch without its CRC and timestamps (see --mask-timestamps)."""
    return b[:17] + b[21:27] + b[43:]


def check_replicas(dirs, name, hw, res, mask=False):
    reps = []
    for d in dirs:
        pdir = os.path.join(d, name)
        if not os.path.isdir(pdir):
            res.add("replica_mismatch", f"{pdir}: no such partition directory")
            return
        reps.append((pdir, read_batches(pdir)))
    ends = [b[-1][1] + 1 if b else 0 for _d, b in reps]
    starts = [b[0][0] if b else 0 for _d, b in reps]
    limit = hw if hw is not None else min(ends)
    lo = max(starts)
    compared = 0
    ref_dir, ref = reps[0]
    ref_by_base = {b[0]: b for b in ref if b[0] >= lo and b[1] < limit}
    for i, (pdir, batches) in enumerate(reps):
        if hw is not None and ends[i] < hw:
            res.add("replica_mismatch", f"{pdir} ends at offset {ends[i]}, below the high "
                    f"watermark {hw}")
            continue
        mine = {b[0]: b for b in batches if b[0] >= lo and b[1] < limit}
        for base in sorted(set(ref_by_base) | set(mine)):
            a, b = ref_by_base.get(base), mine.get(base)
            if a is None or b is None:
                res.add("replica_mismatch", f"{name}: batch at offset {base} is in "
                        f"{ref_dir if a else pdir} but not in {pdir if a else ref_dir}")
                break
            x, y = (masked(a[2]), masked(b[2])) if mask else (a[2], b[2])
            if x != y:
                k = next(i for i in range(min(len(x), len(y)) + 1)
                         if i == min(len(x), len(y)) or x[i] != y[i])
                if mask:
                    k += 4 if k >= 17 else 0
                    k += 16 if k >= 27 else 0
                res.add("replica_mismatch", f"{name}: batch at offset {base} differs between "
                        f"{ref_dir} and {pdir} first at byte {k} of the batch "
                        f"({len(a[2])} and {len(b[2])} bytes)")
                break
            compared += 1
    res.stats["replica_batches_compared"] = res.stats.get("replica_batches_compared", 0) + \
        compared
    res.stats.setdefault("replica_ranges", []).append(f"{name} [{lo}, {limit})")


# ---- The quorum's epochs ----------------------------------------------------------------

def check_epochs(path, res):
    leaders = {}  # epoch -> {leader: first line}
    last = {}     # node -> (epoch, line)
    n_samples = 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 4:
                continue  # a sample cut short by a stopped broker
            _t, node, epoch, leader = parts
            try:
                epoch = int(epoch)
            except ValueError:
                continue
            n_samples += 1
            if leader != "-":
                seen = leaders.setdefault(epoch, {})
                seen.setdefault(leader, n)
                if len(seen) == 2 and leader == list(seen)[1]:
                    res.add("two_leaders", f"epoch {epoch} has leaders " + " and ".join(
                        f"{l} ({path} line {ln})" for l, ln in seen.items()))
            prev = last.get(node)
            if prev is not None and epoch < prev[0]:
                res.add("epoch_backwards", f"node {node} named epoch {epoch} ({path} line {n}) "
                        f"after epoch {prev[0]} (line {prev[1]})")
            if prev is None or epoch >= prev[0]:
                last[node] = (epoch, n)
    res.stats["epoch_samples"] = n_samples
    res.stats["epochs_seen"] = len(leaders)


# ---- Report --------------------------------------------------------------------------

def report(res, history_path, out):
    for k, v in res.stats.items():
        if isinstance(v, list):
            v = "; ".join(v)
        print(f"{k}: {v}", file=out)
    for k in KINDS:
        print(f"{k}: {res.counts[k]}", file=out)
    lines = None
    for k in KINDS:
        if k not in res.first:
            continue
        msg, ns = res.first[k]
        print(f"FIRST {k}: {msg}", file=out)
        if ns and history_path:
            if lines is None:
                with open(history_path, "r", encoding="utf-8", errors="replace") as f:
                    lines = f.read().splitlines()
            shown = set()
            for c in sorted(ns)[:3]:
                for i in range(max(1, c - 3), min(len(lines), c + 3) + 1):
                    if i in shown:
                        continue
                    shown.add(i)
                    mark = ">" if i in ns else " "
                    text = lines[i - 1]
                    if len(text) > 300:
                        text = text[:300] + "..."
                    print(f"  {mark}{i:6d} {text}", file=out)
    print("verdict: " + ("FAIL" if res.failed() else "ok"), file=out)


def main(argv):
    ap = argparse.ArgumentParser(description="the cluster fault suite's history checker")
    ap.add_argument("history", nargs="?", help="JSON-lines history (tests/cluster/workload)")
    ap.add_argument("--replicas", action="append", default=[],
                    help="comma-separated data dirs holding one partition's replicas")
    ap.add_argument("--partition-dir", action="append", default=[],
                    help="the partition's directory name (topic-partition), one per --replicas")
    ap.add_argument("--hw", action="append", default=[],
                    help="high watermark per --replicas (default: smallest log end)")
    ap.add_argument("--epochs", help="T NODE EPOCH LEADER samples of cluster status")
    ap.add_argument("--mask-timestamps", action="store_true",
                    help="compare replicas without each batch's CRC and timestamps")
    a = ap.parse_args(argv)
    if not a.history and not a.replicas and not a.epochs:
        ap.error("give a history, replicas, epochs, or some of them")
    if len(a.partition_dir) != len(a.replicas) or len(a.hw) > len(a.replicas):
        ap.error("each --replicas needs its --partition-dir (and at most one --hw)")
    res = Result()
    try:
        if a.history:
            check_history(load_history(a.history), res)
        for i, dirs in enumerate(a.replicas):
            hw = int(a.hw[i]) if i < len(a.hw) and a.hw[i] != "-" else None
            check_replicas([d for d in dirs.split(",") if d], a.partition_dir[i], hw, res,
                           a.mask_timestamps)
        if a.epochs:
            check_epochs(a.epochs, res)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"checker: {exc}", file=sys.stderr)
        return 2
    report(res, a.history, sys.stdout)
    return 1 if res.failed() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
