#!/usr/bin/env python3
"""Reference outputs of the automatic mask generator ("everything" mode) for the Swift tests.

Run from the repository root with the reference venv (see Scripts/README.md):

    .venv-ref/bin/python Scripts/make_everything_fixtures.py

It writes Tests/Fixtures/everything/ (replacing what is there; under 1.5 MB):
- small PNG copies of the sample photos (Pillow bilinear resizes), the generator's inputs;
- cases.json: for each case the generator's parameters and its `coco_rle` output
  (SamAutomaticMaskGenerator of mobile_sam, the same code as segment_anything's) with the committed
  fixture checkpoint Tests/Fixtures/reference/mobile_sam_random.pt;
- units.json: reference values of the generator's helpers on small inputs (point grids, crop
  boxes, torchvision's batched_nms with tied scores, remove_small_regions with OpenCV).

Why small images: with random weights every mask is a fine-grained texture over the whole image
(COCO RLE of 90-250 KB per mask at the photos' size), and every box is the whole image, so box NMS
below 1.0 keeps one mask per crop. The cases therefore use box_nms_thresh 1.0 where they test the
filters and the ordering, and tiny images (under 2 x 20 px from a crop's inner edge to the image's
edge, the generator's `atol`) where they test crops, crop NMS and min_mask_region_area with
boxes that differ (with crop overlap ratios that bring the crops' inner sides within the
filter's 20 px of the image's sides). Predicted IoUs are all negative with these weights, so pred_iou_thresh is 0
(the reference skips that filter at 0); stability thresholds are chosen to keep a few dozen masks.

The model is loaded as Scripts/make_fixtures.py does: a fresh model, the float16 state dict
loaded, .eval() called AFTER loading so that TinyViT's cached attention biases (`ab`) are the
loaded ones (see "The ab trap" in Scripts/README.md).
"""

import importlib.metadata
import json
import platform
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

warnings.filterwarnings("ignore")  # timm's deprecation warnings on import

import cv2  # noqa: E402
from mobile_sam import SamAutomaticMaskGenerator, build_sam_vit_t  # noqa: E402
from mobile_sam.modeling import tiny_vit_sam  # noqa: E402
from mobile_sam.utils import amg  # noqa: E402
from torchvision.ops.boxes import batched_nms  # noqa: E402

FIXTURES = Path("Tests/Fixtures")
OUT = FIXTURES / "everything"
CHECKPOINT = FIXTURES / "reference" / "mobile_sam_random.pt"
THREADS = 1
SEED = 10

DEFAULTS = dict(
    points_per_side=32, points_per_batch=64, pred_iou_thresh=0.88, stability_score_thresh=0.95,
    stability_score_offset=1.0, box_nms_thresh=0.7, crop_n_layers=0, crop_nms_thresh=0.7,
    crop_overlap_ratio=512 / 1500, crop_n_points_downscale_factor=1, min_mask_region_area=0,
)

# (name, source photo, size after resize, parameters that differ from the defaults)
CASES = [
    # The filters and the ordering: box NMS at 1.0 keeps the identical whole-image boxes, in
    # the reference's order (descending predicted IoU); 64 points in batches of 10.
    ("picture1_filters", "picture1.jpg", (128, 128), dict(
        points_per_side=8, points_per_batch=10, pred_iou_thresh=0.0, stability_score_thresh=0.21,
        box_nms_thresh=1.0)),
    # Another offset, and min_mask_region_area on texture masks (holes and islands change).
    ("picture2_small_regions", "picture2.jpg", (120, 120), dict(
        points_per_side=7, points_per_batch=20, pred_iou_thresh=0.0, stability_score_thresh=0.3,
        stability_score_offset=0.8, box_nms_thresh=1.0, crop_nms_thresh=1.0,
        min_mask_region_area=25)),
    # Crops on a tiny image: crop masks survive the crop-edge filter, boxes differ, so box NMS,
    # crop NMS (smaller crops first) and the NMS after min_mask_region_area all decide something.
    # The overlap ratios put each crop's inner sides within 20 px of the image's (the crop-edge
    # filter would drop every texture mask otherwise); every crop must keep a mask, or the
    # reference crashes.
    ("picture3_crops", "picture3.jpg", (64, 43), dict(
        points_per_side=8, points_per_batch=24, pred_iou_thresh=0.0, stability_score_thresh=0.12,
        crop_n_layers=1, crop_overlap_ratio=0.9, crop_n_points_downscale_factor=2,
        min_mask_region_area=12)),
    ("picture5_crops", "picture5.jpg", (72, 50), dict(
        points_per_side=6, points_per_batch=64, pred_iou_thresh=0.0, stability_score_thresh=0.1,
        box_nms_thresh=0.8, crop_n_layers=1, crop_nms_thresh=0.6, crop_overlap_ratio=0.8)),
]


