"""Reads a safetensors file written by petl with an independent pure-python reader, applying the
same validation as the reference (Rust) implementation: header size, JSON starting with '{',
known dtypes, offsets contiguous from 0 to the end of the file, byte sizes; plus the petl writer's
guarantees (header padded to 8, each tensor aligned to its element size). Then checks values and
metadata against tensor_values.py. Exit status 0 on success.

usage: check_safetensors.py PATH
"""
import json
import struct
import sys

import numpy as np

from tensor_values import NUMPY_DTYPE, SAFETENSORS_METADATA, SAFETENSORS_TABLE, values

DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}


def fail(msg):
    print("check_safetensors: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    raw = open(sys.argv[1], "rb").read()
    if len(raw) < 8:
        fail("file too small")
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8 != 0:
        fail(f"header size {n} not a multiple of 8")
    if 8 + n > len(raw):
        fail("header beyond file")
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail("header does not start with '{'")
    header = json.loads(text)
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None)
    if metadata != SAFETENSORS_METADATA:
        fail(f"metadata {metadata!r} != {SAFETENSORS_METADATA!r}")
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    pos = 0
    for name, info in entries:
        begin, end = info["data_offsets"]
        if begin != pos or end < begin:
            fail(f"{name}: offsets {begin},{end} not contiguous (expected start {pos})")
        pos = end
        size = DTYPE_SIZE[info["dtype"]]
        if begin % size:
            fail(f"{name}: offset {begin} not aligned to {size}")
        if end - begin != size * int(np.prod(info["shape"], dtype=np.int64)):
            fail(f"{name}: byte size mismatch")
    if pos != len(data):
        fail(f"data section has {len(data)} bytes, tensors cover {pos}")
    if set(header) != set(SAFETENSORS_TABLE):
        fail(f"tensor names {sorted(header)} != {sorted(SAFETENSORS_TABLE)}")
    for name, (dtype, shape) in SAFETENSORS_TABLE.items():
        info = header[name]
        if info["dtype"] != dtype or tuple(info["shape"]) != shape:
            fail(f"{name}: dtype/shape {info['dtype']} {info['shape']} != {dtype} {shape}")
        begin, end = info["data_offsets"]
        got = np.frombuffer(data[begin:end], dtype=NUMPY_DTYPE[dtype]).reshape(shape)
        if not np.array_equal(got, values(dtype, shape)):
            fail(f"{name}: values differ: {got!r}")


if __name__ == "__main__":
    main()
