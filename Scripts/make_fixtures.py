#!/usr/bin/env python3
"""Generate the MobileSAM reference fixtures the Swift tests compare against.

Expects a Python venv outside git with the pinned packages of Scripts/requirements.txt
(torch, torchvision, timm, pillow, numpy, pycocotools, mobilesam-mirror). Run it from the
repository root:

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install -r Scripts/requirements.txt
    .venv-ref/bin/python Scripts/make_fixtures.py

It writes into Tests/Fixtures/reference/ (replacing what is there). Regenerate only on purpose:
every Swift parity test compares against these files.

What it does:
1. Builds the reference vit_t and draws EVERY parameter and buffer from a seeded generator with
   variance-preserving values (the default init hides whole parts of the model: MBConv's last
   BatchNorm weight is 0, BatchNorm statistics are 0 and 1, attention biases are 0).
   Conv/linear weights N(0, variance 1/fan_in) (std sqrt(1/fan_in), the variance-preserving
   choice); every other normal is given by its standard deviation: biases, BatchNorm/LayerNorm
   biases and running means std 0.1, attention biases std 0.5, embeddings std 1; BatchNorm and
   LayerNorm weights and running variances U(0.5, 1.5). (Reading 0.1 and 0.5 as variances
   instead made the image-independent bias terms dominate: embeddings of different photos
   correlated 0.85-0.99 and masks hardly depended on the prompt.)
2. Saves the state dict as torch.save does for the official mobile_sam.pt (zip format, an
   OrderedDict with its _metadata), floating tensors stored as float16, plus a small float32
   state dict whose values equal the float16 ones.
3. Reloads the float16 file into a FRESH model and calls .eval() AFTER loading: TinyViT's
   Attention caches its biases (`ab`) in .eval(), and build_sam_vit_t(checkpoint=...) calls
   .eval() before loading, so a model built that way runs with zero biases.
4. Runs SamPredictor on the sample photos with box, point, several-point, positive/negative,
   box-plus-point and mask-input prompts, multimask on and off, and writes cases.json with the
   scores, low-res logits (.npy), COCO RLE masks, areas, bboxes and coverage.
5. Fails loudly when a check does not hold (see `check`).
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import math
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from mobile_sam import SamPredictor, build_sam_vit_t  # noqa: E402
from mobile_sam.modeling import tiny_vit_sam  # noqa: E402
from mobile_sam.modeling.prompt_encoder import PositionEmbeddingRandom  # noqa: E402
from mobile_sam.utils.amg import calculate_stability_score  # noqa: E402

SEED = 3  # seeds 6, 10, 11 fail the coverage check; see Scripts/README.md
THREADS = 2
BIAS_STD = 0.1  # biases, norm biases, BatchNorm running means
ATTENTION_BIAS_STD = 0.5
EMBEDDING_STD = 1.0  # nn.Embedding, positional_encoding_gaussian_matrix
FIXTURES = Path("Tests/Fixtures")
OUT = FIXTURES / "reference"
CHECKPOINT_NAME = "mobile_sam_random.pt"
SMALL_NAME = "small_float32.pt"
SMALL_PREFIXES = (
    "prompt_encoder.",
    "mask_decoder.iou_prediction_head.layers.1.",
    "mask_decoder.iou_prediction_head.layers.2.",
)
EMBEDDING_IMAGES = ["picture1"]
RESIZED_IMAGES = ["picture3"]
SIZE_BUDGET_BYTES = 35 * 1000 * 1000
FILE_LIMIT_BYTES = 25 * 1000 * 1000
MIN_COVERAGE, MAX_COVERAGE = 0.05, 0.95
MAX_EMBEDDING_CORRELATION = 0.9

# Parameters and buffers that are deliberately not drawn, with the reason.
NOT_RANDOMIZED = {
    # Sam.pixel_mean / pixel_std: fixed normalization constants of the config, non-persistent
    # (not in the checkpoint).
    "pixel_mean": "config constant, not in the checkpoint",
    "pixel_std": "config constant, not in the checkpoint",
}
# TinyViT Attention.ab: derived from attention_biases by .eval(); checked separately.
DERIVED_SUFFIX = ".ab"


def check(condition: bool, message: str) -> None:
    """A fixture check: fail loudly, never write fixtures that prove nothing."""
    if not condition:
        raise SystemExit(f"FIXTURE CHECK FAILED: {message}")


# ---------------------------------------------------------------------------------------------
# 1. Random weights


class Randomizer:
    """Draws every tensor from one seeded generator, in named_modules() order."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.assigned: set[str] = set()

    def normal(self, name: str, tensor: torch.Tensor, std: float) -> None:
        values = torch.randn(tensor.shape, generator=self.generator) * std
        self._assign(name, tensor, values)

    def uniform(self, name: str, tensor: torch.Tensor, low: float, high: float) -> None:
        values = low + (high - low) * torch.rand(tensor.shape, generator=self.generator)
        self._assign(name, tensor, values)

    def _assign(self, name: str, tensor: torch.Tensor, values: torch.Tensor) -> None:
        check(name not in self.assigned, f"{name} drawn twice")
        with torch.no_grad():
            tensor.copy_(values)
        self.assigned.add(name)


