#!/usr/bin/env python3
"""Checks a `sambatch export --format coco` file with pycocotools itself.

Needs a Python with pycocotools and numpy (e.g. the reference venv: .venv-ref/bin/python, see
README); the Swift program never needs Python.

    python Scripts/check_coco_export.py export.json [--gt instances.json]

For every annotation: pycocotools decodes the RLE to a mask of the image's size, its area and
toBbox equal the file's `area` and `bbox`, and re-encoding the mask gives the same counts string.
The file also loads as a COCO dataset (COCO(...)) and, with --gt, as detection results against
the ground-truth instances file (loadRes, then COCOeval for bbox, and segm when the ground truth has segmentations), which is how people
will use it. Exits 1 on the first mismatch.
"""
import argparse
import contextlib
import io
import json
import sys

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("export")
    parser.add_argument("--gt", help="a COCO instances file with the same image ids")
    args = parser.parse_args()

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(args.export)
    images = coco.imgs
    checked = 0
    for ann in coco.dataset["annotations"]:
        image = images[ann["image_id"]]
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
        if rle["size"] != [image["height"], image["width"]]:
            sys.exit(f"annotation {ann['id']}: size {rle['size']} is not the image's")
        m = mask_utils.decode(rle)
        if int(m.sum()) != ann["area"] or int(mask_utils.area(rle)) != ann["area"]:
            sys.exit(f"annotation {ann['id']}: area {ann['area']} but pycocotools says {int(m.sum())}")
        if list(map(float, mask_utils.toBbox(rle))) != ann["bbox"]:
            sys.exit(f"annotation {ann['id']}: bbox {ann['bbox']} but toBbox says {mask_utils.toBbox(rle)}")
        again = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
        if again != ann["segmentation"]["counts"]:
            sys.exit(f"annotation {ann['id']}: re-encoding the decoded mask gives another string")
        # The annToMask path users take must agree too.
        if not np.array_equal(coco.annToMask(ann), m):
            sys.exit(f"annotation {ann['id']}: annToMask differs from decode")
        checked += 1
    print(f"{args.export}: {checked} annotations on {len(images)} images check out with pycocotools")

    if args.gt:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(args.gt)
            results = json.load(open(args.export))["annotations"]
            for r in results:
                r.pop("id", None)
            dt = gt.loadRes(results)
            kinds = ["bbox"]
            if all("segmentation" in a for a in gt.dataset["annotations"]):
                kinds.append("segm")
            for kind in kinds:
                e = COCOeval(gt, dt, kind)
                e.evaluate()
                e.accumulate()
                e.summarize()
                print(f"{kind} AP = {e.stats[0]:.3f}", file=sys.stderr)
        print(f"loadRes + COCOeval against {args.gt}: OK")


if __name__ == "__main__":
    main()
