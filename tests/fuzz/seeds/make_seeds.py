#!/usr/bin/env python3
"""Writes the fuzz seeds that come from other writers than petl's own (Debian's python3-numpy and
python3-h5py): numpy .npz / .npy files and an h5py-written feature cache. Run once; the outputs are committed:
    /usr/bin/python3 tests/fuzz/seeds/make_seeds.py
The petl-written feature caches come from build/tests/petl_fuzz_seeds (tests/fuzz/write_seeds.cpp)."""
import os
import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))

np.savez(os.path.join(here, "npz", "stored.npz"),
         a=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.arange(4, dtype=np.int64),
         c=np.array([[True, False], [False, True]]))
np.savez_compressed(os.path.join(here, "npz", "deflated.npz"),
                    w=np.asfortranarray(np.arange(6, dtype=np.float16).reshape(3, 2)),
                    s=np.int16(-3), e=np.zeros((0,), dtype=np.uint8))

np.save(os.path.join(here, "npy", "fortran_i16.npy"),
        np.asfortranarray(np.arange(12, dtype=np.int16).reshape(2, 3, 2)))
with open(os.path.join(here, "npy", "v2_f8.npy"), "wb") as f:
    np.lib.format.write_array(f, np.linspace(0, 1, 5), version=(2, 0))

# The layout petl reads (io/feature_store.h): HDF5 1.10 format (checksummed metadata), fixed-length
# strings only, every dataset chunked with fletcher32.
with h5py.File(os.path.join(here, "feature_store", "h5py_v110.h5"), "w", libver=("v110", "v110")) as f:
    n = 3
    f.attrs["schema"] = np.bytes_("petl.feature_cache")
    f.attrs["schema_version"] = np.int64(1)
    f.attrs["complete"] = np.int64(1)
    f.attrs["n_rows"] = np.int64(n)
    f.attrs["n_rows_written"] = np.int64(n)
    f.attrs["task"] = np.bytes_("dtd")
    f.create_dataset("labels", data=np.arange(n, dtype=np.int64), chunks=(2,), fletcher32=True)
    f.create_dataset("paths", data=np.array([b"a.png", b"bb.png", b"c/c.png"], dtype=h5py.string_dtype("utf-8", 7)),
                     chunks=(2,), fletcher32=True)
    f.create_dataset("features/cls", data=np.arange(n * 4, dtype=np.float32).reshape(n, 4), chunks=(2, 4),
                     fletcher32=True)