def is_layer_norm(module: torch.nn.Module) -> bool:
    # nn.LayerNorm, mobile_sam.modeling.common.LayerNorm2d and tiny_vit_sam.LayerNorm2d.
    return isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "LayerNorm2d"


def randomize(model: torch.nn.Module, seed: int) -> None:
    r = Randomizer(seed)
    for module_name, module in model.named_modules():
        p = module_name + "." if module_name else ""
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            # fan_in = in_channels / groups * kh * kw (conv) or in_features (linear).
            fan_in = module.weight[0].numel()
            r.normal(p + "weight", module.weight, math.sqrt(1.0 / fan_in))
            if module.bias is not None:
                r.normal(p + "bias", module.bias, BIAS_STD)
        elif isinstance(module, torch.nn.ConvTranspose2d):
            # weight (in, out / groups, kh, kw); each output pixel sums in_channels * kh * kw /
            # (sh * sw) products (kernel 2, stride 2 here: in_channels).
            kh, kw = module.kernel_size
            sh, sw = module.stride
            fan_in = module.in_channels * kh * kw / (sh * sw)
            r.normal(p + "weight", module.weight, math.sqrt(1.0 / fan_in))
            if module.bias is not None:
                r.normal(p + "bias", module.bias, BIAS_STD)
        elif isinstance(module, torch.nn.BatchNorm2d):
            r.uniform(p + "weight", module.weight, 0.5, 1.5)
            r.normal(p + "bias", module.bias, BIAS_STD)
            r.normal(p + "running_mean", module.running_mean, BIAS_STD)
            r.uniform(p + "running_var", module.running_var, 0.5, 1.5)
        elif is_layer_norm(module):
            r.uniform(p + "weight", module.weight, 0.5, 1.5)
            r.normal(p + "bias", module.bias, BIAS_STD)
        elif isinstance(module, torch.nn.Embedding):
            r.normal(p + "weight", module.weight, EMBEDDING_STD)
        elif isinstance(module, tiny_vit_sam.Attention):
            r.normal(p + "attention_biases", module.attention_biases, ATTENTION_BIAS_STD)
        elif isinstance(module, PositionEmbeddingRandom):
            r.normal(
                p + "positional_encoding_gaussian_matrix",
                module.positional_encoding_gaussian_matrix,
                EMBEDDING_STD,
            )

    # Every float parameter and buffer must have been drawn (int buffers such as
    # num_batches_tracked and attention_bias_idxs aside).
    default = build_sam_vit_t()
    default_tensors = dict(default.named_parameters()) | dict(default.named_buffers())
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, tensor in tensors:
        if not tensor.is_floating_point():
            continue
        if name in NOT_RANDOMIZED or name.endswith(DERIVED_SUFFIX):
            continue
        check(name in r.assigned, f"{name} {tuple(tensor.shape)} was not randomized")
        check(
            not torch.equal(tensor, default_tensors[name]),
            f"{name} still equals its default init",
        )
        check(bool(torch.isfinite(tensor).all()), f"{name} has non-finite values")
    print(f"randomized {len(r.assigned)} tensors with seed {seed}")


# ---------------------------------------------------------------------------------------------
# 2. Saving


def save_checkpoints(model: torch.nn.Module) -> list[str]:
    state = model.state_dict()
    half = collections.OrderedDict()
    for key, value in state.items():
        half[key] = value.half() if value.is_floating_point() else value.clone()
    # torch.save(model.state_dict()) keeps the _metadata attribute (pickled through BUILD).
    half._metadata = state._metadata  # type: ignore[attr-defined]
    torch.save(half, OUT / CHECKPOINT_NAME)

    # Float32 values equal to the float16 ones, so the loader's float32 path can be compared to
    # its float16 path. A plain OrderedDict without _metadata (no BUILD), a second pickle form.
    small = collections.OrderedDict(
        (key, value.float()) for key, value in half.items() if key.startswith(SMALL_PREFIXES)
    )
    check(len(small) > 0, "small float32 checkpoint is empty")
    torch.save(small, OUT / SMALL_NAME)
    return list(small.keys())


