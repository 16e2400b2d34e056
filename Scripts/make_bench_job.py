#!/usr/bin/env python3
"""Builds a benchmark job of N distinct images (default 200) in a folder, for `sambatch run`.

Needs Python 3 with Pillow (e.g. the reference venv, .venv-ref/bin/python); the Swift program
never needs Python.

    python Scripts/make_bench_job.py /tmp/bench [--count 200] [--model weights/mobile_sam.pt]
    /usr/bin/time -v .build/release/sambatch run /tmp/bench/job.yaml

Every image is a different crop, flip and resize of one of the four sample photos
(Tests/Fixtures/images), saved as its own JPEG, so no cache can make the figure. The hand-drawn
boxes of Jobs/example-instances.json are carried through each transform (clipped to the crop,
dropped when too little is left), so the prompts still sit on real objects: 2-5 boxes per image.
The job writes a COCO instances manifest (xywh boxes) and uses the settings of the main job
(multimask off, keep best).

--boxes N gives every image exactly N boxes (the carried ones, then copies shifted by up to a
tenth of their size); --size WxH makes every image that size (each crop stretched to it), so that
`sambatch bench --image <one of them> --boxes N` times the parts of the same work as the job.
"""
import argparse
import json
import os
import random

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def exactly(count, boxes, rng):
    """count boxes: the first ones of `boxes`, then copies of them shifted by up to a tenth of
    their size (the edges are clipped to the image afterwards)."""
    out = list(boxes[:count])
    while len(out) < count:
        (x, y, w, h), cat = boxes[len(out) % len(boxes)]
        dx, dy = rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.1, 0.1) * h
        out.append(([x + dx, y + dy, w, h], cat))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--model", default=os.path.join(ROOT, "weights", "mobile_sam.pt"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--boxes", type=int, default=None, help="exactly this many boxes per image")
    parser.add_argument("--size", default=None, help="WxH: every image this size")
    args = parser.parse_args()
    fixed_size = tuple(int(v) for v in args.size.split("x")) if args.size else None

    rng = random.Random(args.seed)
    example = json.load(open(os.path.join(ROOT, "Jobs", "example-instances.json")))
    names = {im["id"]: im["file_name"] for im in example["images"]}
    boxes = {}
    for a in example["annotations"]:
        boxes.setdefault(names[a["image_id"]], []).append((a["bbox"], a["category_id"]))
    # picture2 has no COCO boxes in the example: give it the tower and the bus.
    boxes["picture2.jpg"] = [([338, 124, 64, 381], 5), ([158, 614, 180, 75], 6)]
    sources = sorted(boxes)
    photos = {n: Image.open(os.path.join(ROOT, "Tests", "Fixtures", "images", n)).convert("RGB") for n in sources}

    images_dir = os.path.join(args.folder, "images")
    os.makedirs(images_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(args.count):
        name = sources[i % len(sources)]
        photo = photos[name]
        W, H = photo.size
        for _ in range(100):
            # A crop keeping 60-100% of each side, an optional mirror, a resize to 40-100%.
            cw, ch = int(W * rng.uniform(0.6, 1.0)), int(H * rng.uniform(0.6, 1.0))
            cx, cy = rng.randint(0, W - cw), rng.randint(0, H - ch)
            flip = rng.random() < 0.5
            scale = rng.uniform(0.4, 1.0)
            sx, sy = (fixed_size[0] / cw, fixed_size[1] / ch) if fixed_size else (scale, scale)
            kept = []
            for (x, y, w, h), cat in boxes[name]:
                x0, y0 = max(x, cx) - cx, max(y, cy) - cy
                x1, y1 = min(x + w, cx + cw) - cx, min(y + h, cy + ch) - cy
                if x1 - x0 < 0.5 * w or y1 - y0 < 0.5 * h:
                    continue
                if flip:
                    x0, x1 = cw - x1, cw - x0
                kept.append(([x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy], cat))
            if kept:
                break
        image = photo.crop((cx, cy, cx + cw, cy + ch))
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        size = fixed_size or (max(1, round(cw * scale)), max(1, round(ch * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        if args.boxes is not None:
            kept = exactly(args.boxes, kept, rng)
        # Rounding the size may cut a box edge by a fraction of a pixel: keep boxes inside.
        kept = [([max(0, b[0]), max(0, b[1]), min(b[2], size[0] - max(0, b[0])), min(b[3], size[1] - max(0, b[1]))], c)
                for b, c in kept]
        file_name = f"bench{i:05d}-{name}"
        image.save(os.path.join(images_dir, file_name), quality=90)
        images.append({"id": i + 1, "file_name": file_name, "width": size[0], "height": size[1]})
        for box, cat in kept:
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": cat,
                "bbox": [round(v, 2) for v in box], "area": round(box[2] * box[3], 2), "iscrowd": 0,
            })
    categories = example["categories"] + [{"id": 5, "name": "clock tower"}, {"id": 6, "name": "bus"}]
    json.dump({"images": images, "annotations": annotations, "categories": categories},
              open(os.path.join(args.folder, "instances.json"), "w"))
    with open(os.path.join(args.folder, "job.yaml"), "w") as f:
        f.write(f"""# Benchmark job: {args.count} distinct images made by Scripts/make_bench_job.py (seed {args.seed}).
version: 1
model: {os.path.abspath(args.model)}
database: results.db
images: images
manifests:
  - path: instances.json
    format: coco
prompts:
  multimask: false
  keep: best
workers: {args.workers}
""")
    print(f"{args.folder}/job.yaml: {len(images)} images, {len(annotations)} boxes")


if __name__ == "__main__":
    main()
