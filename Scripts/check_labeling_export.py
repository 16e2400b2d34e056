#!/usr/bin/env python3
"""Checks sambatch's labeling exports with the tools that read them, against the store.

    .venv-ref/bin/python Scripts/check_labeling_export.py results.db --yolo DIR --coco polygons.json

--yolo DIR   a `sambatch export --format yolo` dataset: every label file is read by Ultralytics'
             own `verify_image_label` (as `yolo train` does), every polygon is filled back with
             Ultralytics' `polygon2mask` (OpenCV's fillPoly) and compared with the stored mask.
--coco FILE  a `sambatch export --format coco --polygons` file: every annotation is read by
             pycocotools (`COCO.annToRLE`) and compared with the stored mask (exact for polygons;
             masks with holes keep their RLE).

Prints the IoU per mask class of size and fails (exit 1) when a mask of at least 1,000 pixels
comes back with IoU below 0.98 (YOLO-seg) or differs at all (COCO).
Needs numpy, pycocotools and ultralytics (the reference venv has them).
"""

import argparse
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils


def stored_masks(db):
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT image, prompt_index, mask_index, width, height, rle, category FROM results "
        "ORDER BY image_id, prompt_index, mask_index"
    ).fetchall()
    con.close()
    return rows


def decode(rle, w, h):
    return mask_utils.decode({"size": [h, w], "counts": rle.encode()})


def check_yolo(db, folder):
    from ultralytics.data.utils import polygon2mask, verify_image_label

    names = {}
    by_image = {}
    for image, _, _, w, h, rle, category in stored_masks(db):
        by_image.setdefault(image, []).append((w, h, rle))
    worst, failures, count = 1.0, 0, 0
    for image, masks in by_image.items():
        label = folder / "labels" / (str(Path(image).with_suffix("")) + ".txt")
        picture = folder / "images" / image
        result = verify_image_label((str(picture), str(label), "", False, 10_000, 0, 0, False))
        if result[0] is None:
            print(f"{label}: Ultralytics refuses it: {result[-1]}")
            failures += 1
            continue
        lines = [l for l in label.read_text().splitlines() if l.strip()]
        if len(lines) != len(masks):
            print(f"{label}: {len(lines)} lines for {len(masks)} stored masks")
            failures += 1
            continue
        for line, (w, h, rle) in zip(lines, masks):
            xy = np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2) * [w, h]
            filled = polygon2mask((h, w), [xy.reshape(-1)], color=1).astype(bool)
            stored = decode(rle, w, h).astype(bool)
            iou = (filled & stored).sum() / max(1, (filled | stored).sum())
            count += 1
            if stored.sum() >= 1000:
                worst = min(worst, iou)
                if iou < 0.98:
                    print(f"{image}: IoU {iou:.4f} for a mask of {stored.sum()} pixels")
                    failures += 1
    print(f"YOLO-seg: {count} polygons, worst IoU {worst:.4f} for masks of >= 1,000 pixels")
    return failures


def check_coco(db, path):
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    stored = stored_masks(db)
    anns = [coco.anns[i] for i in sorted(coco.anns)]
    if len(anns) != len(stored):
        print(f"{path}: {len(anns)} annotations for {len(stored)} stored masks")
        return 1
    failures, polygons = 0, 0
    for ann, (image, _, _, w, h, rle, _) in zip(anns, stored):
        mine = mask_utils.decode(coco.annToRLE(ann))
        if isinstance(ann["segmentation"], list):
            polygons += 1
        if not np.array_equal(mine, decode(rle, w, h)):
            print(f"{image}: annotation {ann['id']} differs from the stored mask")
            failures += 1
    print(f"COCO: {len(anns)} annotations ({polygons} as polygons) read back by pycocotools, {failures} differ")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database")
    parser.add_argument("--yolo", type=Path)
    parser.add_argument("--coco", type=Path)
    args = parser.parse_args()
    failures = 0
    if args.yolo:
        failures += check_yolo(args.database, args.yolo)
    if args.coco:
        failures += check_coco(args.database, args.coco)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
