"""Compares a file's SHA-256 (python hashlib) with an expected hex digest; exit status 0 if equal.

usage: sha256_check.py PATH HEX
"""
import hashlib
import sys


def main():
    path, expected = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    if got != expected:
        print(f"sha256_check: {path}: hashlib {got} != petl {expected}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
