#!/usr/bin/env python3
"""Held-out check of `sambatch predict --everything` against the reference generator.

Issue 10's rule, on inputs the parity fixtures never saw: other images (transformed copies of the
sample photos at sizes no fixture uses), other parameters and other weights (a checkpoint drawn
with another seed, float32, as Scripts/make_fixtures.py draws the fixture's). A mask matches when
its IoU with a mask of the other side is >= 0.99 and its predicted IoU and stability score are
within 1e-3; the check passes when >= 97% of the reference's masks and >= 97% of ours match.

Run from the repository root with the reference venv and a release build:

    .venv-ref/bin/python Scripts/check_everything.py --sambatch .build/release/sambatch

It writes its checkpoint and images under --work (default /tmp/sambatch-everything-check), prints
one line per case and a summary, and exits 1 when a case fails the rule.
"""

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

warnings.filterwarnings("ignore")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures  # noqa: E402  (randomize: the fixture's way of drawing weights)
from mobile_sam import SamAutomaticMaskGenerator, build_sam_vit_t  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

DEFAULTS = dict(
    points_per_side=32, points_per_batch=64, pred_iou_thresh=0.88, stability_score_thresh=0.95,
    stability_score_offset=1.0, box_nms_thresh=0.7, crop_n_layers=0, crop_nms_thresh=0.7,
    crop_overlap_ratio=512 / 1500, crop_n_points_downscale_factor=1, min_mask_region_area=0,
)

# (name, photo, transform, size, parameters that differ from the defaults). Random weights make
# every mask a whole-image texture; the sizes and thresholds keep a few dozen masks (see
# Scripts/make_everything_fixtures.py for why the images are small).
CASES = [
    ("picture2_mirrored", "picture2.jpg", "mirror", (112, 96), dict(
        points_per_side=9, points_per_batch=13, pred_iou_thresh=0.0, stability_score_thresh=0.25,
        box_nms_thresh=1.0)),
    ("picture5_flipped_regions", "picture5.jpg", "flip", (100, 140), dict(
        points_per_side=6, points_per_batch=7, pred_iou_thresh=0.0, stability_score_thresh=0.2,
        stability_score_offset=1.3, box_nms_thresh=1.0, crop_nms_thresh=1.0,
        min_mask_region_area=40)),
    ("picture1_crops", "picture1.jpg", "crop", (60, 58), dict(
        points_per_side=7, points_per_batch=30, pred_iou_thresh=0.0, stability_score_thresh=0.05,
        box_nms_thresh=1.0, crop_n_layers=1, crop_nms_thresh=1.0, crop_overlap_ratio=0.92,
        crop_n_points_downscale_factor=2, min_mask_region_area=6)),
]


def make_checkpoint(path: Path, seed: int) -> None:
    model = build_sam_vit_t()
    make_fixtures.randomize(model, seed)
    torch.save(model.state_dict(), path)


def load_model(path: Path) -> torch.nn.Module:
    model = build_sam_vit_t()
    model.load_state_dict(torch.load(path))
    model.eval()  # after loading: TinyViT caches its attention biases here
    return model


def make_image(photo: Path, transform: str, size: tuple, out: Path) -> None:
    image = Image.open(photo).convert("RGB")
    if transform == "mirror":
        image = ImageOps.mirror(image)
    elif transform == "flip":
        image = ImageOps.flip(image)
    elif transform == "crop":
        w, h = image.size
        image = image.crop((w // 6, h // 5, w - w // 8, h - h // 7))
    image.resize(size, Image.BILINEAR).save(out)


def decode(rle: dict) -> np.ndarray:
    counts = rle["counts"]
    return mask_utils.decode({"size": rle["size"],
                              "counts": counts.encode() if isinstance(counts, str) else counts})


def matched(ours: list, theirs: list) -> int:
    """How many of `ours` match some mask of `theirs` (issue 10's rule)."""
    decoded = [decode(m["rle"]).astype(bool) for m in theirs]
    count = 0
    for m in ours:
        mask = decode(m["rle"]).astype(bool)
        for other, d in zip(theirs, decoded):
            union = np.logical_or(mask, d).sum()
            iou = np.logical_and(mask, d).sum() / union if union else 1.0
            if (iou >= 0.99 and abs(m["predicted_iou"] - other["predicted_iou"]) <= 1e-3
                    and abs(m["stability_score"] - other["stability_score"]) <= 1e-3):
                count += 1
                break
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sambatch", required=True)
    parser.add_argument("--work", default="/tmp/sambatch-everything-check")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    checkpoint = work / f"mobile_sam_seed{args.seed}.pt"
    if not checkpoint.exists():
        make_checkpoint(checkpoint, args.seed)
    model = load_model(checkpoint)
    failed = 0
    for name, photo, transform, size, overrides in CASES:
        image = work / f"{name}.png"
        make_image(Path("Tests/Fixtures/images") / photo, transform, size, image)
        parameters = {**DEFAULTS, **overrides}
        pixels = np.array(Image.open(image).convert("RGB"))
        with torch.no_grad():
            reference = SamAutomaticMaskGenerator(
                model, output_mode="coco_rle", **parameters).generate(pixels)
        theirs = [{"rle": m["segmentation"], "predicted_iou": m["predicted_iou"],
                   "stability_score": m["stability_score"]} for m in reference]
        command = [args.sambatch, "predict", "--model", str(checkpoint), "--image", str(image),
                   "--everything"]
        for key, value in parameters.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        started = time.time()
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{name}: sambatch failed ({result.returncode}): {result.stderr.strip()}")
            failed += 1
            continue
        ours = json.loads(result.stdout)["masks"]
        ours_matched, theirs_matched = matched(ours, theirs), matched(theirs, ours)
        share_ours = ours_matched / len(ours) if ours else 1.0
        share_theirs = theirs_matched / len(theirs) if theirs else 1.0
        ok = share_ours >= 0.97 and share_theirs >= 0.97 and (len(ours) > 0) == (len(theirs) > 0)
        failed += not ok
        print(f"{name} ({size[0]}x{size[1]}, {photo} {transform}): reference {len(theirs)} masks, "
              f"ours {len(ours)}; matched {theirs_matched}/{len(theirs)} of theirs, "
              f"{ours_matched}/{len(ours)} of ours; {'ok' if ok else 'FAILED'} "
              f"({time.time() - started:.1f} s)")
    print(f"held-out everything check, checkpoint seed {args.seed}: "
          f"{len(CASES) - failed}/{len(CASES)} cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
