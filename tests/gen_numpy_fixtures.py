#!/usr/bin/python3
"""Writes the .npy / .npz fixtures of tests/engine/test_npy.c with numpy itself.

Run from anywhere with Debian's python3 (python3-numpy):  /usr/bin/python3 tests/gen_numpy_fixtures.py
The files land in tests/fixtures/npy/ and are committed, so the unit tests never need
python. Every value here is spelled out again in test_npy.c; change both together.
"""
import os
import time
import zipfile  # noqa: F401  (np.savez writes through it; its timestamps are pinned below)

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "npy")

# np.savez stamps every member with the current local time: pin it (and the time zone) so
# regenerating gives byte-identical archives.
os.environ["TZ"] = "UTC"
time.tzset()
_FIXED = 1704067200.0  # 2024-01-01 00:00:00 UTC
time.time = lambda: _FIXED


def path(name):
    return os.path.join(OUT, name)


def save(name, arr, **kw):
    np.save(path(name), arr, **kw)


def main():
    os.makedirs(OUT, exist_ok=True)
    f32_2x3 = np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.5)
    i64_neg = np.array([-3, -2, -1, 0, 1, 2**40, -(2**62)], dtype=np.int64)

    # ---- readable --------------------------------------------------------------------
    save("f32_2x3.npy", f32_2x3)                                     # [[0 .5 1] [1.5 2 2.5]]
    save("f32_scalar.npy", np.array(3.25, dtype=np.float32))        # 0-d
    save("f32_3d.npy", (np.arange(24, dtype=np.float32) - 10).reshape(2, 3, 4) / 4)
    save("f32_empty_0x3.npy", np.zeros((0, 3), dtype=np.float32))
    save("i64_neg.npy", i64_neg)
    save("i64_scalar.npy", np.array(-7, dtype=np.int64))
    with open(path("f32_v2.npy"), "wb") as f:                        # format version 2.0
        np.lib.format.write_array(f, f32_2x3, version=(2, 0))
    with open(path("f32_v3.npy"), "wb") as f:                        # format version 3.0
        np.lib.format.write_array(f, f32_2x3, version=(3, 0))
    np.savez(path("savez.npz"), weights=f32_2x3, labels=i64_neg)
    np.savez_compressed(path("savez_compressed.npz"), weights=f32_2x3, labels=i64_neg,
                        ramp=np.arange(100, dtype=np.float32))
    np.savez(path("savez_mixed.npz"), good=f32_2x3, bad=f32_2x3.astype(np.float64))

    # ---- not readable: each must fail with a clear message ------------------------------
    save("bad_f64.npy", f32_2x3.astype(np.float64))
    save("bad_be_f4.npy", f32_2x3.astype(">f4"))
    save("bad_fortran.npy", np.asfortranarray(f32_2x3))
    save("bad_bool.npy", np.array([True, False, True]))
    save("bad_i32.npy", np.array([1, 2, 3], dtype=np.int32))
    save("bad_object.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    save("bad_ndim9.npy", np.zeros((1,) * 9, dtype=np.float32))
    save("bad_structured.npy", np.zeros(2, dtype=[("x", "<f4"), ("y", "<i8")]))

    # sanity: numpy reads back what it wrote
    assert np.load(path("f32_v3.npy")).tolist() == f32_2x3.tolist()
    with np.load(path("savez_compressed.npz")) as z:
        assert sorted(z.files) == ["labels", "ramp", "weights"]
    print("wrote", len(os.listdir(OUT)), "files to", OUT)


if __name__ == "__main__":
    main()
