#!/usr/bin/env python3
"""Full-size SAM ViT-B/L/H checkpoints with seeded random weights and the reference's outputs,
for checks on a developer's machine (375 MB / 1.25 GB / 2.56 GB each: never committed).

    .venv-ref/bin/python Scripts/make_vit_checkpoints.py --model vit_b --out /tmp/sam-vit
    SAMBATCH_VIT_REFERENCE=/tmp/sam-vit/vit_b swift test --filter ViTParityTests

For each model it writes OUT/<model>/sam_<model>_random.pth (float32, saved as torch.save saves
the official sam_vit_*.pth) and OUT/<model>/cases.json with the embeddings (all 256 channels),
low-res logits, scores, stability scores and masks of SamPredictor on the sample photos, in the
format ViTParityTests reads. Weights are drawn as Scripts/make_vit_fixtures.py draws them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import make_vit_fixtures as fixtures

IMAGES = ["picture1", "picture2", "picture3", "picture5"]
CASES = fixtures.CASES + [
    {"name": "p2_points_bus", "image": "picture2",
     "points": [[190, 665, 1], [250, 660, 1], [320, 670, 1]], "multimask": False},
    {"name": "p2_box_tower_multi", "image": "picture2", "box": [342, 125, 404, 500],
     "multimask": True},
    {"name": "p5_box_bear", "image": "picture5", "box": [1124, 444, 1667, 1189],
     "multimask": False},
    {"name": "p5_point_bear", "image": "picture5", "points": [[1447, 853, 1]],
     "multimask": False},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(fixtures.FULL_CONFIGS),
                        help="vit_b, vit_l or vit_h (repeat for several; default vit_b)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sam-vit"))
    parser.add_argument("--seed", type=int, default=fixtures.SEED)
    parser.add_argument("--threads", type=int, default=fixtures.THREADS)
    parser.add_argument("--images", nargs="+", default=IMAGES, choices=IMAGES,
                        help="photos for the reference outputs (default: all four)")
    parser.add_argument("--no-reference", action="store_true",
                        help="write the checkpoint only (no SamPredictor outputs)")
    args = parser.parse_args()
    if not (fixtures.FIXTURES / "images").is_dir():
        raise SystemExit("run from the repository root (Tests/Fixtures/images not found)")
    torch.manual_seed(args.seed + 1)
    torch.set_num_threads(args.threads)
    for name in args.model or ["vit_b"]:
        config = fixtures.FULL_CONFIGS[name]
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        model = fixtures.build_sam(**config)
        fixtures.randomize(model, args.seed)
        checkpoint = out / f"sam_{name}_random.pth"
        fixtures.save_state_dict(model, checkpoint, half=False)
        print(f"{name}: {checkpoint} ({checkpoint.stat().st_size / 1e6:.0f} MB)")
        if args.no_reference:
            continue
        model = fixtures.reload(checkpoint, config)
        images = {stem: fixtures.FIXTURES / "images" / f"{stem}.jpg" for stem in args.images}
        cases = [case for case in CASES if case["image"] in images]
        fixtures.write_reference(model, checkpoint, out, out, cases, images, None,
                                 check_coverage=False,
                                 extra={"seed": args.seed, "model": name, "config": config})
        del model


if __name__ == "__main__":
    sys.exit(main())
