#!/usr/bin/env python3
"""The layering rule of petl: a folder is one layer and #include "..." lines point only downward.

    layer 0  core/  io/            (io may include core)
    layer 1  datasets/  models/
    layer 2  methods/  results/  harness/spec/
    layer 3  harness/train/  harness/sweep/
    layer 5  app/

A file may include files of its own folder and of folders on lower layers (io → core counts as
lower: core is below io inside layer 0). Anything else — an include of a higher or a sibling layer,
or a product folder missing from the table — fails, naming the file, the line and the rule.
Usage: check_layers.py SOURCE_ROOT   (also runs a self-test on a synthetic tree first).
"""
import os
import re
import sys
import tempfile

# Ranks: a folder may include only folders of strictly smaller rank (or itself).
RANK = {
    "core": 0, "io": 1,
    "datasets": 2, "models": 2,
    "methods": 3, "results": 3, "harness/spec": 3,
    "harness/train": 4, "harness/sweep": 4,
    "app": 6,
}
# Folders that hold no product code, or only build helpers.
IGNORED = {"tests", "tools", "build", "docs", "config", "assets", "scripts", "slurm", "data", "runs", "cmake"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def product_files(root):
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        top = rel.split(os.sep)[0]
        dirs[:] = [x for x in dirs if not x.startswith(".") and not (rel == "." and x in IGNORED)
                   and not x.startswith("build")]
        if rel == ".":
            continue
        for f in files:
            if f.endswith((".h", ".hpp", ".cpp", ".cc")):
                yield os.path.relpath(os.path.join(d, f), root)


def check(root):
    problems = []
    files = set(product_files(root))
    for f in sorted(files):
        src = os.path.dirname(f)
        if src not in RANK:
            problems.append(f"{f}: folder '{src}' is not in the layer table (tests/layers/check_layers.py)")
            continue
        with open(os.path.join(root, f), errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                hit = target if target in files else os.path.normpath(os.path.join(src, target))
                if hit not in files:
                    continue  # generated or system header
                dst = os.path.dirname(hit)
                if dst == src:
                    continue
                if dst not in RANK:
                    problems.append(f"{f}:{n}: includes {target} from folder '{dst}', which is not in the layer table")
                elif RANK[dst] >= RANK[src]:
                    kind = "a sibling" if RANK[dst] == RANK[src] else "a higher"
                    problems.append(f"{f}:{n}: includes {target}: '{src}' (rank {RANK[src]}) may not include "
                                    f"{kind} layer '{dst}' (rank {RANK[dst]})")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as t:
        for folder, text in {"core": '#include "harness/train/job.h"\n', "harness/train": '#include "core/x.h"\n',
                             "datasets": '#include "models/vit.h"\n', "models": "\n"}.items():
            os.makedirs(os.path.join(t, folder), exist_ok=True)
        files = {"core/x.h": '#include "harness/train/job.h"\n', "harness/train/job.h": '#include "core/x.h"\n',
                 "datasets/d.cpp": '#include "models/vit.h"\n', "models/vit.h": "\n"}
        for p, text in files.items():
            with open(os.path.join(t, p), "w") as fh:
                fh.write(text)
        got = check(t)
        assert any("core/x.h:1" in p and "higher" in p for p in got), got
        assert any("datasets/d.cpp:1" in p and "sibling" in p for p in got), got
        assert not any(p.startswith("harness/train/job.h") for p in got), got


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    self_test()
    problems = check(root)
    n = sum(1 for _ in product_files(root))
    if problems:
        print("layering violations:")
        for p in problems:
            print("  " + p)
        print(f"0 passed, {len(problems)} failed")
        return 1
    print(f"layers: {n} product files in {len(RANK)} layer folders, every include points downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
