#!/usr/bin/env python3
"""check_includes.py — the dependency direction of DESIGN §2, checked on every CI run.

    check_includes.py [ROOT]              check the tree at ROOT (default: this repository)
    check_includes.py --self-test         plant backwards includes in temporary copies of
                                          the tree and make sure each one is caught

Reads every `#include "..."` in the .c and .h files under protocol/, storage/, clients/,
tools/ and broker/ and fails, naming file:line and the rule, on one that points against
the direction DESIGN §2 gives:

    protocol <- storage <- broker        protocol <- clients <- tools

and, inside broker/, api/, gateway/ and kafka/ -> part/, coord/, meta/ (never the other way), a
gateway never touching storage directly, and meta/raft knowing nothing of the rest. Only
quoted includes are read: system headers (<...>) are no part of the layout. An include is
placed by its path from the repository root ("broker/part/partitions.h"); a bare name is
the file beside the includer, a header protoc-c generates from protocol/*.proto
("runnel.pb-c.h"), or clients/runnel.h, which examples include as an installed user
would. Anything else is reported, so a new kind of include is a decision, not a
blind spot. Standard library only.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = ("protocol", "storage", "clients", "tools", "broker")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')

# Which top folders each top folder may include (DESIGN §2: dependencies point one way).
ALLOWED = {
    "protocol": {"protocol"},
    "storage": {"storage", "protocol"},
    "clients": {"clients", "protocol"},
    "tools": {"tools", "clients", "protocol"},
    "broker": {"broker", "storage", "protocol"},
}

# `runnel replay` reads segment files itself (DESIGN §9, no broker in between): it may use
# storage's read-only segment reader (issue 12, item 4). No other tool reads the disk.
TOOLS_STORAGE_OK = {"tools/cli_replay.c"}
# ... and, of a clustered broker's data directory, the metadata snapshot files: the
# metadata log before the newest snapshot is deleted, so which topic a name is now
# comes from the snapshot's image (broker/meta/snapshot.h decodes it into image.h's
# image; the two files, no more of the broker, are linked into the CLI).
TOOLS_META_OK = {("tools/cli_replay.c", "broker/meta/snapshot.h"),
                 ("tools/cli_replay.c", "broker/meta/image.h")}

# Inside broker/: the parts that hold the state never reach up into the parts that
# serve requests; api/, gateway/ and kafka/ (the Kafka listener) use part/, coord/ and meta/ through their headers.
LOWER_PARTS = ("part", "coord", "meta")
UPPER_PARTS = ("api", "gateway", "kafka")
RAFT_WHY = " (DESIGN §2: meta/raft knows nothing of the rest)"


def classify(root, includer, target):
    """The repository path an include names, or None when it cannot be placed."""
    if "/" in target and target.split("/", 1)[0] in TOP:
        return os.path.normpath(target)
    beside = os.path.normpath(os.path.join(os.path.dirname(includer), target))
    if os.path.exists(os.path.join(root, beside)):
        return beside
    if target.endswith(".pb-c.h"):
        # Generated at build time from protocol/<name>.proto.
        return "protocol/" + target[: -len(".pb-c.h")] + ".proto"
    if target == "runnel.h":
        return "clients/runnel.h"
    return None


def broker_part(path):
    """'net', 'api', ... for broker/<part>/..., 'top' for broker/<file>."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else "top"


def is_raft(path):
    return path.startswith("broker/meta/raft.") or path.startswith("broker/meta/raft_")


def rule_broken(includer, target):
    """The rule the include breaks (a sentence), or None when it keeps every rule."""
    src_top = includer.split("/", 1)[0]
    dst_top = target.split("/", 1)[0]
    if dst_top not in ALLOWED[src_top]:
        if src_top == "tools" and dst_top == "storage" and includer in TOOLS_STORAGE_OK:
            return None
        if (includer, target) in TOOLS_META_OK:
            return None
        return "%s/ may include only %s/ (DESIGN §2: %s)" % (
            src_top,
            "/, ".join(sorted(ALLOWED[src_top])),
            "protocol <- storage <- broker; protocol <- clients <- tools",
        )
    if src_top != "broker":
        return None
    src_part = broker_part(includer)
    if src_part in ("gateway", "kafka") and dst_top == "storage":
        return ("broker/%s/ never includes storage/"
                " (DESIGN §2: a gateway never touches storage directly)" % src_part)
    if is_raft(includer):
        if dst_top == "broker" and not is_raft(target):
            return "broker/meta/raft includes nothing of broker/ but itself" + RAFT_WHY
        if dst_top not in ("protocol", "broker"):
            return "broker/meta/raft includes only itself and protocol/" + RAFT_WHY
        return None
    if dst_top == "broker" and src_part in LOWER_PARTS and broker_part(target) in UPPER_PARTS:
        return "broker/%s/ never includes broker/%s/" % (src_part, broker_part(target)) + (
            " (DESIGN §2: api/ and gateway/ use part/, coord/ and meta/, not the other way)")
    return None


def sources(root):
    for top in TOP:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith((".c", ".h")):
                    full = os.path.join(dirpath, name)
                    yield os.path.relpath(full, root).replace(os.sep, "/"), full