def load_model() -> torch.nn.Module:
    saved = torch.load(CHECKPOINT)
    model = build_sam_vit_t()  # calls .eval() before loading: `ab` is stale until .eval() below
    model.load_state_dict(saved)
    model.eval()
    for name, module in model.named_modules():
        if isinstance(module, tiny_vit_sam.Attention):
            expected = module.attention_biases[:, module.attention_bias_idxs]
            assert torch.equal(module.ab, expected), f"{name}.ab is stale"
            assert bool((module.ab != 0).any()), f"{name}.ab is all zero"
    return model


def versions() -> dict:
    names = ["torch", "torchvision", "pillow", "numpy", "pycocotools", "mobilesam-mirror",
             "opencv-python-headless"]
    result = {"python": platform.python_version()}
    for name in names:
        try:
            result[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            result[name] = None
    return result


def run_cases(model: torch.nn.Module) -> list:
    cases = []
    for name, photo, size, overrides in CASES:
        image = Image.open(FIXTURES / "images" / photo).convert("RGB").resize(size, Image.BILINEAR)
        file = f"{name}.png"
        image.save(OUT / file)
        pixels = np.array(Image.open(OUT / file).convert("RGB"))
        parameters = {**DEFAULTS, **overrides}
        generator = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **parameters)
        masks = generator.generate(pixels)
        print(f"{name}: {len(masks)} masks")
        if not 1 <= len(masks) <= 80:
            print(f"  warning: {name} should keep a few dozen masks; adjust its thresholds")
        cases.append({
            "name": name, "image": file, "width": size[0], "height": size[1],
            "parameters": parameters,
            "masks": [{
                "rle": {"size": m["segmentation"]["size"], "counts": m["segmentation"]["counts"]},
                "area": int(m["area"]), "bbox": [int(v) for v in m["bbox"]],
                "predicted_iou": m["predicted_iou"], "stability_score": m["stability_score"],
                "point_coords": m["point_coords"], "crop_box": [int(v) for v in m["crop_box"]],
            } for m in masks],
        })
    return cases


def unit_values() -> dict:
    rng = np.random.default_rng(SEED)
    grids = [{"n": n, "points": amg.build_point_grid(n).tolist()} for n in (1, 2, 3, 7, 32)]
    crops = []
    for width, height, layers, ratio in [(1280, 720, 1, 512 / 1500), (2048, 1365, 2, 512 / 1500),
                                         (64, 43, 1, 512 / 1500), (333, 999, 3, 0.25), (50, 50, 2, 0.0)]:
        boxes, layer_indices = amg.generate_crop_boxes((height, width), layers, ratio)
        crops.append({"width": width, "height": height, "n_layers": layers, "overlap_ratio": ratio,
                      "boxes": boxes, "layers": layer_indices})
    nms = []
    for count, threshold in [(40, 0.5), (200, 0.3), (300, 0.7)]:
        corners = rng.integers(0, 60, size=(count, 2))
        sizes = rng.integers(1, 40, size=(count, 2))
        boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
        scores = rng.integers(0, 4, size=count).astype(np.float32)  # many ties
        keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                           torch.zeros(count), iou_threshold=threshold)
        nms.append({"boxes": boxes.astype(int).tolist(), "scores": scores.tolist(),
                    "threshold": threshold, "keep": keep.tolist()})
    regions = []
    for height, width, density, area in [(30, 40, 0.5, 5), (25, 25, 0.3, 12), (40, 31, 0.7, 20),
                                         (12, 12, 0.05, 50)]:
        mask = rng.random((height, width)) < density
        holes, holes_changed = amg.remove_small_regions(mask, area, mode="holes")
        islands, islands_changed = amg.remove_small_regions(mask, area, mode="islands")
        regions.append({
            "height": height, "width": width, "area": area, "mask": mask.astype(int).tolist(),
            "holes": holes.astype(int).tolist(), "holes_changed": bool(holes_changed),
            "islands": islands.astype(int).tolist(), "islands_changed": bool(islands_changed),
        })
    return {"point_grids": grids, "crop_boxes": crops, "batched_nms": nms,
            "remove_small_regions": regions}


def main() -> None:
    if not (FIXTURES / "images").is_dir():
        raise SystemExit("run from the repository root (Tests/Fixtures/images not found)")
    torch.set_num_threads(THREADS)
    cv2.setNumThreads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.suffix in (".png", ".json"):
            old.unlink()
    (OUT / "units.json").write_text(json.dumps({"versions": versions(), **unit_values()}) + "\n")
    model = load_model()
    with torch.no_grad():
        cases = run_cases(model)
    (OUT / "cases.json").write_text(
        json.dumps({"versions": versions(), "checkpoint": str(CHECKPOINT), "cases": cases}) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")
    assert total < 1.5e6, "everything fixtures over 1.5 MB"


if __name__ == "__main__":
    main()
