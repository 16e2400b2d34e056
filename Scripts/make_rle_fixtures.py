#!/usr/bin/env python3
"""Writes Tests/Fixtures/rle/cases.json: masks and what pycocotools says about them.

Expects a Python venv (outside git) with numpy and pycocotools, e.g. the reference venv:
    /work/main/.venv-ref/bin/python Scripts/make_rle_fixtures.py
Used: numpy 2.4.6, pycocotools 2.0.11 (versions are recorded in the output).

Masks are not stored pixel by pixel: each case holds a small recipe that the Swift tests
(Tests/SAMBatchTests/RLETests.swift) rebuild the same way, so the fixture stays a few KB.
For every mask the file records what pycocotools computes: the compressed counts string
(`mask.encode`), `mask.area` and `mask.toBbox`. This script also checks that pycocotools
decodes its own string back to the mask.

Recipes (all coordinates in pixels, masks are height x width):
- random: pixel (row-major order) = next() % 1000 < density, with the splitmix64 generator below.
- runs: runs in column-major order, alternating from `first`, each 1 + next() % max_run long
  (the last one clipped to the mask).
- explicit_runs: column-major run lengths starting with a run of 0s (pycocotools' convention).
- rects: union of [x, y, w, h] rectangles, optionally inverted.
- ellipse: (x - cx)^2 * ry^2 + (y - cy)^2 * rx^2 <= rx^2 * ry^2, in integers.
- rows: explicit rows of '0'/'1' characters.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pycocotools
from pycocotools import mask as mask_utils

MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def build(recipe):
    h, w = recipe["height"], recipe["width"]
    kind = recipe["kind"]
    if kind == "random":
        rng = SplitMix64(recipe["seed"])
        d = recipe["density"]
        flat = np.array([1 if rng.next() % 1000 < d else 0 for _ in range(h * w)], dtype=np.uint8)
        return flat.reshape(h, w)
    if kind == "runs":
        rng = SplitMix64(recipe["seed"])
        col = np.zeros(h * w, dtype=np.uint8)
        pos, value = 0, recipe["first"]
        while pos < h * w:
            length = 1 + rng.next() % recipe["max_run"]
            col[pos:pos + length] = value
            pos += length
            value = 1 - value
        return col.reshape(w, h).T
    if kind == "explicit_runs":
        col = np.zeros(h * w, dtype=np.uint8)
        pos = 0
        for j, length in enumerate(recipe["runs"]):
            col[pos:pos + length] = j % 2
            pos += length
        assert pos == h * w, recipe
        return col.reshape(w, h).T
    if kind == "rects":
        m = np.zeros((h, w), dtype=np.uint8)
        for x, y, rw, rh in recipe["rects"]:
            m[y:y + rh, x:x + rw] = 1
        return 1 - m if recipe.get("invert") else m
    if kind == "ellipse":
        cx, cy, rx, ry = recipe["cx"], recipe["cy"], recipe["rx"], recipe["ry"]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.int64)
        inside = (xs - cx) ** 2 * ry * ry + (ys - cy) ** 2 * rx * rx <= rx * rx * ry * ry
        return inside.astype(np.uint8)
    if kind == "rows":
        m = np.array([[int(c) for c in row] for row in recipe["rows"]], dtype=np.uint8)
        return m.reshape(h, w)
    raise ValueError(kind)


def column_major_runs(m):
    flat = np.asfortranarray(m).ravel(order="F")
    runs, current, count = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(count)
            count, current = 0, v
        count += 1
    runs.append(count)
    return runs


def recipes():
    out = []
    add = out.append
    # Edge cases.
    add(dict(name="empty 7x5", kind="rects", width=7, height=5, rects=[]))
    add(dict(name="full 7x5", kind="rects", width=7, height=5, rects=[], invert=True))
    add(dict(name="single pixel top-left", kind="rows", width=3, height=2, rows=["100", "000"]))
    add(dict(name="single pixel bottom-right", kind="rows", width=3, height=2, rows=["000", "001"]))
    add(dict(name="single pixel 1x1 set", kind="rows", width=1, height=1, rows=["1"]))
    add(dict(name="single pixel 1x1 clear", kind="rows", width=1, height=1, rows=["0"]))
    add(dict(name="single pixel middle", kind="rects", width=640, height=480, rects=[[300, 200, 1, 1]]))
    add(dict(name="1xN row", kind="rows", width=9, height=1, rows=["011100101"]))
    add(dict(name="Nx1 column", kind="rows", width=1, height=9, rows=list("110011101")))
    add(dict(name="1xN full", kind="rects", width=300, height=1, rects=[[0, 0, 300, 1]]))
    add(dict(name="Nx1 random", kind="random", width=1, height=500, seed=11, density=500))
    add(dict(name="1xN random", kind="random", width=500, height=1, seed=12, density=300))
    add(dict(name="diagonal", kind="rows", width=4, height=4, rows=["1000", "0100", "0010", "0001"]))
    add(dict(name="last column only", kind="rects", width=50, height=40, rects=[[49, 0, 1, 40]]))
    add(dict(name="first row only", kind="rects", width=50, height=40, rects=[[0, 0, 50, 1]]))
    add(dict(name="run wraps columns", kind="explicit_runs", width=5, height=4, runs=[3, 3, 14]))
    add(dict(name="ends with ones", kind="explicit_runs", width=5, height=4, runs=[7, 2, 6, 5]))
    # Runs longer than 2^20 (1,048,576) pixels, in a 2048x1024 mask.
    add(dict(name="runs over 2^20", kind="explicit_runs", width=2048, height=1024,
             runs=[1, 1_100_000, 7, 900_000, 97_144]))
    add(dict(name="zero run then 2^21-1 ones", kind="explicit_runs", width=2048, height=1024,
             runs=[0, 2_097_151, 1]))
    # Deltas against the run two back that are negative, zero and large.
    add(dict(name="negative deltas", kind="explicit_runs", width=30, height=30,
             runs=[500, 200, 100, 50, 25, 12, 6, 3, 1, 1, 1, 1]))
    add(dict(name="growing then shrinking runs", kind="explicit_runs", width=100, height=100,
             runs=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 1024, 512, 256, 128, 64, 32,
                   16, 8, 4, 2, 1, 3858]))
    # Structured shapes.
    add(dict(name="rects union", kind="rects", width=320, height=240,
             rects=[[10, 10, 100, 50], [80, 40, 60, 150], [300, 0, 20, 240]]))
    add(dict(name="rects inverted", kind="rects", width=320, height=240,
             rects=[[10, 10, 100, 50], [200, 100, 30, 30]], invert=True))
    add(dict(name="ellipse", kind="ellipse", width=400, height=300, cx=180, cy=140, rx=120, ry=90))
    add(dict(name="ellipse clipped", kind="ellipse", width=200, height=150, cx=190, cy=10, rx=80, ry=60))
    add(dict(name="ellipse big", kind="ellipse", width=2241, height=1500, cx=1500, cy=700, rx=400,
             ry=300))
    # Random masks: pixel noise and column-major runs of various lengths.
    for i, (w, h, d) in enumerate([(17, 13, 500), (64, 48, 100), (64, 48, 900), (101, 37, 50),
                                    (37, 101, 950), (120, 80, 500), (3, 200, 500), (200, 3, 500)]):
        add(dict(name=f"random {w}x{h} density {d}", kind="random", width=w, height=h, seed=100 + i,
                 density=d))
    for i, (w, h, first, max_run) in enumerate([(50, 40, 0, 3), (50, 40, 1, 3), (80, 60, 0, 40),
                                                 (80, 60, 1, 200), (300, 200, 0, 5000),
                                                 (300, 200, 1, 20), (1000, 700, 0, 100000),
                                                 (640, 480, 1, 2)]):
        add(dict(name=f"runs {w}x{h} first {first} max {max_run}", kind="runs", width=w, height=h,
                 seed=200 + i, first=first, max_run=max_run))
    return out


def main():
    root = Path(__file__).resolve().parent.parent
    cases = []
    saw_negative_delta = saw_long_run = False
    for recipe in recipes():
        m = build(recipe)
        assert m.shape == (recipe["height"], recipe["width"]), recipe["name"]
        rle = mask_utils.encode(np.asfortranarray(m))
        counts = rle["counts"].decode("ascii")
        assert rle["size"] == [recipe["height"], recipe["width"]]
        back = mask_utils.decode(rle)
        assert np.array_equal(back, m), recipe["name"]
        runs = column_major_runs(m)
        again = mask_utils.frPyObjects({"counts": runs, "size": rle["size"]}, *rle["size"])
        assert again["counts"].decode("ascii") == counts, recipe["name"]
        if recipe["kind"] == "explicit_runs":
            assert runs == recipe["runs"], recipe["name"]
        saw_negative_delta |= any(runs[i] - runs[i - 2] < 0 for i in range(3, len(runs)))
        saw_long_run |= max(runs) > 1 << 20
        case = dict(recipe)
        case["counts"] = counts
        case["area"] = int(mask_utils.area(rle))
        case["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
        cases.append(case)
    assert saw_negative_delta and saw_long_run
    out = {
        "generator": "Scripts/make_rle_fixtures.py",
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "pycocotools": getattr(pycocotools, "__version__", "2.0.11")},
        "cases": cases,
    }
    path = root / "Tests/Fixtures/rle/cases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
