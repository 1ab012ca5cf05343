"""Deterministic tensor contents shared by the petl I/O tests (mirrored in test_tensor_file.cpp).

Element i of a tensor (C order) is:
  floats: (i % 17) * 0.25 - 2.0     (exact in f16 and bf16)
  i64: (i % 200 - 100) * 1000000007000, i32: (i % 200 - 100) * 1000003,
  i16: (i % 200 - 100) * 300, i8: i % 200 - 100, u8: i % 251, bool: i % 3 == 0
"""
import numpy as np

# safetensors dtype name -> numpy dtype (bf16 is stored as its upper 16 float32 bits).
NUMPY_DTYPE = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "BOOL": np.bool_,
}

# The tensors of the safetensors interop files: name -> (dtype, shape).
SAFETENSORS_TABLE = {
    "f64": ("F64", (4,)),
    "f32": ("F32", (2, 3)),
    "f16": ("F16", (3, 2)),
    "bf16": ("BF16", (2, 2, 2)),
    "i64": ("I64", (5,)),
    "i32": ("I32", (2, 3)),
    "i16": ("I16", (7,)),
    "i8": ("I8", (3, 3)),
    "u8": ("U8", (10,)),
    "bool": ("BOOL", (2, 5)),
    "scalar": ("F32", ()),
    "empty": ("F32", (0, 3)),
    "blocks.0.attn.qkv.weight": ("F32", (6, 4)),
}
SAFETENSORS_METADATA = {"format": "pt", "note": "h\u00e9llo \u2713"}


def values(dtype, shape):
    """The expected array (C order) for a safetensors dtype name and shape."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.int64)
    if dtype in ("F64", "F32", "F16", "BF16"):
        v = (i % 17) * 0.25 - 2.0
        if dtype == "BF16":
            return (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).reshape(shape)
        return v.astype(NUMPY_DTYPE[dtype]).reshape(shape)
    if dtype == "I64":
        v = (i % 200 - 100) * 1000000007000
    elif dtype == "I32":
        v = (i % 200 - 100) * 1000003
    elif dtype == "I16":
        v = (i % 200 - 100) * 300
    elif dtype == "I8":
        v = i % 200 - 100
    elif dtype == "U8":
        v = i % 251
    elif dtype == "BOOL":
        v = i % 3 == 0
    else:
        raise ValueError(dtype)
    return v.astype(NUMPY_DTYPE[dtype]).reshape(shape)
