"""Loads .npy files written by petl's write_npy with numpy.load and compares them with
tensor_values.py. Each argument is PATH:DTYPE:SHAPE, SHAPE comma-separated ("" for a scalar).
Exit status 0 on success.

usage: check_npy.py PATH:DTYPE:SHAPE...
"""
import sys

import numpy as np

from tensor_values import values


def main():
    for arg in sys.argv[1:]:
        path, dtype, shape_text = arg.rsplit(":", 2)
        shape = tuple(int(d) for d in shape_text.split(",") if d)
        got = np.load(path)
        want = values(dtype, shape)
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            print(f"check_npy: {path}: got {got.dtype} {got.shape} {got!r}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