def check(root):
    """Every broken rule in the tree at root, as 'file:line: #include "x": rule' lines."""
    problems = []
    n_files = n_includes = 0
    for rel, full in sources(root):
        n_files += 1
        with open(full, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                n_includes += 1
                target = classify(root, rel, m.group(1))
                if target is None:
                    problems.append(
                        '%s:%d: #include "%s": cannot tell which folder it points to '
                        "(name it from the repository root)" % (rel, lineno, m.group(1))
                    )
                    continue
                why = rule_broken(rel, target)
                if why:
                    problems.append('%s:%d: #include "%s": %s' % (rel, lineno, m.group(1), why))
    return problems, n_files, n_includes


def main_check(root):
    problems, n_files, n_includes = check(root)
    for p in problems:
        print(p)
    if problems:
        print("include_rules: %d include(s) against DESIGN §2 in %s" % (len(problems), root))
        return 1
    print("include_rules: %d files, %d includes, all in DESIGN §2's direction"
          % (n_files, n_includes))
    return 0


# Each planted include: (file to add it to, the include, words the failure must name).
# A file that does not exist in the copy is created, so the rules for files still to
# come (meta/raft) are tested too.
PLANTS = [
    ("protocol/batch.c", "storage/log.h", "protocol/ may include only protocol/"),
    ("storage/log.c", "broker/broker.h", "storage/ may include only"),
    ("clients/producer.c", "broker/broker.h", "clients/ may include only"),
    ("clients/producer.c", "storage/log.h", "clients/ may include only"),
    ("tools/cli_topic.c", "storage/log.h", "tools/ may include only"),
    ("tools/cli_topic.c", "broker/meta/image.h", "tools/ may include only"),
    ("tools/cli_replay.c", "broker/meta/metadata.h", "tools/ may include only"),
    ("tools/cli_common.h", "broker/broker.h", "tools/ may include only"),
    ("broker/main.c", "clients/runnel.h", "broker/ may include only"),
    ("broker/gateway/rest.c", "tools/cli_common.h", "broker/ may include only"),
    ("broker/part/partitions.c", "broker/api/api.h", "broker/part/ never includes broker/api/"),
    ("broker/coord/groups.c", "broker/gateway/http.h",
     "broker/coord/ never includes broker/gateway/"),
    ("broker/meta/metadata.h", "broker/api/api.h", "broker/meta/ never includes broker/api/"),
    ("broker/gateway/json.c", "storage/log.h", "broker/gateway/ never includes storage/"),
    ("broker/kafka/apis.c", "storage/log.h", "broker/kafka/ never includes storage/"),
    ("broker/part/partitions.c", "broker/kafka/conn.h", "broker/part/ never includes broker/kafka/"),
    ("broker/meta/raft.c", "broker/broker.h", "meta/raft includes nothing of broker/"),
    ("broker/meta/raft.h", "storage/log.h", "meta/raft includes only itself and protocol/"),
    ("broker/net/conn.c", "nowhere.h", "cannot tell which folder"),
]

# Includes that keep the rules and must stay accepted.
KEPT = [
    ("tools/cli_replay.c", "storage/segment.h"),
    ("tools/cli_replay.c", "broker/meta/snapshot.h"),
    ("broker/meta/raft.c", "broker/meta/raft.h"),
    ("broker/meta/raft.c", "protocol/errors.h"),
    ("broker/api/produce.c", "broker/part/partitions.h"),
    ("broker/gateway/rest.c", "broker/coord/groups.h"),
    ("broker/kafka/apis.c", "broker/gateway/client.h"),
]


def plant(root, rel, target):
    """Add `#include "target"` near the top of root/rel; return its line number."""
    path = os.path.join(root, rel)
    lines = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    # After the design comment: where a real include would go.
    at = 0
    for i, line in enumerate(lines):
        if INCLUDE.match(line) or line.startswith("#include <"):
            at = i
            break
    lines.insert(at, '#include "%s"\n' % target)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return at + 1


def not_source(d, names):
    """copytree's ignore: every file but .c and .h (the copies hold only what is read)."""
    return [n for n in names
            if os.path.isfile(os.path.join(d, n)) and not n.endswith((".c", ".h"))]


def self_test(root):
    """Run this script (as CI does) on copies of the tree with one planted include each."""
    failures = 0
    script = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory(prefix="check_includes.") as tmp:
        clean = os.path.join(tmp, "clean")
        for top in TOP:
            shutil.copytree(os.path.join(root, top), os.path.join(clean, top),
                            ignore=not_source)

        def run(tree):
            r = subprocess.run([sys.executable, script, tree], capture_output=True, text=True)
            return r.returncode, r.stdout + r.stderr

        rc, out = run(clean)
        if rc != 0:
            print("self-test: the unchanged tree does not pass:\n" + out)
            return 1
        for n, (rel, target, words) in enumerate(PLANTS):
            tree = os.path.join(tmp, "plant%d" % n)
            shutil.copytree(clean, tree)
            line = plant(tree, rel, target)
            rc, out = run(tree)
            where = "%s:%d:" % (rel, line)
            if rc == 0 or where not in out or words not in out:
                print("self-test FAILED: %s including \"%s\" was not caught as %r at %s;"
                      " got rc=%d:\n%s" % (rel, target, words, where, rc, out))
                failures += 1
            else:
                print("caught: " + next(l for l in out.splitlines() if l.startswith(where)))
            shutil.rmtree(tree)
        for n, (rel, target) in enumerate(KEPT):
            tree = os.path.join(tmp, "kept%d" % n)
            shutil.copytree(clean, tree)
            plant(tree, rel, target)
            rc, out = run(tree)
            if rc != 0:
                print("self-test FAILED: %s including \"%s\" keeps the rules but was"
                      " refused:\n%s" % (rel, target, out))
                failures += 1
            else:
                print("accepted: %s -> %s" % (rel, target))
            shutil.rmtree(tree)
    print("self-test: %d planted, %d kept, %d failure(s)" % (len(PLANTS), len(KEPT), failures))
    return 1 if failures else 0


def main(argv):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [a for a in argv[1:] if a != "--self-test"]
    root = os.path.abspath(args[0]) if args else here
    if "--self-test" in argv[1:]:
        return self_test(root)
    return main_check(root)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
