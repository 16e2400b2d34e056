#!/usr/bin/env python3
"""Writes Tests/Fixtures/labeling/cases.json: masks with holes and parts, COCO polygons and what
pycocotools makes of them, and mask IoUs as pycocotools computes them.

Expects a Python venv (outside git) with numpy and pycocotools, e.g. the reference venv:
    .venv-ref/bin/python Scripts/make_labeling_fixtures.py
Versions used are recorded in the output.

The file holds three lists:
- "masks": named masks (COCO compressed RLE, pycocotools' `encode`) built from discs, rings,
  rectangles and noise: several parts, holes, a part inside a hole, pixels touching only at a
  corner, one-pixel-wide lines, masks touching the image border. The Swift tests trace them into
  YOLO-seg and COCO polygons and check that the polygons fill back to the masks.
- "polygons": COCO polygon segmentations (one or several polygons, float and integer
  coordinates, concave, self-intersecting, partly outside the image) with the compressed RLE
  pycocotools' `frPyObjects` + `merge` gives for them (as `COCO.annToRLE` does), and
  uncompressed RLEs with their compressed form.
- "ious": pairs of masks (compressed RLE) with `iscrowd` and pycocotools' `iou` value.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pycocotools
from pycocotools import mask as mask_utils


def disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)


def rect(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def encode(m):
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    return rle["counts"].decode("ascii")


def make_masks(rng):
    h, w = 120, 160
    masks = {}
    masks["disc"] = disc(h, w, 60, 50, 30)
    masks["ring"] = disc(h, w, 80, 60, 40) & (1 - disc(h, w, 80, 60, 18))
    masks["two_discs"] = disc(h, w, 40, 40, 22) | disc(h, w, 120, 80, 25)
    masks["disc_two_holes"] = disc(h, w, 80, 60, 50) & (1 - disc(h, w, 60, 60, 10)) & (1 - rect(h, w, 95, 40, 115, 80))
    # A ring with an island inside its hole, and a separate square.
    island = disc(h, w, 60, 60, 45) & (1 - disc(h, w, 60, 60, 30)) | disc(h, w, 60, 60, 12)
    masks["ring_with_island"] = island | rect(h, w, 120, 20, 150, 50)
    # Squares touching at a corner, and a one-pixel line joining blobs.
    corner = rect(h, w, 20, 20, 60, 60) | rect(h, w, 60, 60, 100, 100)
    masks["corner_touch"] = corner
    line = disc(h, w, 30, 60, 20) | disc(h, w, 130, 60, 20)
    line[60, 30:131] = 1
    masks["thin_line"] = line
    # A blob touching the image border on three sides, with a hole.
    border = rect(h, w, 0, 0, 160, 70) & (1 - disc(h, w, 80, 30, 15))
    masks["border"] = border
    # A large disc with speckles of noise eaten out of it and added around it (many parts/holes).
    noisy = disc(h, w, 80, 60, 45).copy()
    flips = rng.random((h, w)) < 0.01
    noisy[flips] = 1 - noisy[flips]
    masks["noisy_disc"] = noisy
    # A comb: deep concavities and a checkerboard patch (many diagonal contacts).
    comb = rect(h, w, 10, 10, 150, 30)
    for x in range(15, 150, 12):
        comb[30:100, x : x + 6] = 1
    checker = np.zeros((h, w), np.uint8)
    checker[100:116, 20:60] = (np.add.outer(np.arange(16), np.arange(40)) % 2 == 0).astype(np.uint8)
    masks["comb_checker"] = comb | checker
    return {name: m for name, m in masks.items()}, (h, w)


def make_polygons(rng):
    h, w = 60, 80
    cases = []

    def add(name, polys):
        rles = mask_utils.frPyObjects(polys, h, w)
        rle = mask_utils.merge(rles)
        cases.append({"name": name, "width": w, "height": h, "polygons": polys, "counts": rle["counts"].decode("ascii")})

    add("square_int", [[5, 5, 15, 5, 15, 15, 5, 15]])
    add("square_centres", [[5, 5, 14, 5, 14, 14, 5, 14]])
    add("square_half", [[4.5, 4.5, 14.5, 4.5, 14.5, 14.5, 4.5, 14.5]])
    add("triangle", [[10.2, 3.7, 70.9, 20.1, 30.3, 55.5]])
    add("concave", [[5, 5, 60, 5, 60, 50, 40, 50, 40, 20, 20, 20, 20, 50, 5, 50]])
    add("bowtie", [[5, 5, 50, 40, 50, 5, 5, 40]])
    add("outside", [[-10, -5, 90, 10, 70, 70, 20.5, 65.25]])
    add("two_parts", [[2, 2, 20, 2, 20, 20, 2, 20], [30.5, 30.5, 70.25, 33, 50, 58.75]])
    add("overlapping", [[10, 10, 40, 10, 40, 40, 10, 40], [25, 25, 60, 25, 60, 55, 25, 55]])
    add("repeated_vertex", [[10, 10, 10, 10, 40, 12, 40, 12, 30, 45]])
    for i in range(8):
        k = int(rng.integers(3, 12))
        pts = rng.uniform([-5, -5], [w + 5, h + 5], size=(k, 2)).round(2)
        add(f"random_{i}", [pts.reshape(-1).tolist()])
    # Uncompressed RLE (as iscrowd annotations hold it).
    runs = []
    total, value = 0, 0
    while total < h * w:
        n = int(rng.integers(0, 90))
        n = min(n, h * w - total)
        runs.append(n)
        total += n
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)
    uncompressed = {"name": "uncompressed", "width": w, "height": h, "runs": runs, "counts": rle["counts"].decode("ascii")}
    return cases, uncompressed


def make_ious(rng, masks, size):
    h, w = size
    names = sorted(masks)
    cases = []
    for i, a in enumerate(names):
        for b in names[i + 1 : i + 4]:
            for crowd in (0, 1):
                ra = mask_utils.encode(np.asfortranarray(masks[a]))
                rb = mask_utils.encode(np.asfortranarray(masks[b]))
                value = float(mask_utils.iou([ra], [rb], [crowd])[0][0])
                cases.append({"dt": a, "gt": b, "iscrowd": crowd, "iou": value})
    # Disjoint boxes, identical masks, an empty detection.
    empty = np.zeros((h, w), np.uint8)
    for dt, gt, crowd in (("disc", "disc", 0), ("disc", "disc", 1)):
        ra = mask_utils.encode(np.asfortranarray(masks[dt]))
        value = float(mask_utils.iou([ra], [ra], [crowd])[0][0])
        cases.append({"dt": dt, "gt": gt, "iscrowd": crowd, "iou": value})
    masks["empty"] = empty
    ra = mask_utils.encode(np.asfortranarray(empty))
    rb = mask_utils.encode(np.asfortranarray(masks["disc"]))
    cases.append({"dt": "empty", "gt": "disc", "iscrowd": 0, "iou": float(mask_utils.iou([ra], [rb], [0])[0][0])})
    return cases


def main():
    rng = np.random.default_rng(11)
    masks, (h, w) = make_masks(rng)
    polygons, uncompressed = make_polygons(rng)
    ious = make_ious(rng, masks, (h, w))
    out = {
        "generator": "Scripts/make_labeling_fixtures.py",
        "versions": {"numpy": np.__version__, "pycocotools": getattr(pycocotools, "__version__", "unknown")},
        "masks": [
            {"name": n, "width": w, "height": h, "counts": encode(m), "area": int(m.sum())} for n, m in masks.items()
        ],
        "polygons": polygons,
        "uncompressed": uncompressed,
        "ious": ious,
    }
    path = Path(__file__).resolve().parent.parent / "Tests/Fixtures/labeling/cases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
