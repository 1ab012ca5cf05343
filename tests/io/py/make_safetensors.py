"""Writes a safetensors file by hand (the safetensors package is not installed), following the
format spec: u64 LE header size, JSON header padded with spaces to a multiple of 8, data.

usage: make_safetensors.py OUT_PATH
"""
import json
import struct
import sys

from tensor_values import SAFETENSORS_METADATA, SAFETENSORS_TABLE, values


def main():
    out = sys.argv[1]
    header = {"__metadata__": SAFETENSORS_METADATA}
    blobs = []
    offset = 0
    # Reverse name order on purpose: the reader must not depend on any particular layout.
    for name in sorted(SAFETENSORS_TABLE, reverse=True):
        dtype, shape = SAFETENSORS_TABLE[name]
        blob = values(dtype, shape).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


if __name__ == "__main__":
    main()
