"""Whole-job comparisons for Scripts/bench_reference.py (--job, --job-efficiency).

--job N: the same N distinct images (Scripts/make_bench_job.py, --job-boxes boxes each, multimask
off) through three pipelines with the same threads, in one run:
- ONNX Runtime: Pillow decode, the reference's resize and normalization in numpy, the encoder, then
  for each box the upstream decoder export (upsampling to the original size), mask > 0, RLE with
  pycocotools (area, bbox), and one SQLite transaction per image;
- PyTorch: SamPredictor.set_image, SamPredictor.predict per box, the same RLE and SQLite;
- `sambatch run` on the job, twice (before and after the peers; the mean), timed as a whole
  process (model loading and planning included).
Prints images/s and sambatch's ratio to each.

--job-efficiency 1,8,32: for each box count, a job of N images of one size (1920x1080) with that
many boxes each, `sambatch bench --boxes K` on one of its images, then `sambatch run`: the job's
images/s against the rate its parts allow, 1000 / (read + embed + K x (box + RLE) + write)
(`efficiency`), and against 1000 / (read + embed + one box with RLE + (K - 1) x marginal box +
write) (`efficiency_together`): a job decodes an image's boxes together, side by side.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from mobile_sam import SamPredictor
from mobile_sam.utils.transforms import ResizeLongestSide

HERE = Path(__file__).resolve().parent


def make_job(folder: str, args, count: int, boxes: int, size: str | None = None) -> list:
    """Builds the job; returns [(image path, [xyxy boxes])] in manifest order."""
    command = [sys.executable, str(HERE / "make_bench_job.py"), folder, "--count", str(count),
               "--boxes", str(boxes), "--model", os.path.abspath(args.checkpoint),
               "--workers", str(args.threads), "--seed", str(getattr(args, "job_seed", 0))]
    if size:
        command += ["--size", size]
    subprocess.run(command, check=True, capture_output=True)
    manifest = json.load(open(Path(folder) / "instances.json"))
    by_image = {im["id"]: [] for im in manifest["images"]}
    for a in manifest["annotations"]:
        x, y, w, h = a["bbox"]
        by_image[a["image_id"]].append([x, y, x + w, y + h])
    return [(str(Path(folder) / "images" / im["file_name"]), np.array(by_image[im["id"]], dtype=np.float64))
            for im in manifest["images"]]


def open_database(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE masks (image TEXT, prompt INTEGER, score REAL, area INTEGER, "
               "bbox TEXT, rle TEXT)")
    return db


def store(db: sqlite3.Connection, path: str, masks: list) -> None:
    """masks: [(prompt index, score, HxW bool mask)] of one image, RLE-encoded and committed at once."""
    rows = []
    for prompt, score, mask in masks:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rows.append((path, prompt, float(score), int(mask_utils.area(rle)),
                     json.dumps(mask_utils.toBbox(rle).tolist()), rle["counts"].decode()))
    with db:
        db.executemany("INSERT INTO masks VALUES (?, ?, ?, ?, ?, ?)", rows)


def ort_pipeline(images: list, encoder, decoder, model, db: sqlite3.Connection) -> None:
    transform = ResizeLongestSide(1024)
    mean = model.pixel_mean.numpy().reshape(1, 1, 3)
    std = model.pixel_std.numpy().reshape(1, 1, 3)
    for path, boxes in images:
        image = np.array(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        resized = (transform.apply_image(image).astype(np.float32) - mean) / std
        padded = np.zeros((1024, 1024, 3), dtype=np.float32)
        padded[:resized.shape[0], :resized.shape[1]] = resized
        features = encoder.run(None, {"image": padded.transpose(2, 0, 1)[None].copy()})[0]
        masks = []
        for index, box in enumerate(boxes):
            corners = transform.apply_coords(box.reshape(2, 2), (height, width))
            outputs = decoder.run(None, {
                "image_embeddings": features,
                "point_coords": corners[None].astype(np.float32),
                "point_labels": np.array([[2, 3]], dtype=np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), dtype=np.float32),
                "has_mask_input": np.zeros(1, dtype=np.float32),
                "orig_im_size": np.array([height, width], dtype=np.float32),
            })
            masks.append((index, outputs[1][0, 0], outputs[0][0, 0] > 0.0))
        store(db, path, masks)


def torch_pipeline(images: list, predictor: SamPredictor, db: sqlite3.Connection) -> None:
    for path, boxes in images:
        predictor.set_image(np.array(Image.open(path).convert("RGB")))
        masks = []
        for index, box in enumerate(boxes):
            result, scores, _ = predictor.predict(box=box, multimask_output=False)
            masks.append((index, scores[0], result[0]))
        store(db, path, masks)


def run_sambatch_job(sambatch: str, folder: str) -> dict:
    """Runs the job from scratch; wall seconds of the process, and of its pipeline (the run's row)."""
    for suffix in ["", "-wal", "-shm"]:
        try:
            os.remove(Path(folder) / f"results.db{suffix}")
        except FileNotFoundError:
            pass
    start = time.perf_counter()
    subprocess.run([sambatch, "run", str(Path(folder) / "job.yaml")], check=True, capture_output=True)
    wall = time.perf_counter() - start
    db = sqlite3.connect(str(Path(folder) / "results.db"))
    started, ended, done = db.execute("SELECT started_at, ended_at, images_done FROM runs").fetchone()
    db.close()
    pipeline = (datetime.fromisoformat(ended.replace("Z", "+00:00"))
                - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds()
    return {"wall_s": wall, "pipeline_s": pipeline, "images": done}


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def job_comparison(args, load_model, session, export_encoder, export_decoder) -> dict:
    """--job: ONNX Runtime and PyTorch pipelines against `sambatch run` on the same images."""
    torch.set_num_threads(args.threads)
    result: dict = {"images": args.job, "boxes_per_image": args.job_boxes, "threads": args.threads,
                    "load_average_1min_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="sambatch-job-") as folder:
        images = make_job(folder, args, args.job, args.job_boxes)
        model = load_model(args.checkpoint)
        predictor = SamPredictor(model)
        encoder_path, decoder_path = Path(folder) / "encoder.onnx", Path(folder) / "decoder.onnx"
        export_encoder(model, encoder_path, args.opset)
        export_decoder(model, decoder_path, args.opset)
        encoder, decoder = session(encoder_path, args.threads), session(decoder_path, args.threads)
        first = run_sambatch_job(args.sambatch, folder)
        # One untimed image each first, as sambatch's own warm-up is inside its timed run.
        ort_pipeline(images[:1], encoder, decoder, model, open_database(":memory:"))
        torch_pipeline(images[:1], predictor, open_database(":memory:"))
        ort = timed(lambda: ort_pipeline(images, encoder, decoder, model,
                                         open_database(str(Path(folder) / "ort.db"))))
        pytorch = timed(lambda: torch_pipeline(images, predictor,
                                               open_database(str(Path(folder) / "torch.db"))))
        second = run_sambatch_job(args.sambatch, folder)
    ours = (first["wall_s"] + second["wall_s"]) / 2
    result.update({
        "sambatch_images_per_s": round(args.job / ours, 3),
        "sambatch_pipeline_images_per_s": round(
            args.job / ((first["pipeline_s"] + second["pipeline_s"]) / 2), 3),
        "ort_images_per_s": round(args.job / ort, 3),
        "torch_images_per_s": round(args.job / pytorch, 3),
        "sambatch_runs_s": [round(first["wall_s"], 2), round(second["wall_s"], 2)],
    })
    result["ratio_sambatch_to_ort"] = round(result["sambatch_images_per_s"] / result["ort_images_per_s"], 2)
    result["ratio_sambatch_to_torch"] = round(result["sambatch_images_per_s"] / result["torch_images_per_s"], 2)
    # The peers' sessions are built and warmed up outside their timing; sambatch's pipeline time
    # (its run's row: planning to the last commit) leaves out the process start and model load too.
    result["ratio_pipeline_to_ort"] = round(
        result["sambatch_pipeline_images_per_s"] / result["ort_images_per_s"], 2)
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    return result


def job_efficiency(args) -> dict:
    """--job-efficiency: a job's images/s against the rate its parts allow, per box count."""
    result: dict = {"images": args.job or 16, "threads": args.threads, "size": "1920x1080",
                    "load_average_1min_before": round(os.getloadavg()[0], 2), "by_boxes": {}}
    for boxes in [int(v) for v in args.job_efficiency.split(",")]:
        with tempfile.TemporaryDirectory(prefix="sambatch-parts-") as folder:
            images = make_job(folder, args, result["images"], boxes, size="1920x1080")
            bench = [args.sambatch, "bench", "--model", args.checkpoint, "--image", images[0][0],
                     "--threads", str(args.threads), "--boxes", str(boxes), "--runs", str(args.runs),
                     "--decoder-runs", str(args.decoder_runs), "--warmup", str(args.warmup)]
            parts = json.loads(subprocess.run(bench, check=True, capture_output=True, text=True).stdout)
            job = run_sambatch_job(args.sambatch, folder)
        row = {key: round(parts[key], 2) for key in
               ["read_ms", "embed_ms", "predict_box_ms", "rle_ms", "write_ms", "job_parts_images_per_s"]}
        row["job_images_per_s"] = round(job["images"] / job["wall_s"], 3)
        row["job_pipeline_images_per_s"] = round(job["images"] / job["pipeline_s"], 3)
        row["efficiency"] = round(row["job_images_per_s"] / parts["job_parts_images_per_s"], 3)
        row["pipeline_efficiency"] = round(row["job_pipeline_images_per_s"] / parts["job_parts_images_per_s"], 3)
        # A job decodes an image's boxes in one call, side by side: its parts then allow one box
        # (with RLE) and boxes - 1 marginal boxes, a stricter yardstick than boxes x one box.
        together = (parts["read_ms"] + parts["embed_ms"] + parts["box_rle_ms"]
                    + (boxes - 1) * parts["marginal_box_ms"] + parts["write_ms"])
        row["marginal_box_ms"] = round(parts["marginal_box_ms"], 2)
        row["job_parts_together_images_per_s"] = round(1000 / together, 3)
        row["efficiency_together"] = round(row["job_images_per_s"] * together / 1000, 3)
        result["by_boxes"][str(boxes)] = row
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    return result
