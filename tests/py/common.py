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
    p = subprocess.run([petl, *args], capture_output=True, text=True, env=e)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"petl {' '.join(args)} exited {p.returncode}, expected {expect}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


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
