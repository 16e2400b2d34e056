#!/usr/bin/env python3
"""Writes Tests/Fixtures/json/python_floats.txt, which Tests/SAMBatchTests/JSONTests.swift reads:
one double per line as its 64-bit pattern in hex and the text Python's json.dumps writes for it,
so the test checks that JSONWriter prints numbers as Python does.

Needs only the standard library:
    python3 Scripts/make_json_fixtures.py
Deterministic (seeded). Values: random bit patterns (all magnitudes), random decimals of a few
digits (what boxes and scores look like), float32 values widened to double (model scores), and
the borders of the exponent notation.
"""

import json
import random
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "Tests/Fixtures/json/python_floats.txt"


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def main():
    rng = random.Random(6)
    values = []
    while len(values) < 150:
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if x == x and abs(x) != float("inf"):
            values.append(x)
    values += [round(rng.uniform(-2000, 2000), rng.randint(0, 4)) for _ in range(100)]
    values += [struct.unpack("<f", struct.pack("<f", rng.random()))[0] for _ in range(50)]
    for e in range(-7, 19):
        values += [10.0**e, 1.5 * 10.0**e, -(10.0**e) * 9.999]
    values += [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2.0**53, 2.0**53 + 2]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w") as f:
        for x in values:
            f.write(f"{bits(x):016x} {json.dumps(x)}\n")


if __name__ == "__main__":
    main()