# ---------------------------------------------------------------------------------------------
# 3. Reloading


def reload_model() -> torch.nn.Module:
    saved = torch.load(OUT / CHECKPOINT_NAME)
    model = build_sam_vit_t()  # fresh; this calls .eval() BEFORE loading, which caches zero `ab`
    model.load_state_dict(saved)  # strict: every key present, float16 cast to float32
    attention = [
        (n, m) for n, m in model.named_modules() if isinstance(m, tiny_vit_sam.Attention)
    ]
    check(len(attention) == 10, f"expected 10 TinyViT Attention modules, found {len(attention)}")
    stale = [n for n, m in attention if not bool((m.ab == 0).all())]
    check(not stale, f"ab unexpectedly non-zero before .eval(): {stale}")
    model.eval()  # AFTER loading: re-caches ab from the loaded attention_biases
    for name, module in attention:
        expected = module.attention_biases[:, module.attention_bias_idxs]
        check(torch.equal(module.ab, expected), f"{name}.ab != attention_biases[:, idxs]")
        check(bool((module.ab != 0).any()), f"{name}.ab is all zero")
    model_state = model.state_dict()
    for key, value in saved.items():
        check(torch.equal(model_state[key], value.to(model_state[key].dtype)), f"{key} reload")
    print(f"reloaded {len(saved)} keys; ab checked in {len(attention)} Attention modules")
    return model


# ---------------------------------------------------------------------------------------------
# 4. Cases

# Coordinates in original pixels, picked by looking at the photos.
# picture1 769x770: guitar sign, "The Stage" oval, "Jack's" sign.
# picture2 769x770: clock tower, buses, people on the lawn.
# picture3 2241x1500: silver car, bicycle by a pole, shop windows.
# picture5 2068x1450: mother bear, cubs, pebble shore, water.
STAGE_BOX = [120, 270, 635, 455]
CAR_BOX = [266, 714, 1485, 1190]
BIKE_BOX = [1927, 798, 2170, 1190]
BEAR_BOX = [1124, 444, 1667, 1189]
CUBS_BOX = [670, 660, 1190, 1200]
TOWER_BOX = [342, 125, 404, 500]
BUS_BOX = [159, 616, 337, 688]

# 15 cases, 18 masks: the masks of a random model are fine-grained textures whose RLE takes
# 90-250 KB each, so multimask cases (3 masks) sit on the two small photos to stay in budget.
CASES: list[dict] = [
    # picture1
    {"name": "p1_box_stage", "image": "picture1", "box": STAGE_BOX, "multimask": False},
    {"name": "p1_box_stage_multi", "image": "picture1", "box": STAGE_BOX, "multimask": True},
    {"name": "p1_point_guitar", "image": "picture1", "points": [[330, 190, 1]],
     "multimask": False},
    {"name": "p1_posneg_stage", "image": "picture1",
     "points": [[380, 350, 1], [250, 360, 1], [330, 190, 0], [490, 640, 0]],
     "multimask": False},
    {"name": "p1_mask_input_stage", "image": "picture1", "box": STAGE_BOX,
     "mask_from": "p1_box_stage_multi", "multimask": False},
    # picture2
    {"name": "p2_point_bus_multi", "image": "picture2", "points": [[250, 660, 1]],
     "multimask": True},
    {"name": "p2_points_bus", "image": "picture2",
     "points": [[190, 665, 1], [250, 660, 1], [320, 670, 1]], "multimask": False},
    {"name": "p2_box_posneg_tower", "image": "picture2", "box": TOWER_BOX,
     "points": [[372, 350, 1], [300, 330, 0]], "multimask": False},
    {"name": "p2_box_bus", "image": "picture2", "box": BUS_BOX, "multimask": False},
    # picture3
    {"name": "p3_box_car", "image": "picture3", "box": CAR_BOX, "multimask": False},
    {"name": "p3_posneg_car", "image": "picture3",
     "points": [[868, 952, 1], [1300, 1000, 1], [1990, 1090, 0], [900, 1350, 0]],
     "multimask": False},
    {"name": "p3_box_posneg_bike", "image": "picture3", "box": BIKE_BOX,
     "points": [[1975, 1092, 1], [1870, 900, 0]], "multimask": False},
    # picture5
    {"name": "p5_box_bear", "image": "picture5", "box": BEAR_BOX, "multimask": False},
    {"name": "p5_point_bear", "image": "picture5", "points": [[1447, 853, 1]],
     "multimask": False},
    {"name": "p5_box_posneg_cubs", "image": "picture5", "box": CUBS_BOX,
     "points": [[827, 1034, 1], [1447, 853, 0]], "multimask": False},
]


