"""Writes numpy inputs for test_tensor_file.cpp into OUT_DIR:
  plain.npz (numpy.savez), compressed.npz (numpy.savez_compressed) holding NPZ_TABLE,
  v1.npy / v2.npy / v3.npy (format versions 1.0, 2.0, 3.0), fortran.npy, bigendian.npy,
  bad_member.npz (a member that is not .npy data), pattern.npz (stored, 256 bytes of 0xAB).

usage: make_npz.py OUT_DIR
"""
import os
import sys
import zipfile

import numpy as np

from tensor_values import values

# key -> (safetensors dtype name, shape, fortran order)
NPZ_TABLE = {
    "Transformer/encoderblock_0/LayerNorm_0/scale": ("F32", (8,), False),
    "Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel": ("F32", (4, 6), False),
    "embedding/kernel": ("F32", (2, 2, 3, 4), False),
    "f64": ("F64", (3, 5), False),
    "f16": ("F16", (4,), False),
    "i64": ("I64", (6,), False),
    "i32": ("I32", (2, 2), False),
    "i16": ("I16", (3,), False),
    "i8": ("I8", (5,), False),
    "u8": ("U8", (2, 3), False),
    "bool": ("BOOL", (3, 4), False),
    "fortran2d": ("F32", (3, 4), True),
    "fortran3d": ("F64", (2, 3, 4), True),
    "scalar": ("F64", (), False),
    "empty": ("F32", (0, 5), False),
}


def array(dtype, shape, fortran):
    a = values(dtype, shape)
    if fortran:
        a = np.asfortranarray(a)
        assert a.flags.f_contiguous and not a.flags.c_contiguous
    return a


def main():
    out = sys.argv[1]
    arrays = {k: array(*v) for k, v in NPZ_TABLE.items()}
    np.savez(os.path.join(out, "plain.npz"), **arrays)
    np.savez_compressed(os.path.join(out, "compressed.npz"), **arrays)

    a = values("F32", (3, 4))
    for version in (1, 2, 3):
        with open(os.path.join(out, f"v{version}.npy"), "wb") as f:
            np.lib.format.write_array(f, a, version=(version, 0))
    np.save(os.path.join(out, "fortran.npy"), array("I32", (2, 3, 4), True))
    np.save(os.path.join(out, "bigendian.npy"), a.astype(">f4"))

    with zipfile.ZipFile(os.path.join(out, "bad_member.npz"), "w") as z:
        with z.open("good.npy", "w") as f:
            np.lib.format.write_array(f, a)
        z.writestr("layer/bad.npy", b"this is not npy data")
    np.savez(os.path.join(out, "pattern.npz"), pattern=np.full(256, 0xAB, dtype=np.uint8))


if __name__ == "__main__":
    main()
