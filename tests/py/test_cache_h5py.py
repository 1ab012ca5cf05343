"""Feature caches (io/feature_store.h) seen from h5py, in both directions.

Two modes:
  --file PATH            check a cache petl wrote (called by tests/io/test_feature_store.cpp):
                         layout, attributes, dtypes, fletcher32, row-only chunks, and — when the
                         file has the datasets features/src32 and features/half16 of the same
                         values — that petl's float16 equals numpy's float16 conversion bit for bit.
  --petl BIN --scratch DIR   (ctest, like every tests/py script) write caches in petl's layout with
                         h5py and drive `petl cache ls / verify / rm` on them: good, incomplete,
                         corrupt (a flipped chunk byte) and a stale tmp file.
"""
import argparse
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


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


def as_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def check_file(path, c):
    with h5py.File(path, "r") as f:
        a = f.attrs
        c.check(as_str(a["schema"]) == "petl.feature_cache", "schema attribute")
        c.check(int(a["schema_version"]) == 1, "schema_version 1")
        c.check(int(a["complete"]) == 1, "complete 1")
        n = int(a["n_rows"])
        c.check(int(a["n_rows_written"]) == n, "n_rows_written == n_rows")
        for k in ("backbone_sha256", "task", "split"):
            c.check(k in a and isinstance(as_str(a[k]), str), f"string attribute {k}")
        labels = f["labels"]
        c.check(labels.shape == (n,) and labels.dtype == np.int64, "labels int64 (N,)")
        c.check(labels.fletcher32, "labels fletcher32")
        paths = f["paths"].asstr()[:]
        c.check(len(paths) == n and all(isinstance(p, str) and p for p in paths), "paths readable as str")
        c.check(h5py.check_string_dtype(f["paths"].dtype).encoding == "utf-8", "paths utf-8")
        feats = f["features"]
        c.check(len(feats) > 0, "features group not empty")
        for name, ds in feats.items():
            c.check(ds.dtype in (np.float16, np.float32), f"features/{name} dtype {ds.dtype}")
            c.check(ds.shape[0] == n, f"features/{name} has N rows")
            c.check(ds.fletcher32, f"features/{name} fletcher32")
            c.check(ds.chunks is not None and ds.chunks[1:] == ds.shape[1:], f"features/{name} chunked by rows")
            ds[0:min(n, 3)]  # a partial read works
        if "src32" in feats and "half16" in feats:
            src = feats["src32"][:]
            half = feats["half16"][:]
            with np.errstate(over="ignore"):
                want = src.astype(np.float16)
            nan = np.isnan(src)
            same = (want.view(np.uint16) == half.view(np.uint16)) | (nan & np.isnan(half))
            bad = np.argwhere(~same)
            c.check(bad.size == 0, f"float16 bits equal numpy's conversion ({src.size} values, "
                                   f"first mismatch {bad[:1].tolist()})")
            c.check(np.isinf(half).any() and (half.view(np.uint16) & 0x7C00 == 0).any(),
                    "the sample covers overflow and subnormals")


