#!/usr/bin/env python3
"""Time SAM's ViT image encoder (vit_b/l/h) in PyTorch eager, ONNX Runtime and sambatch, in one run.

The ViT counterpart of Scripts/bench_reference.py (which times MobileSAM), kept apart so that
each stays small. Run from the repository root in the venv of Scripts/requirements.txt:

    .venv-ref/bin/python Scripts/make_vit_checkpoints.py --model vit_b --out /tmp/sam-vit --no-reference
    .venv-ref/bin/python Scripts/bench_vit.py --checkpoint /tmp/sam-vit/vit_b/sam_vit_b_random.pth \\
        --sambatch .build/release/sambatch

Random weights cost what the official ones cost (same shapes). Prints one JSON object with
medians in milliseconds after --warmup runs, --threads threads each (torch.set_num_threads; ORT
intra-op threads, one inter-op thread):
- torch_image_encoder_ms: the encoder alone on a preprocessed 1x3x1024x1024 input;
- ort_encoder_ms: the same encoder exported with torch.onnx.export(dynamo=False);
- sambatch_embed_ms (with --sambatch): `sambatch bench`'s embed (resize + encoder + the
  decoder's per-image work), and the ratios (< 1: sambatch takes less time).
The .onnx files live in a temporary directory deleted at the end.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

from segment_anything import sam_model_registry  # noqa: E402

DEFAULT_IMAGE = "Tests/Fixtures/images/picture3.jpg"


def median_ms(function, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return round(statistics.median(times), 1)


def kind_of(state: dict) -> str:
    """vit_b / vit_l / vit_h from the encoder's width, as sambatch reads it."""
    width = state["image_encoder.patch_embed.proj.weight"].shape[0]
    kinds = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
    if width not in kinds:
        raise SystemExit(f"encoder width {width}: not vit_b, vit_l or vit_h")
    return kinds[width]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--sambatch", default=None, help="path of a sambatch binary")
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    state = torch.load(args.checkpoint)
    kind = kind_of(state)
    model = sam_model_registry[kind]()
    model.load_state_dict(state)
    model.eval()
    del state
    encoder = model.image_encoder
    dummy = torch.randn(1, 3, 1024, 1024)
    result: dict = {
        "checkpoint": args.checkpoint, "kind": kind, "threads": args.threads, "runs": args.runs,
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }
    if not args.skip_torch:
        def encode() -> None:
            with torch.no_grad():
                encoder(dummy)
        result["torch_image_encoder_ms"] = median_ms(encode, args.runs, args.warmup)

    with tempfile.TemporaryDirectory(prefix="sambatch-onnx-") as directory:
        path = Path(directory) / "encoder.onnx"
        with torch.no_grad():
            torch.onnx.export(encoder, (dummy,), str(path), dynamo=False, opset_version=args.opset,
                              do_constant_folding=True, input_names=["image"],
                              output_names=["image_embeddings"])
        del model, encoder
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
        inputs = {"image": dummy.numpy()}
        result["ort_encoder_ms"] = median_ms(lambda: session.run(None, inputs), args.runs,
                                             args.warmup)
        del session

    if args.sambatch:
        command = [args.sambatch, "bench", "--model", args.checkpoint, "--image", args.image,
                   "--threads", str(args.threads), "--runs", str(args.runs), "--decoder-runs", "3",
                   "--warmup", str(args.warmup)]
        ours = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        result["sambatch_embed_ms"] = ours["embed_ms"]
        result["sambatch_model_kind"] = ours.get("model_kind")
        result["ratio_sambatch_embed_to_ort_encoder"] = round(ours["embed_ms"] / result["ort_encoder_ms"], 3)
        if "torch_image_encoder_ms" in result:
            result["ratio_sambatch_embed_to_torch_encoder"] = round(
                ours["embed_ms"] / result["torch_image_encoder_ms"], 3)
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    result["versions"] = {name: importlib.metadata.version(name)
                          for name in ["torch", "onnxruntime", "segment-anything"]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    np.random.seed(0)
    main()
