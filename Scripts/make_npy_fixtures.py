#!/usr/bin/env python3
"""Writes the small .npy files under Tests/Fixtures/npy/ that Tests/SAMBatchTests/NpyTests.swift reads.

Expects a Python venv (outside git) with numpy, e.g. the reference venv:
    /work/main/.venv-ref/bin/python Scripts/make_npy_fixtures.py
Used: numpy 2.4.6.

Values are `arange(n) * 0.25 - 1` in float32 (exact in binary), so the Swift test computes
them itself instead of reading a second copy.
"""

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "Tests/Fixtures/npy"


def values(shape, dtype=np.float32):
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float64) * 0.25 - 1).astype(dtype).reshape(shape)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # Accepted: version 1.0 (what np.save writes), version 2.0, 0-d and 1-d shapes.
    np.save(OUT / "f4_2x3.npy", values((2, 3)))
    np.save(OUT / "f4_1x4x4.npy", values((1, 4, 4)))
    np.save(OUT / "f4_scalar.npy", values(()))
    np.save(OUT / "f4_7.npy", values((7,)))
    with open(OUT / "f4_v2_3x2.npy", "wb") as f:
        np.lib.format.write_array(f, values((3, 2)), version=(2, 0))
    # Refused.
    np.save(OUT / "f8_2x3.npy", values((2, 3), np.float64))
    np.save(OUT / "i4_2x3.npy", values((2, 3), np.int32))
    np.save(OUT / "be_f4_2x3.npy", values((2, 3), np.dtype(">f4")))
    np.save(OUT / "fortran_2x3.npy", np.asfortranarray(values((2, 3))))
    data = (OUT / "f4_2x3.npy").read_bytes()
    (OUT / "truncated_2x3.npy").write_bytes(data[:-3])
    (OUT / "extra_bytes_2x3.npy").write_bytes(data + b"\0\0\0\0")
    (OUT / "not_npy.npy").write_bytes(b"this is not an npy file\n")
    for p in sorted(OUT.glob("*.npy")):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
