#!/usr/bin/python3
"""charts.py — PNG charts of a tests/perf/run result.

    tests/perf/charts.py OUT/results.json CHART_DIR

Draws, with Debian's python3-matplotlib (Agg backend, no display needed):
  throughput.png  produce and consume by record size, records/s (log scale) and
                  MiB/s, runnel against Redis Streams and NATS JetStream on one
                  log (runnel: 1 partition), acks=1 / appendfsync everysec /
                  JetStream's default; the MiB/s panels carry the machine's
                  limits (raw disk write, loopback TCP) as lines.
  latency.png     produce latency p50 / p99 / p99.9 at half of each
                  configuration's peak (runnel, NATS; redis-benchmark cannot
                  pace), log scale, with the 1 ms target.
  fixed-latency.png
                  produce latency p50 / p99 / p99.9 at issue 16's fixed loads
                  (100 B at 200 k/s, 1 KiB at 150 k/s, 1 KiB at half of runnel's
                  peak), runnel and NATS JetStream side by side per load, open
                  loop on both (from each record's scheduled send time), log
                  scale, with the 5 ms target at half of peak.
It picks rows by the "system", "op", "size", "producers", "partitions" and
"acks" fields tests/perf/run records in each row's "raw"; a missing row is
left out of the chart rather than failing it.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"runnel": "#1f77b4", "redis": "#d62728", "nats": "#2ca02c"}
SIZES = (100, 1024)


def label_size(s):
    return "1 KiB" if s == 1024 else "%d B" % s


def find(rows, **want):
    for r in rows:
        raw = r.get("raw", {})
        if all(raw.get(k) == v for k, v in want.items()):
            return r
    return None


def ref_line(rows, what_prefix):
    for r in rows:
        if r["section"] == "limits" and r["what"].startswith(what_prefix):
            return r
    return None


def short(x):
    if x >= 999.5e3:
        return "%.3gM" % (x / 1e6)
    if x >= 999.5:
        return "%.0fk" % (x / 1e3) if x >= 99.95e3 else "%.3gk" % (x / 1e3)
    return "%.3g" % x


def bars(ax, series, key, log, limit=None, limit_label=None):
    """series: [(label, color, {size: row})]; draws grouped bars by size."""
    n = len(series)
    width = 0.8 / max(n, 1)
    for i, (label, color, by_size) in enumerate(series):
        xs, ys = [], []
        for j, s in enumerate(SIZES):
            r = by_size.get(s)
            if r and r.get(key):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r[key])
        b = ax.bar(xs, ys, width, label=label, color=color,
                   alpha=1.0 if "8" not in label else 0.6)
        for x, y in zip(xs, ys):
            ax.annotate(short(y), (x, y), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
        del b
    if limit:
        ax.axhline(limit, color="black", linestyle="--", linewidth=1)
        ax.annotate("%s %.0f MiB/s" % (limit_label, limit), (-0.45, limit), fontsize=7,
                    va="bottom")
    ax.set_xticks(range(len(SIZES)))
    ax.set_xticklabels([label_size(s) for s in SIZES])
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def throughput(rows, machine, path):
    prod = []
    for system, name in (("runnel", "runnel"), ("redis", "Redis XADD"), ("nats", "NATS JS")):
        for p in (1, 8):
            want = {"system": system, "op": "produce", "producers": p}
            if system == "runnel":
                want.update(partitions=1, acks="1")
            if system == "redis":
                want.update(fsync="everysec")
            by = {s: find(rows, size=s, **want) for s in SIZES}
            if any(by.values()):
                who = "client" if system == "redis" else "producer"
                prod.append(("%s, %d %s%s" % (name, p, who, "s" if p > 1 else ""),
                             COLORS[system], by))
    cons = []
    for system, name in (("runnel", "runnel"), ("redis", "Redis XRANGE"),
                         ("nats", "NATS JS pull")):
        want = {"system": system, "op": "consume"}
        if system == "runnel":
            want["partitions"] = 1
        by = {s: find(rows, size=s, **want) for s in SIZES}
        if any(by.values()):
            cons.append((name, COLORS[system], by))
    raw = ref_line(rows, "disk: sequential")
    tcp = ref_line(rows, "loopback TCP")
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    bars(axes[0][0], prod, "records_per_sec", True)
    axes[0][0].set_title("produce, records/s (log scale)")
    bars(axes[0][1], prod, "mib_per_sec", False, raw and raw["mib_per_sec"], "raw disk write")
    axes[0][1].set_title("produce, MiB/s of payload")
    bars(axes[1][0], cons, "records_per_sec", True)
    axes[1][0].set_title("consume (one reader, from memory), records/s (log scale)")
    bars(axes[1][1], cons, "mib_per_sec", False, tcp and tcp["mib_per_sec"], "loopback TCP")
    axes[1][1].set_title("consume, MiB/s of payload")
    axes[0][0].legend(fontsize=8, loc="upper right")
    axes[1][0].legend(fontsize=8, loc="upper right")
    for ax in axes[1]:
        ax.set_xlabel("record size")
    fig.suptitle("Throughput by record size, one log (runnel: 1 partition, acks=1, "
                 "flush=interval:1000; Redis: appendfsync everysec; NATS: file store)\n"
                 "%s, %s cores, %s" % (machine.get("cpu", "?"), machine.get("cores", "?"),
                                       machine.get("date", "")), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency(rows, machine, path):
    picks = []
    for r in rows:
        raw = r.get("raw", {})
        if raw.get("op") != "latency" or not r.get("latency_ms"):
            continue
        if raw["system"] == "runnel":
            name = "runnel %s\n%d prod, %d part\nacks=%s, flush=%s" % (
                label_size(raw["size"]), raw["producers"], raw["partitions"], raw["acks"],
                raw["flush"].split(":")[0])
        else:
            name = "NATS JS %s\n%d producer\nfile store" % (label_size(raw["size"]),
                                                         raw["producers"])
        picks.append((name, raw["system"], r))
    if not picks:
        return
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(picks)), 5.5))
    pcts = (("p50", 1.0), ("p99", 0.7), ("p999", 0.45))
    width = 0.26
    for i, (pct, alpha) in enumerate(pcts):
        xs, ys, cs = [], [], []
        for j, (name, system, r) in enumerate(picks):
            v = r["latency_ms"].get(pct)
            if v:
                xs.append(j + (i - 1) * width)
                ys.append(v)
                cs.append(COLORS[system])
        ax.bar(xs, ys, width, color=cs, alpha=alpha, edgecolor="black", linewidth=0.5,
               label={"p999": "p99.9"}.get(pct, pct))
        for x, y in zip(xs, ys):
            ax.annotate("%.3g" % y, (x, y), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.annotate("1 ms target (p99, flush=interval)", (-0.45, 1.0), fontsize=7, va="bottom")
    ax.set_xticks(range(len(picks)))
    ax.set_xticklabels([p[0] for p in picks], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms, scheduled send to acknowledgement (log scale)")
    ax.legend(fontsize=8, title="bars: p50 / p99 / p99.9", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Produce latency at half of each configuration's peak throughput\n"
                 "%s, %s cores, %s" % (machine.get("cpu", "?"), machine.get("cores", "?"),
                                       machine.get("date", "")), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fixed_latency(rows, machine, path):
    """Issue 16's fixed loads: per load a group of runnel's and NATS's
    p50 / p99 / p99.9 bars."""
    loads = []
    for r in rows:
        raw = r.get("raw", {})
        if raw.get("op") == "fixed" and raw.get("load") not in [l for l, _ in loads]:
            loads.append((raw["load"], raw))
    if not loads:
        return
    systems = (("runnel", "runnel"), ("nats", "NATS JS"))
    pcts = (("p50", 1.0), ("p99", 0.65), ("p999", 0.35))
    fig, ax = plt.subplots(figsize=(max(7, 3.2 * len(loads)), 5.5))
    width = 0.8 / (len(systems) * len(pcts))
    for j, (load, first) in enumerate(loads):
        for si, (system, _) in enumerate(systems):
            r = find(rows, op="fixed", load=load, system=system)
            if not r or not r.get("latency_ms"):
                continue
            for pi, (pct, alpha) in enumerate(pcts):
                v = r["latency_ms"].get(pct)
                if not v:
                    continue
                x = j - 0.4 + width * (si * len(pcts) + pi + 0.5)
                ax.bar([x], [v], width, color=COLORS[system], alpha=alpha, edgecolor="black",
                       linewidth=0.5)
                ax.annotate("%.0f" % v if v >= 100 else "%.3g" % v, (x, v), ha="center",
                            va="bottom", fontsize=6, xytext=(0, 2), textcoords="offset points")
    labels = []
    for load, raw in loads:
        label = "%s at %s records/s%s" % (label_size(raw["size"]), short(raw["rate"]),
                                          "\n(half of runnel's peak)"
                                          if load.endswith("half") else "")
        # A system that could not take the load: its bars are its queue.
        for system, name in systems:
            r = find(rows, op="fixed", load=load, system=system)
            if r and r.get("records_per_sec") and r["records_per_sec"] < 0.97 * raw["rate"]:
                label += "\n%s fell behind: reached %s/s" % (name, short(r["records_per_sec"]))
        labels.append(label)
    ax.set_xticks(range(len(loads)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.axhline(5.0, color="black", linestyle="--", linewidth=1)
    ax.annotate("5 ms target (p99 at half of peak)", (-0.45, 5.0), fontsize=7, va="bottom")
    handles = [matplotlib.patches.Patch(color=COLORS[s], label=n) for s, n in systems]
    handles += [matplotlib.patches.Patch(facecolor="grey", alpha=a, label={"p999": "p99.9"}.get(
        p, p)) for p, a in pcts]
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 10)  # room for the legend above the bars
    ax.legend(handles=handles, fontsize=8, loc="upper left", ncol=5,
              title="bars per system: p50 / p99 / p99.9", title_fontsize=8)
    ax.set_ylabel("ms, scheduled send to acknowledgement (log scale)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Produce latency at fixed loads, open loop, one partition / one stream\n"
                 "runnel acks=1, flush=interval:1000, linger.ms=1; NATS JetStream file store, "
                 "default sync\n%s, %s cores, %s" % (machine.get("cpu", "?"),
                                                     machine.get("cores", "?"),
                                                     machine.get("date", "")), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n")[2].strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        res = json.load(f)
    os.makedirs(sys.argv[2], exist_ok=True)
    throughput(res["rows"], res["machine"], os.path.join(sys.argv[2], "throughput.png"))
    latency(res["rows"], res["machine"], os.path.join(sys.argv[2], "latency.png"))
    fixed_latency(res["rows"], res["machine"], os.path.join(sys.argv[2], "fixed-latency.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
