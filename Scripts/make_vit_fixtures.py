#!/usr/bin/env python3
"""Generate the SAM ViT reference fixtures (Tests/Fixtures/vit/) the Swift ViT parity tests use.

Run from the repository root, in the reference venv of Scripts/requirements.txt
(segment-anything pinned there):

    .venv-ref/bin/python Scripts/make_vit_fixtures.py

The original SAM checkpoints are too large to commit, so this builds the reference's own
`Sam(ImageEncoderViT(...))` at a small size that still exercises every part of the encoder:
width 64, depth 4, 4 heads (head dim 16), global attention in blocks 1 and 3, windowed 14x14
attention (the 64x64 grid padded to 70x70) in blocks 0 and 2, decomposed relative positions
in every block, the real 1024 input and 64x64 grid, and SAM's own prompt encoder and mask
decoder. Every parameter is drawn from a seeded generator with variance-preserving values (the
default init leaves rel_pos and pos_embed at zero). The state dict is saved as torch.save saves
the official sam_vit_*.pth (zip format, an OrderedDict with _metadata), floating tensors as
float16 to keep the fixture small (the reference then runs on the same values in float32).

SamPredictor's outputs on two sample photos (picture1 769x770, picture3 2241x1500, so both the
square and the padded input are seen) are written to cases.json in the format of
Tests/Fixtures/reference/cases.json: scores, low-res logits (.npy), masks (COCO RLE),
stability scores. The embeddings are stored for their first EMBEDDING_CHANNELS channels only
(float32, 0.5 MB each instead of 4 MB): the neck mixes every channel of the encoder, so an
error anywhere shows in these, and the logits and masks check the whole embedding anyway.

Scripts/make_vit_checkpoints.py reuses these functions for full-size ViT-B/L/H checks.
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import math
import platform
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from segment_anything import SamPredictor  # noqa: E402
from segment_anything.modeling import (  # noqa: E402
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom  # noqa: E402
from segment_anything.utils.amg import calculate_stability_score  # noqa: E402

SEED = 5
THREADS = 2
BIAS_STD = 0.1
POS_EMBED_STD = 0.5
EMBEDDING_STD = 1.0
EMBEDDING_CHANNELS = 32
FIXTURES = Path("Tests/Fixtures")
OUT = FIXTURES / "vit"
CHECKPOINT_NAME = "sam_vit_small_random.pth"
SIZE_BUDGET_BYTES = 16 * 1000 * 1000
MIN_COVERAGE, MAX_COVERAGE = 0.02, 0.98

SMALL_CONFIG = {"embed_dim": 64, "depth": 4, "num_heads": 4, "global_attn_indexes": [1, 3]}
FULL_CONFIGS = {  # build_sam.py
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": [2, 5, 8, 11]},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16,
              "global_attn_indexes": [5, 11, 17, 23]},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16,
              "global_attn_indexes": [7, 15, 23, 31]},
}

STAGE_BOX = [120, 270, 635, 455]
CAR_BOX = [266, 714, 1485, 1190]
BIKE_BOX = [1927, 798, 2170, 1190]
CASES: list[dict] = [
    {"name": "p1_box_stage", "image": "picture1", "box": STAGE_BOX, "multimask": False},
    {"name": "p1_point_guitar_multi", "image": "picture1", "points": [[330, 190, 1]],
     "multimask": True},
    {"name": "p1_posneg_stage", "image": "picture1",
     "points": [[380, 350, 1], [250, 360, 1], [330, 190, 0], [490, 640, 0]], "multimask": False},
    {"name": "p3_box_car", "image": "picture3", "box": CAR_BOX, "multimask": False},
    {"name": "p3_box_posneg_bike", "image": "picture3", "box": BIKE_BOX,
     "points": [[1975, 1092, 1], [1870, 900, 0]], "multimask": False},
]


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FIXTURE CHECK FAILED: {message}")


def build_sam(embed_dim: int, depth: int, num_heads: int, global_attn_indexes: list[int]) -> Sam:
    """segment_anything.build_sam._build_sam with the encoder's size as parameters."""
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=depth, embed_dim=embed_dim, img_size=1024, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=num_heads, patch_size=16,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_attn_indexes,
            window_size=14, out_chans=256),
        prompt_encoder=PromptEncoder(
            embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
            mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Draws every float parameter from one seeded generator, in named_modules() order:
    conv/linear weights N(0, 1/fan_in), biases std 0.1, LayerNorm weights U(0.5, 1.5),
    pos_embed std 0.5, rel_pos tables std 1/sqrt(head_dim) (so q . rel_pos, a sum over head_dim
    products, has about unit spread like the scaled scores), embeddings std 1."""
    generator = torch.Generator().manual_seed(seed)
    assigned: set[str] = set()

    def normal(name: str, tensor: torch.Tensor, std: float) -> None:
        with torch.no_grad():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)
        assigned.add(name)

    def uniform(name: str, tensor: torch.Tensor, low: float, high: float) -> None:
        with torch.no_grad():
            tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))
        assigned.add(name)

    for module_name, module in model.named_modules():
        p = module_name + "." if module_name else ""
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            normal(p + "weight", module.weight, math.sqrt(1.0 / module.weight[0].numel()))
            if module.bias is not None:
                normal(p + "bias", module.bias, BIAS_STD)
        elif isinstance(module, torch.nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            sh, sw = module.stride
            fan_in = module.in_channels * kh * kw / (sh * sw)
            normal(p + "weight", module.weight, math.sqrt(1.0 / fan_in))
            if module.bias is not None:
                normal(p + "bias", module.bias, BIAS_STD)
        elif isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "LayerNorm2d":
            uniform(p + "weight", module.weight, 0.5, 1.5)
            normal(p + "bias", module.bias, BIAS_STD)
        elif isinstance(module, torch.nn.Embedding):
            normal(p + "weight", module.weight, EMBEDDING_STD)
        elif isinstance(module, PositionEmbeddingRandom):
            normal(p + "positional_encoding_gaussian_matrix",
                   module.positional_encoding_gaussian_matrix, EMBEDDING_STD)
        elif isinstance(module, ImageEncoderViT):
            normal(p + "pos_embed", module.pos_embed, POS_EMBED_STD)
        elif type(module).__name__ == "Attention" and hasattr(module, "rel_pos_h"):
            head_dim = module.rel_pos_h.shape[1]
            normal(p + "rel_pos_h", module.rel_pos_h, 1 / math.sqrt(head_dim))
            normal(p + "rel_pos_w", module.rel_pos_w, 1 / math.sqrt(head_dim))
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and name not in ("pixel_mean", "pixel_std"):
            check(name in assigned, f"{name} {tuple(tensor.shape)} was not randomized")


def save_state_dict(model: torch.nn.Module, path: Path, half: bool) -> None:
    """As torch.save(model.state_dict()) writes the official files (OrderedDict + _metadata)."""
    state = model.state_dict()
    out = collections.OrderedDict()
    for key, value in state.items():
        if key in ("pixel_mean", "pixel_std"):
            continue  # non-persistent buffers: not in the official files either
        out[key] = value.half() if half and value.is_floating_point() else value.clone()
    out._metadata = state._metadata  # type: ignore[attr-defined]
    torch.save(out, path)


def reload(path: Path, config: dict) -> Sam:
    model = build_sam(**config)
    model.load_state_dict(torch.load(path), strict=True)  # float16 values cast to float32
    return model.eval()


def relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def encode_mask(mask: np.ndarray, label: str) -> tuple[dict, int]:
    pixels = mask.astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(pixels))
    check(np.array_equal(mask_utils.decode(rle), pixels), f"{label}: RLE does not round-trip")
    encoded = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return encoded, int(mask_utils.area(rle))


def run_case(predictor: SamPredictor, case: dict, width: int, height: int, out: Path,
             base: Path, image: str, check_coverage: bool) -> dict:
    name = case["name"]
    points = case.get("points", [])
    box = case.get("box")
    kwargs: dict = {"multimask_output": case["multimask"]}
    if points:
        kwargs["point_coords"] = np.array([[x, y] for x, y, _ in points], dtype=np.float64)
        kwargs["point_labels"] = np.array([label for _, _, label in points], dtype=np.int64)
    if box is not None:
        kwargs["box"] = np.array(box, dtype=np.float64)
    masks, scores, logits = predictor.predict(**kwargs)
    full_logits, _, _ = predictor.predict(**kwargs, return_logits=True)
    stability = calculate_stability_score(torch.from_numpy(full_logits), 0.0, 1.0).tolist()
    rles, areas = [], []
    for index, mask in enumerate(masks):
        fraction = float(mask.mean())
        if check_coverage:
            check(MIN_COVERAGE <= fraction <= MAX_COVERAGE,
                  f"{name} mask {index} covers {fraction:.4f} of the image")
        rle, area = encode_mask(mask, f"{name} mask {index}")
        rles.append(rle)
        areas.append(area)
    logits_path = out / f"{name}_logits.npy"
    np.save(logits_path, np.ascontiguousarray(logits.astype("<f4")))
    print(f"  {name}: scores {np.round(scores, 4).tolist()} coverage "
          f"{[round(float(m.mean()), 3) for m in masks]}")
    return {
        "name": name, "image": image, "width": width, "height": height,
        "points": [[float(x), float(y), int(label)] for x, y, label in points],
        "box": [float(v) for v in box] if box is not None else None,
        "mask_input": None, "multimask": case["multimask"],
        "scores": [float(s) for s in scores], "logits": relative(logits_path, base),
        "masks": rles, "areas": areas, "stability": [float(v) for v in stability],
    }


def write_reference(model: Sam, checkpoint: Path, out: Path, base: Path, cases: list[dict],
                    images: dict[str, Path], embedding_channels: int | None,
                    check_coverage: bool, extra: dict) -> None:
    """Runs SamPredictor on every case and writes out/cases.json (paths relative to base)."""
    predictor = SamPredictor(model)
    results, embeddings = [], []
    for stem, path in images.items():
        image = np.array(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        with torch.no_grad():
            predictor.set_image(image)
        features = predictor.features.detach().numpy()
        check(features.shape == (1, 256, 64, 64), f"{stem}: embedding {features.shape}")
        kept = features if embedding_channels is None else features[:, :embedding_channels]
        embedding_path = out / f"embedding_{stem}.npy"
        np.save(embedding_path, np.ascontiguousarray(kept.astype("<f4")))
        embeddings.append({"image": relative_or_absolute(path, base),
                           "file": relative(embedding_path, base)})
        print(f"{stem} {width}x{height}: embedding std {features.std():.4f}")
        for case in cases:
            if case["image"] == stem:
                results.append(run_case(predictor, case, width, height, out, base,
                                        relative_or_absolute(path, base), check_coverage))
    document = {
        "generator": Path(sys.argv[0]).as_posix(),
        "versions": versions(),
        **extra,
        "checkpoint": relative_or_absolute(checkpoint, base),
        "embeddings": embeddings,
        "resized": [],
        "cases": results,
    }
    with open(out / "cases.json", "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def relative_or_absolute(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def versions() -> dict:
    result = {"python": platform.python_version()}
    for name in ["torch", "segment-anything", "numpy", "pillow", "pycocotools"]:
        result[name] = importlib.metadata.version(name)
    return result


def main() -> None:
    if not (FIXTURES / "images").is_dir():
        raise SystemExit("run from the repository root (Tests/Fixtures/images not found)")
    torch.manual_seed(SEED + 1)
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.suffix in (".npy", ".pth", ".json"):
            old.unlink()
    model = build_sam(**SMALL_CONFIG)
    randomize(model, SEED)
    checkpoint = OUT / CHECKPOINT_NAME
    save_state_dict(model, checkpoint, half=True)
    model = reload(checkpoint, SMALL_CONFIG)
    images = {stem: FIXTURES / "images" / f"{stem}.jpg" for stem in ["picture1", "picture3"]}
    write_reference(model, checkpoint, OUT, FIXTURES, CASES, images, EMBEDDING_CHANNELS,
                    check_coverage=True,
                    extra={"seed": SEED, "config": SMALL_CONFIG,
                           "embedding_channels": EMBEDDING_CHANNELS})
    total = sum(f.stat().st_size for f in OUT.iterdir())
    check(total <= SIZE_BUDGET_BYTES, f"ViT fixtures total {total} bytes (> {SIZE_BUDGET_BYTES})")
    print(f"{len(CASES)} cases; {OUT} total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(main())
