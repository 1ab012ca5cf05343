"""Shared helpers for the python-driven ctest tests (run with Debian's /usr/bin/python3)."""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
GOLDEN = os.path.join(TESTS, "golden")
sys.path.insert(0, HERE)


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--petl", required=True)
    ap.add_argument("--scratch", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.scratch, ignore_errors=True)
    os.makedirs(a.scratch)
    return a


def run(petl, *args, expect=0, env=None):
    e = dict(os.environ, PETL_NO_PROGRESS="1")
    if env:
        e.update(env)
    p = subprocess.run([petl, *args], capture_output=True, text=True, errors="backslashreplace", env=e)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"petl {' '.join(args)} exited {p.returncode}, expected {expect}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def make_task(root, name, n_images, n_train, num_classes, seed=0, declare_classes=True):
    """A VTAB-1k txt-format task of random 32x32 PNGs under root/name: images 0..n_train-1 in
    train800val200.txt, the rest in test.txt, labels i % num_classes; petl_task.json declares the
    class count unless declare_classes is False. Returns the task directory."""
    import json

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "images"), exist_ok=True)
    lines = {"train800val200": [], "test": []}
    for i in range(n_images):
        img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(os.path.join(d, "images", f"{i}.png"))
        lines["train800val200" if i < n_train else "test"].append(f"images/{i}.png {i % num_classes}\n")
    for split, ls in lines.items():
        with open(os.path.join(d, split + ".txt"), "w") as f:
            f.writelines(ls)
    if declare_classes:
        with open(os.path.join(d, "petl_task.json"), "w") as f:
            json.dump({"num_classes": num_classes}, f)
    return d


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   ", what)
        else:
            self.failed += 1
            print("FAIL ", what)

    def done(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
