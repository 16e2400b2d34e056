#!/usr/bin/env python3
"""Time the reference MobileSAM (PyTorch eager and ONNX Runtime) on one image, on the CPU.

Expects the venv of Scripts/requirements.txt (torch, mobilesam-mirror, onnx, onnxruntime, ...).
Run from the repository root:

    .venv-ref/bin/python Scripts/bench_reference.py [--image PATH] [--checkpoint PATH]

Defaults: Tests/Fixtures/images/picture3.jpg and the random test checkpoint
Tests/Fixtures/reference/mobile_sam_random.pt (the official mobile_sam.pt has the same shapes,
so the timings are the same). Prints one JSON object with medians in milliseconds:
- torch_set_image_ms: SamPredictor.set_image (Pillow resize, normalize, pad, encoder);
- torch_image_encoder_ms: the image encoder alone on the preprocessed 1x3x1024x1024 input;
- torch_predict_box_ms: SamPredictor.predict with one box, multimask off, full-size masks;
- ort_encoder_ms: the image encoder exported with torch.onnx.export(dynamo=False);
- ort_decoder_box_ms: prompt encoder + mask decoder + upsampling to the original size, exported
  with mobile_sam.utils.onnx.SamOnnxModel as the upstream export script does
  (return_single_mask), for the same box, masks thresholded at 0.
  ort_decoder_box_ms is at --threads threads; ort_decoder_box_ms_by_threads has every count
  from 1 to --threads and ort_decoder_best_ms the fastest (the targets compare with that).
Each is the median of --runs (encoder) or --decoder-runs runs after --warmup runs, with
--threads threads (torch.set_num_threads; ORT intra-op threads, one inter-op thread). The .onnx
files live in a temporary directory that is deleted at the end; never commit them.

--resize WxH first resizes the image (Pillow, bilinear) into a temporary JPEG and times that:
the decoder's cost depends on the original size (masks are upsampled to it).

With --sambatch PATH, `sambatch bench` runs on the same image, box, threads and runs, once before
the reference and once after (its figures are the mean of the two medians, so a machine that
slows down during the run does not favour either side), and the ratios are added. --table then
prints one Markdown table (ours, the peers', the ratios, the targets of issue 9) instead of the
JSON, which --json PATH still writes. `make bench` runs it that way.

--rounds N (with --sambatch) instead alternates `sambatch bench` with ONNX Runtime's encoder and
decoder N times, after PyTorch: on a shared machine both sides' times move by 10-40% from minute
to minute (ORT's decoder between 25 and 42 ms within an hour), so a ratio is taken within each
round, from times measured a few seconds apart, and the table shows the median over the rounds
(with their range). The figures are then medians over the rounds too.
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
from PIL import Image  # noqa: E402

from mobile_sam import SamPredictor, build_sam_vit_t  # noqa: E402
from mobile_sam.utils.onnx import SamOnnxModel  # noqa: E402

DEFAULT_IMAGE = "Tests/Fixtures/images/picture3.jpg"
DEFAULT_CHECKPOINT = "Tests/Fixtures/reference/mobile_sam_random.pt"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--box", default=None,
                        help="X0,Y0,X1,Y1 in original pixels (default: the middle half)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed encoder runs")
    parser.add_argument("--decoder-runs", type=int, default=20, help="timed decoder runs")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--everything", action="store_true",
                        help="time the automatic mask generator instead (see bench_everything)")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--pred-iou-thresh", type=float, default=0.88)
    parser.add_argument("--stability-score-thresh", type=float, default=0.95)
    parser.add_argument("--resize", default=None, metavar="WxH",
                        help="time a copy of the image resized to W x H (e.g. 1920x1080)")
    parser.add_argument("--table", action="store_true",
                        help="print a Markdown table instead of the JSON (needs --sambatch)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the JSON here")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --sambatch: alternate `sambatch bench` and ONNX Runtime's encoder "
                             "and decoder this many times; figures and ratios are the medians over "
                             "the rounds (each ratio within its own round)")
    parser.add_argument("--sambatch", default=None,
                        help="path of a sambatch binary: also run `sambatch bench` with the same "
                             "image, box, threads and runs, and print the ratios")
    parser.add_argument("--job", type=int, default=0, metavar="N",
                        help="instead: N distinct images through ONNX Runtime's and PyTorch's "
                             "pipelines and `sambatch run` (needs --sambatch; Scripts/bench_job.py)")
    parser.add_argument("--job-boxes", type=int, default=8, help="boxes per image with --job")
    parser.add_argument("--job-seed", type=int, default=0,
                        help="make_bench_job.py's seed: another seed gives images and boxes not seen before")
    parser.add_argument("--job-efficiency", default=None, metavar="K,K,...",
                        help="instead: `sambatch run` against `sambatch bench`'s parts for jobs of "
                             "--job images (default 16) with K boxes each (needs --sambatch)")
    return parser.parse_args()


def load_model(checkpoint: str) -> torch.nn.Module:
    """A fresh vit_t, loaded, and .eval() AFTER loading so TinyViT's cached `ab` is the loaded
    attention biases (build_sam_vit_t(checkpoint=...) calls .eval() before loading)."""
    model = build_sam_vit_t()
    model.load_state_dict(torch.load(checkpoint))
    model.eval()
    return model


def median_ms(function, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return round(statistics.median(times), 2)


def session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class ImageEncoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image)


def export_encoder(model: torch.nn.Module, path: Path, opset: int) -> None:
    dummy = torch.randn(1, 3, 1024, 1024)
    torch.onnx.export(ImageEncoder(model), (dummy,), str(path), dynamo=False,
                      opset_version=opset, do_constant_folding=True,
                      input_names=["image"], output_names=["image_embeddings"])


def export_decoder(model: torch.nn.Module, path: Path, opset: int) -> SamOnnxModel:
    # As scripts/export_onnx_model.py upstream: SamOnnxModel (prompt encoding, mask decoder,
    # upsampling to the original size), a dynamic number of points.
    decoder = SamOnnxModel(model=model, return_single_mask=True)
    dummy = {
        "image_embeddings": torch.randn(1, 256, 64, 64),
        "point_coords": torch.randint(0, 1024, (1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(0, 4, (1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, 256, 256),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),
    }
    torch.onnx.export(decoder, tuple(dummy.values()), str(path), dynamo=False,
                      opset_version=opset, do_constant_folding=True,
                      input_names=list(dummy.keys()),
                      output_names=["masks", "iou_predictions", "low_res_masks"],
                      dynamic_axes={"point_coords": {1: "num_points"},
                                    "point_labels": {1: "num_points"}})
    return decoder


def bench_everything(args: argparse.Namespace) -> None:
    """--everything: SamAutomaticMaskGenerator.generate (output_mode coco_rle) once, then
    `sambatch predict --everything` with the same parameters if --sambatch is given, in this
    process's run: wall-clock seconds, mask counts and peak RSS of each (the reference's is this
    process's, model and image included; ours from /usr/bin/time). One run each: the reference takes
    minutes at the default 32x32 grid."""
    import resource
    from mobile_sam import SamAutomaticMaskGenerator

    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    image = np.array(Image.open(args.image).convert("RGB"))
    parameters = {"points_per_side": args.points_per_side, "pred_iou_thresh": args.pred_iou_thresh,
                  "stability_score_thresh": args.stability_score_thresh}
    result: dict = {"image": args.image, "width": image.shape[1], "height": image.shape[0],
                    "checkpoint": args.checkpoint, "threads": args.threads, **parameters,
                    "load_average_1min_before": round(os.getloadavg()[0], 2)}
    generator = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **parameters)
    start = time.perf_counter()
    masks = generator.generate(image)
    result["torch_generate_s"] = round(time.perf_counter() - start, 2)
    result["torch_masks"] = len(masks)
    result["torch_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.sambatch:
        command = [args.sambatch, "predict", "--everything", "--model", args.checkpoint,
                   "--image", args.image]
        for name, value in parameters.items():
            command += ["--" + name.replace("_", "-"), str(value)]
        # `sambatch predict` computes on every core (os.cpu_count()). Its peak RSS comes from
        # GNU time: RUSAGE_CHILDREN would count this process's pages, inherited by the fork.
        result["sambatch_threads"] = os.cpu_count()
        start = time.perf_counter()
        output = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb %M"] + command, check=True,
                                capture_output=True, text=True)
        result["sambatch_s"] = round(time.perf_counter() - start, 2)
        ours = json.loads(output.stdout)
        result["sambatch_masks"] = len(ours["masks"])
        result["sambatch_timings_ms"] = ours["timings_ms"]
        peak = [line for line in output.stderr.splitlines() if line.startswith("peak_rss_kb ")]
        result["sambatch_peak_rss_mb"] = round(int(peak[-1].split()[1]) / 1024) if peak else None
        result["time_ratio_sambatch_vs_torch"] = round(result["sambatch_s"] / result["torch_generate_s"], 3)
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))
# Figures of `sambatch bench` carried into the result (as sambatch_<name>).
OUR_FIGURES = ["embed_ms", "predict_box_ms", "box_rle_ms", "boxes32_rle_ms", "marginal_box_ms",
               "encoder_gflops", "sgemm_gflops"]


def run_sambatch(args: argparse.Namespace, image_path: str, box: np.ndarray) -> dict:
    command = [args.sambatch, "bench", "--model", args.checkpoint, "--image", image_path,
               "--box", ",".join(str(v) for v in box.tolist()), "--threads", str(args.threads),
               "--runs", str(args.runs), "--decoder-runs", str(args.decoder_runs),
               "--warmup", str(args.warmup)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def add_ratios(result: dict) -> None:
    """Ours / theirs: below 1 means sambatch takes less time."""
    def ratio(ours: str, theirs: str) -> None:
        if ours in result and theirs in result and result[theirs] > 0:
            result[f"ratio_{ours}_to_{theirs}"] = round(result[ours] / result[theirs], 3)

    ratio("sambatch_embed_ms", "ort_encoder_ms")
    ratio("sambatch_embed_ms", "torch_set_image_ms")
    ratio("sambatch_box_rle_ms", "ort_decoder_best_ms")
    ratio("sambatch_box_rle_ms", "torch_predict_box_ms")
    ratio("sambatch_marginal_box_ms", "ort_decoder_best_ms")


def markdown_table(r: dict) -> str:
    def cell(key: str, digits: int = 0) -> str:
        value = r.get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    def ratio(key: str) -> str:
        if key not in r:
            return "-"
        if "rounds" not in r:
            return f"{r[key]:.2f}x"
        values = [one[key] for one in r["rounds"] if key in one]
        return f"{r[key]:.2f}x ({min(values):.2f}-{max(values):.2f})"

    threads = r["threads"]
    best = min(r["ort_decoder_box_ms_by_threads"], key=r["ort_decoder_box_ms_by_threads"].get)
    lines = [
        f"image {r['image']} ({r['width']}x{r['height']}), {threads} threads, medians in ms, "
        f"load average {r['load_average_1min_before']} -> {r['load_average_1min_after']}",
        "",
        "| figure | sambatch | PyTorch | ONNX Runtime | sambatch / ORT | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| encode (ours: resize + normalize + encoder; PyTorch: set_image; ORT: encoder) "
        f"| {cell('sambatch_embed_ms')} | {cell('torch_set_image_ms')} | {cell('ort_encoder_ms')} "
        f"| {ratio('ratio_sambatch_embed_ms_to_ort_encoder_ms')} | <= 0.70x |",
        f"| one box: decode + masks at original size + RLE (ORT: decoder with upsampling at its "
        f"best thread count, {best} of 1..{threads}) "
        f"| {cell('sambatch_box_rle_ms', 1)} | {cell('torch_predict_box_ms', 1)} "
        f"| {cell('ort_decoder_best_ms', 1)} "
        f"| {ratio('ratio_sambatch_box_rle_ms_to_ort_decoder_best_ms')} | <= 0.30x |",
        f"| marginal box, (32 boxes - 1 box) / 31, RLE included | {cell('sambatch_marginal_box_ms', 1)} "
        f"| - | {cell('ort_decoder_best_ms', 1)} "
        f"| {ratio('ratio_sambatch_marginal_box_ms_to_ort_decoder_best_ms')} | <= 0.20x |",
        f"| encoder GFLOP/s (77.5 GFLOP per image) | {cell('sambatch_encoder_gflops', 1)} | - | - | - | - |",
        f"| OpenBLAS sgemm GFLOP/s in the same process ({r.get('sambatch_blas_core') or '?'}, "
        f"4096x1280x320) | {cell('sambatch_sgemm_gflops', 1)} | - | - | - | - |",
        "",
        "sambatch figures are the mean of two runs of `sambatch bench`, before and after the peers."
        if "rounds" not in r else
        f"{len(r['rounds'])} rounds of `sambatch bench` then ONNX Runtime: figures are medians over the "
        "rounds, ratios the median of each round's own ratio (range in brackets); PyTorch once.",
    ]
    return "\n".join(lines)


def resized_copy(path: str, size: str, directory: str) -> str:
    width, height = (int(v) for v in size.lower().split("x"))
    out = str(Path(directory) / f"resized_{width}x{height}.jpg")
    Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR).save(out, quality=95)
    return out


def main() -> None:
    args = parse_arguments()
    if args.everything:
        return bench_everything(args)
    if args.table and not args.sambatch:
        raise SystemExit("--table needs --sambatch PATH (the table sets both engines side by side)")
    with tempfile.TemporaryDirectory(prefix="sambatch-bench-") as directory:
        image_path = resized_copy(args.image, args.resize, directory) if args.resize else args.image
        measure(args, image_path)


def measure(args: argparse.Namespace, image_path: str) -> None:
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    predictor = SamPredictor(model)
    image = np.array(Image.open(image_path).convert("RGB"))
    height, width = image.shape[:2]
    if args.box:
        box = np.array([float(v) for v in args.box.split(",")])
    else:
        box = np.array([width * 0.25, height * 0.25, width * 0.75, height * 0.75])

    rounds = max(1, args.rounds) if args.sambatch else 1
    before = run_sambatch(args, image_path, box) if args.sambatch and rounds == 1 else {}
    result: dict = {
        "image": args.image + (f" resized to {args.resize}" if args.resize else ""),
        "width": width,
        "height": height,
        "checkpoint": args.checkpoint,
        "threads": args.threads,
        "runs": args.runs,
        "decoder_runs": args.decoder_runs,
        "box": box.tolist(),
        # Other processes on a shared machine inflate every number: note the load.
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }

    # PyTorch eager.
    result["torch_set_image_ms"] = median_ms(lambda: predictor.set_image(image), args.runs,
                                             args.warmup)
    resized = predictor.transform.apply_image(image)
    tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None, :, :, :]
    preprocessed = model.preprocess(tensor)

    def encode() -> None:
        with torch.no_grad():
            model.image_encoder(preprocessed)

    result["torch_image_encoder_ms"] = median_ms(encode, args.runs, args.warmup)
    result["torch_predict_box_ms"] = median_ms(
        lambda: predictor.predict(box=box, multimask_output=False), args.decoder_runs,
        args.warmup)
    features = predictor.features.numpy()

    # ONNX Runtime.
    with tempfile.TemporaryDirectory(prefix="sambatch-onnx-") as directory:
        encoder_path = Path(directory) / "encoder.onnx"
        decoder_path = Path(directory) / "decoder.onnx"
        export_encoder(model, encoder_path, args.opset)
        decoder_module = export_decoder(model, decoder_path, args.opset)
        encoder = session(encoder_path, args.threads)
        decoder = session(decoder_path, args.threads)

        encoder_inputs = {"image": preprocessed.numpy()}
        ort_features = encoder.run(None, encoder_inputs)[0]
        result["ort_encoder_max_abs_diff_vs_torch"] = float(np.abs(ort_features - features).max())

        # A box is two corner points labelled 2 and 3, no padding point (as PromptEncoder).
        corners = predictor.transform.apply_coords(box.reshape(2, 2), (height, width))
        decoder_inputs = {
            "image_embeddings": features,
            "point_coords": corners[None, :, :].astype(np.float32),
            "point_labels": np.array([[2, 3]], dtype=np.float32),
            "mask_input": np.zeros((1, 1, 256, 256), dtype=np.float32),
            "has_mask_input": np.zeros(1, dtype=np.float32),
            "orig_im_size": np.array([height, width], dtype=np.float32),
        }

        decoders = {args.threads: decoder}
        for threads in range(1, args.threads):
            decoders[threads] = session(decoder_path, threads)

        def measure_ort() -> dict:
            times = {"ort_encoder_ms": median_ms(lambda: encoder.run(None, encoder_inputs),
                                                 args.runs, args.warmup)}
            by_threads = {
                threads: median_ms(lambda: decoders[threads].run(None, decoder_inputs)[0] > 0.0,
                                   args.decoder_runs, args.warmup)
                for threads in sorted(decoders)}
            times["ort_decoder_box_ms"] = by_threads[args.threads]
            times["ort_decoder_box_ms_by_threads"] = {str(k): v for k, v in by_threads.items()}
            times["ort_decoder_best_ms"] = min(by_threads.values())
            return times

        if rounds == 1:
            result.update(measure_ort())
        else:
            # Ours, then theirs, a few seconds apart, `rounds` times.
            detail = []
            for _ in range(rounds):
                ours = run_sambatch(args, image_path, box)
                theirs = measure_ort()
                one = {"sambatch_" + key: ours[key] for key in OUR_FIGURES if key in ours}
                one.update(theirs)
                add_ratios(one)
                one["sambatch_blas_core"] = ours.get("blas_core")
                detail.append(one)
            result["rounds"] = detail
            for key, value in detail[0].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    result[key] = round(statistics.median(one[key] for one in detail), 3)
            result["ort_decoder_box_ms_by_threads"] = {
                threads: round(statistics.median(one["ort_decoder_box_ms_by_threads"][threads]
                                                 for one in detail), 2)
                for threads in detail[0]["ort_decoder_box_ms_by_threads"]}
            result["sambatch_blas_core"] = detail[-1]["sambatch_blas_core"]
            for ours_key, torch_key in [("sambatch_embed_ms", "torch_set_image_ms"),
                                        ("sambatch_box_rle_ms", "torch_predict_box_ms")]:
                result[f"ratio_{ours_key}_to_{torch_key}"] = round(result[ours_key] / result[torch_key], 3)
        ort_low_res = decoder.run(None, decoder_inputs)[2]
        with torch.no_grad():
            torch_low_res = decoder_module(
                **{k: torch.from_numpy(v) for k, v in decoder_inputs.items()})[2].numpy()
        result["ort_decoder_low_res_max_abs_diff_vs_torch"] = float(
            np.abs(ort_low_res - torch_low_res).max())

    after = run_sambatch(args, image_path, box) if args.sambatch and rounds == 1 else {}
    if args.sambatch and rounds == 1:
        ours = {key: round((before[key] + after[key]) / 2, 2) for key in OUR_FIGURES
                if key in before and key in after}
        result.update({"sambatch_" + key: value for key, value in ours.items()})
        result["sambatch_blas_core"] = after.get("blas_core")
        add_ratios(result)

    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    result["versions"] = {name: importlib.metadata.version(name) for name in
                          ["torch", "onnxruntime", "onnx", "mobilesam-mirror"]}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.table and args.sambatch:
        print(markdown_table(result))
    else:
        print(json.dumps(result, indent=1))


def main_job(args: argparse.Namespace) -> None:
    import bench_job  # noqa: E402 (Scripts/bench_job.py, beside this file)

    if not args.sambatch:
        raise SystemExit("--job and --job-efficiency need --sambatch PATH")
    if args.job_efficiency:
        print(json.dumps(bench_job.job_efficiency(args), indent=1))
    else:
        print(json.dumps(bench_job.job_comparison(args, load_model, session, export_encoder,
                                                  export_decoder), indent=1))


if __name__ == "__main__":
    arguments = parse_arguments()
    main_job(arguments) if arguments.job or arguments.job_efficiency else main()