def write_h5py_cache(path, n, task, complete=1, rows_per_chunk=32, libver=("v110", "v110")):
    """A cache in petl's layout, written by h5py (the documented layout is all a reader needs): HDF5's
    1.10 format (checksummed metadata) and fixed-length strings, which petl requires."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["schema"] = np.bytes_("petl.feature_cache")
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["complete"] = np.int64(complete)
        f.attrs["n_rows"] = np.int64(n)
        f.attrs["n_rows_written"] = np.int64(n)
        for k, v in {"backbone_sha256": "ab" * 32, "task": task, "split": "test", "normalisation": "imagenet",
                     "taps": "cls", "dtype": "float16"}.items():
            f.attrs[k] = np.bytes_(v)
        f.create_dataset("labels", data=np.arange(n, dtype=np.int64) % 5, chunks=(n,), fletcher32=True)
        # fixed-length UTF-8 like petl's (HDF5 refuses fletcher32 on variable-length strings)
        raw = [f"img/{i}.png".encode() for i in range(n)]
        dt = h5py.string_dtype("utf-8", max(len(p) for p in raw))
        f.create_dataset("paths", data=np.array(raw, dtype=dt), chunks=(n,), fletcher32=True)
        g = f.create_group("features")
        g.create_dataset("cls", data=rng.standard_normal((n, 64)).astype(np.float16), chunks=(min(rows_per_chunk, n), 64),
                         fletcher32=True)


def corrupt_first_chunk(path, dataset):
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    at = info.byte_offset + min(info.size // 4, 100)  # XOR 0x5A: fletcher32 can't tell 0x0000 from 0xFFFF
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = fh.read(8)
        fh.seek(at)
        fh.write(bytes(x ^ 0x5A for x in b))


def run(petl, *args):
    p = subprocess.run([petl, *args], capture_output=True, text=True, env=dict(os.environ, PETL_NO_PROGRESS="1"))
    return p.returncode, p.stdout + p.stderr


def check_cli(petl, scratch, c):
    root = os.path.join(scratch, "sweep", "cache")
    os.makedirs(root)
    good = os.path.join(root, "00000000000000aa.h5")
    inc = os.path.join(root, "00000000000000bb.h5")
    bad = os.path.join(root, "00000000000000cc.h5")
    write_h5py_cache(good, 100, "dtd")
    write_h5py_cache(inc, 50, "eurosat", complete=0)
    write_h5py_cache(bad, 100, "svhn")
    corrupt_first_chunk(bad, "features/cls")
    stale = good + ".tmp.999999999"  # beyond pid_max: never alive
    with open(stale, "w") as fh:
        fh.write("x")

    rc, out = run(petl, "cache", "--help")
    c.check(rc == 0 and "ls" in out and "verify" in out and "rm" in out, "petl cache --help")
    for sub in ("ls", "verify", "rm"):
        rc, out = run(petl, "cache", sub, "--help")
        c.check(rc == 0 and "usage: petl cache " + sub in out, f"petl cache {sub} --help")

    rc, out = run(petl, "cache", "ls", os.path.join(scratch, "sweep"))  # a sweep dir holding cache/
    c.check(rc == 0, "ls exits 0")
    lines = out.splitlines()
    c.check(any("00000000000000aa" in l and "dtd" in l and " 100 " in l and "yes" in l for l in lines),
            "ls shows the good cache (key, task, rows, complete)")
    c.check(any("00000000000000bb" in l and "eurosat" in l and " no" in l for l in lines), "ls shows incomplete")
    c.check(any("stale" in l and ".tmp.999999999" in l for l in lines), "ls mentions the stale tmp file")

    rc, out = run(petl, "cache", "verify", good)
    c.check(rc == 0 and "ok" in out, "verify of a good h5py-written cache passes")
    old_format = os.path.join(scratch, "old_format.h5")  # h5py's default: no metadata checksums
    write_h5py_cache(old_format, 10, "dtd", libver=None)
    rc, out = run(petl, "cache", "verify", old_format)
    c.check(rc == 1 and "superblock version 0" in out and "delete it or let petl rebuild it" in out,
            "verify refuses a cache in HDF5's unchecksummed default format, saying so")
    rc, out = run(petl, "cache", "verify", root)
    c.check(rc == 1, f"verify of the root exits 1 (got {rc})")
    c.check(bad in out and "corrupt (checksum error in dataset features/cls rows 0..31)" in out,
            "verify names the corrupt file, dataset and rows")
    c.check(inc in out and "incomplete" in out, "verify names the incomplete file")

    rc, out = run(petl, "cache", "rm", "--incomplete", "--root", root, "--dry-run")
    c.check(rc == 0 and os.path.exists(inc) and os.path.exists(stale), "rm --dry-run removes nothing")
    rc, out = run(petl, "cache", "rm", "--incomplete", "--root", root)
    c.check(rc == 0 and not os.path.exists(inc) and not os.path.exists(stale), "rm --incomplete removes incomplete + stale tmp")
    c.check(os.path.exists(good) and os.path.exists(bad), "rm --incomplete keeps complete caches")
    rc, out = run(petl, "cache", "rm", "00000000000000cc", "--root", root)
    c.check(rc == 0 and not os.path.exists(bad), "rm KEY --root")
    rc, out = run(petl, "cache", "rm", "0000000000000fff", "--root", root)
    c.check(rc == 2 and "0000000000000fff" in out, "rm of an unknown key is an error naming it")
    live = good + f".tmp.{os.getpid()}"  # this python process: a running writer
    with open(live, "w") as fh:
        fh.write("x")
    rc, out = run(petl, "cache", "rm", live)
    c.check(rc == 2 and "still running" in out and os.path.exists(live), "rm refuses a running writer's tmp file")
    rc, out = run(petl, "cache", "ls", root)
    c.check(f"being written (pid {os.getpid()})" in out, "ls shows a tmp file being written")
    os.remove(live)
    rc, out = run(petl, "cache", "rm", good)
    c.check(rc == 0 and not os.path.exists(good), "rm PATH")
    write_h5py_cache(good, 10, "dtd")
    rc, out = run(petl, "cache", "rm", "--all", "--root", root)
    c.check(rc == 0 and not os.listdir(root), "rm --all empties the root")
    rc, out = run(petl, "cache", "ls", os.path.join(scratch, "missing"))
    c.check(rc == 2 and "missing" in out, "ls of a missing dir is an error naming it")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file")
    ap.add_argument("--petl")
    ap.add_argument("--scratch")
    a = ap.parse_args()
    c = Checks()
    if a.file:
        check_file(a.file, c)
    elif a.petl and a.scratch:
        shutil.rmtree(a.scratch, ignore_errors=True)
        os.makedirs(a.scratch)
        check_cli(a.petl, a.scratch, c)
    else:
        ap.error("give --file PATH, or --petl BIN --scratch DIR")
    c.done()


if __name__ == "__main__":
    main()
