"""Writes a COCO-train-sized job for scale checks with the fake segmenter (issue 7).

    python Scripts/make_scale_job.py /tmp/scale --images 118000 --boxes 7
    SAMBATCH_FAKE_SEGMENTER=1 /usr/bin/time -v .build/release/sambatch run /tmp/scale/job.yaml
    /usr/bin/time -v .build/release/sambatch status /tmp/scale/job.yaml
    /usr/bin/time -v .build/release/sambatch export /tmp/scale/job.yaml --format coco --out /tmp/scale/out.json

The images are a handful of tiny JPEGs under many names (symbolic links), so the run measures
the pipeline, RLE and SQLite rather than JPEG decoding or a model; the manifest is one COCO
instances file with `--boxes` annotations per image. Nothing here is committed data: the script
makes it anew (needs Pillow).
"""

import argparse
import json
import os
import random

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--images", type=int, default=118_000)
    parser.add_argument("--boxes", type=int, default=7, help="annotations per image")
    parser.add_argument("--size", type=int, default=64, help="side of the tiny images, in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    images_dir = os.path.join(args.folder, "images")
    os.makedirs(images_dir, exist_ok=True)
    originals = []
    for k in range(8):
        name = os.path.join(args.folder, f"tile{k}.jpg")
        pixels = bytes(rng.randrange(256) for _ in range(args.size * args.size * 3))
        Image.frombytes("RGB", (args.size, args.size), pixels).save(name, quality=90)
        originals.append(name)

    images, annotations = [], []
    for i in range(args.images):
        file_name = f"{i:06d}.jpg"
        link = os.path.join(images_dir, file_name)
        if not os.path.lexists(link):
            os.symlink(originals[i % len(originals)], link)
        images.append({"id": i + 1, "file_name": file_name, "width": args.size, "height": args.size})
        for _ in range(args.boxes):
            x, y = rng.uniform(0, args.size / 2), rng.uniform(0, args.size / 2)
            w, h = rng.uniform(4, args.size / 2), rng.uniform(4, args.size / 2)
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": 1 + rng.randrange(80),
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2), "iscrowd": 0,
            })
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, 81)]
    with open(os.path.join(args.folder, "instances.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    with open(os.path.join(args.folder, "job.yaml"), "w") as f:
        f.write(
            "version: 1\n"
            "database: results.db\n"
            "images: images\n"
            "manifests:\n"
            "  - {path: instances.json, format: coco}\n"
            "workers: 2\n"
        )
    print(f"{args.folder}/job.yaml: {len(images)} images, {len(annotations)} boxes")


if __name__ == "__main__":
    main()