def image_path(stem: str) -> Path:
    return FIXTURES / "images" / f"{stem}.jpg"


def relative(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def save_npy(path: Path, array: np.ndarray, dtype: str) -> str:
    np.save(path, np.ascontiguousarray(array.astype(dtype)))
    return relative(path)


def encode_mask(mask: np.ndarray, label: str) -> tuple[dict, int, list[float]]:
    """COCO compressed RLE as pycocotools writes it, checked by decoding it again."""
    pixels = mask.astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(pixels))
    check(np.array_equal(mask_utils.decode(rle), pixels), f"{label}: RLE does not round-trip")
    area = int(mask_utils.area(rle))
    check(area == int(pixels.sum()), f"{label}: RLE area {area} != {int(pixels.sum())}")
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    ys, xs = np.nonzero(pixels)
    expected_bbox = [float(xs.min()), float(ys.min()),
                     float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    check(bbox == expected_bbox, f"{label}: toBbox {bbox} != {expected_bbox}")
    encoded = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return encoded, area, bbox


def run_case(predictor: SamPredictor, case: dict, width: int, height: int,
             logits_by_case: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    name = case["name"]
    points = case.get("points", [])
    box = case.get("box")
    kwargs: dict = {"multimask_output": case["multimask"]}
    if points:
        kwargs["point_coords"] = np.array([[x, y] for x, y, _ in points], dtype=np.float64)
        kwargs["point_labels"] = np.array([label for _, _, label in points], dtype=np.int64)
    if box is not None:
        kwargs["box"] = np.array(box, dtype=np.float64)
    mask_input_file = None
    if "mask_from" in case:
        earlier_scores, earlier_logits = logits_by_case[case["mask_from"]]
        best = earlier_logits[int(np.argmax(earlier_scores))][None, :, :]  # (1, 256, 256)
        mask_input_file = save_npy(OUT / f"{name}_mask_input.npy", best, "<f4")
        kwargs["mask_input"] = best

    masks, scores, logits = predictor.predict(**kwargs)
    expected_count = 3 if case["multimask"] else 1
    check(masks.shape == (expected_count, height, width), f"{name}: masks {masks.shape}")
    check(logits.shape == (expected_count, 256, 256), f"{name}: logits {logits.shape}")
    check(
        np.array_equal(masks, logits_to_masks_check(predictor, logits)),
        f"{name}: masks are not the post-processed logits > 0",
    )
    logits_by_case[name] = (scores, logits)
    # Stability score as the automatic mask generator computes it: on the logits at original
    # size (return_logits=True), threshold 0, offset 1.0.
    full_logits, _, _ = predictor.predict(**kwargs, return_logits=True)
    stability = calculate_stability_score(torch.from_numpy(full_logits), 0.0, 1.0).tolist()

    rles, areas, bboxes, coverage = [], [], [], []
    for index, mask in enumerate(masks):
        fraction = float(mask.mean())
        check(
            MIN_COVERAGE <= fraction <= MAX_COVERAGE,
            f"{name} mask {index} covers {fraction:.4f} of the image "
            f"(must be in [{MIN_COVERAGE}, {MAX_COVERAGE}])",
        )
        rle, area, bbox = encode_mask(mask, f"{name} mask {index}")
        rles.append(rle)
        areas.append(area)
        bboxes.append(bbox)
        coverage.append(fraction)
    print(f"  {name}: scores {np.round(scores, 4).tolist()} coverage "
          f"{[round(c, 3) for c in coverage]}")
    return {
        "name": name,
        "image": relative(image_path(case["image"])),
        "width": width,
        "height": height,
        "points": [[float(x), float(y), int(label)] for x, y, label in points],
        "box": [float(v) for v in box] if box is not None else None,
        "mask_input": mask_input_file,
        "multimask": case["multimask"],
        "scores": [float(s) for s in scores],
        "logits": save_npy(OUT / f"{name}_logits.npy", logits, "<f4"),
        "masks": rles,
        "areas": areas,
        "bboxes": bboxes,
        "coverage": coverage,
        "stability": [float(v) for v in stability],
    }


def logits_to_masks_check(predictor: SamPredictor, logits: np.ndarray) -> np.ndarray:
    """Post-processes the returned low-res logits again, to show the masks derive from them."""
    with torch.no_grad():
        upscaled = predictor.model.postprocess_masks(
            torch.from_numpy(logits)[None], predictor.input_size, predictor.original_size
        )
    return (upscaled[0] > predictor.model.mask_threshold).numpy()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def versions() -> dict:
    names = ["torch", "torchvision", "timm", "pillow", "numpy", "pycocotools",
             "mobilesam-mirror"]
    result = {"python": platform.python_version()}
    for name in names:
        result[name] = importlib.metadata.version(name)
    return result


def main() -> None:
    if not (FIXTURES / "images").is_dir():
        raise SystemExit("run from the repository root (Tests/Fixtures/images not found)")
    # The global RNG only feeds the default init that randomize() overwrites; a different seed
    # from the weight generator's keeps the two streams apart.
    torch.manual_seed(SEED + 1)
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.suffix in (".npy", ".pt", ".json"):
            old.unlink()

    model = build_sam_vit_t()
    randomize(model, SEED)
    small_keys = save_checkpoints(model)
    del model
    model = reload_model()
    predictor = SamPredictor(model)

    stems = sorted({case["image"] for case in CASES})
    results, embeddings_json, resized_json = [], [], []
    features: dict[str, np.ndarray] = {}
    logits_by_case: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for stem in stems:
        path = image_path(stem)
        image = np.array(Image.open(path).convert("RGB"))  # HWC uint8
        height, width = image.shape[:2]
        predictor.set_image(image)
        embedding = predictor.features.detach().numpy()
        check(embedding.shape == (1, 256, 64, 64), f"{stem}: embedding {embedding.shape}")
        features[stem] = embedding
        print(f"{stem} {width}x{height}: embedding std {embedding.std():.4f}")
        if stem in EMBEDDING_IMAGES:
            file = save_npy(OUT / f"embedding_{stem}.npy", embedding, "<f4")
            embeddings_json.append({"image": relative(path), "file": file})
        if stem in RESIZED_IMAGES:
            resized = predictor.transform.apply_image(image)
            check(resized.dtype == np.uint8 and max(resized.shape[:2]) == 1024,
                  f"{stem}: resized {resized.dtype} {resized.shape}")
            file = save_npy(OUT / f"resized_{stem}.npy", resized, "|u1")
            resized_json.append({"image": relative(path), "file": file})
        for case in CASES:
            if case["image"] == stem:
                results.append(run_case(predictor, case, width, height, logits_by_case))

    # The stored embedding must differ from every other photo's. Pairs of padded photos
    # (picture3/picture5: the bottom third of both inputs is zero padding) are printed only.
    correlations = {}
    for i, a in enumerate(stems):
        for b in stems[i + 1:]:
            value = correlation(features[a], features[b])
            correlations[f"{a}/{b}"] = round(value, 4)
            checked = a in EMBEDDING_IMAGES or b in EMBEDDING_IMAGES
            print(f"embedding correlation {a} / {b}: {value:.4f}{' (checked)' if checked else ''}")
            if checked:
                check(value < MAX_EMBEDDING_CORRELATION,
                      f"embeddings of {a} and {b} correlate {value:.4f} >= "
                      f"{MAX_EMBEDDING_CORRELATION}")

    order = {case["name"]: index for index, case in enumerate(CASES)}
    results.sort(key=lambda r: order[r["name"]])
    document = {
        "generator": "Scripts/make_fixtures.py",
        "versions": versions(),
        "seed": SEED,
        "embedding_correlations": correlations,
        "checkpoint": relative(OUT / CHECKPOINT_NAME),
        "small_float32": {"file": relative(OUT / SMALL_NAME), "keys": small_keys},
        "embeddings": embeddings_json,
        "resized": resized_json,
        "cases": results,
    }
    with open(OUT / "cases.json", "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")

    total = 0
    for file in sorted(OUT.iterdir()):
        size = file.stat().st_size
        check(size <= FILE_LIMIT_BYTES, f"{file} is {size} bytes (> {FILE_LIMIT_BYTES})")
        total += size
    check(total <= SIZE_BUDGET_BYTES, f"reference fixtures total {total} bytes "
          f"(> {SIZE_BUDGET_BYTES})")
    print(f"{len(results)} cases; Tests/Fixtures/reference total {total / 1e6:.2f} MB "
          f"({total} bytes)")


if __name__ == "__main__":
    sys.exit(main())
