#!/usr/bin/env python3
"""Issue 9's "flat memory": peak RSS and images/s of 20-, 200- and 1,000-image jobs (distinct
images, 3 boxes each) should be within 10% of each other.

    .venv-ref/bin/python Scripts/make_bench_job.py /tmp/flat/all --count 1000 --boxes 3 --size 1280x960 \\
        --model Tests/Fixtures/reference/mobile_sam_random.pt
    .venv-ref/bin/python Scripts/flat_memory.py --sambatch .build/release/sambatch --job /tmp/flat/all \\
        --counts 20,200,1000

For each count N it writes a job of the first N images of the given bench job (same images
folder, same settings) beside it, runs it from an empty database while sampling VmRSS every
100 ms, and reports images/s (the run's own summary), peak RSS (ru_maxrss) and the RSS reached by
image count (from the run's progress lines, every 10 s), so that a job cut short still shows its
trend. The fixture checkpoint has the architecture of mobile_sam.pt: same speed and memory.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scale_check import timed  # noqa: E402


def sub_job(folder, count):
    with open(os.path.join(folder, "instances.json")) as f:
        coco = json.load(f)
    images = coco["images"][:count]
    ids = {im["id"] for im in images}
    sub = dict(coco, images=images, annotations=[a for a in coco["annotations"] if a["image_id"] in ids])
    target = os.path.join(folder, f"first{count}")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "instances.json"), "w") as f:
        json.dump(sub, f)
    with open(os.path.join(folder, "job.yaml")) as f:
        text = f.read()
    text = text.replace("images: images", f"images: {os.path.join(folder, 'images')}")
    with open(os.path.join(target, "job.yaml"), "w") as f:
        f.write(text)
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(target, "results.db" + suffix)
        if os.path.exists(path):
            os.remove(path)
    return os.path.join(target, "job.yaml"), len(sub["annotations"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sambatch", default=os.path.join(os.path.dirname(HERE), ".build", "release", "sambatch"))
    parser.add_argument("--job", required=True, help="folder of a Scripts/make_bench_job.py job")
    parser.add_argument("--counts", default="20,200,1000")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("SAMBATCH_FAKE_SEGMENTER", None)
    env.pop("SAMBATCH_MODEL", None)
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        job, boxes = sub_job(args.job, count)
        load_before = os.getloadavg()
        result = timed([args.sambatch, "run", job], env, sample=True)
        summary = re.search(r"Processed (\d+) images? in ([\d.]+) s \(([\d.]+) images/s\)", result["stdout"])
        by_count = []
        for t, line in result["lines"]:
            m = re.search(r"progress: (\d+)/(\d+) images", line)
            if m:
                rss = max((mb for s, mb, _ in result["samples"] if s <= t), default=0)
                by_count.append((int(m.group(1)), round(rss)))
        row = {
            "images": count, "boxes": boxes, "status": result["status"],
            "images_per_s": float(summary.group(3)) if summary else None,
            "wall_s": round(result["wall"], 1), "cpu_s": round(result["cpu"], 1),
            "peak_rss_mb": round(result["peak_mb"], 1), "rss_by_images": by_count,
            "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    rates = [r["images_per_s"] for r in rows if r["images_per_s"]]
    peaks = [r["peak_rss_mb"] for r in rows]
    if len(rates) == len(rows) and rows:
        print(f"images/s spread {max(rates) / min(rates) - 1:.1%}, peak RSS spread {max(peaks) / min(peaks) - 1:.1%}"
              " (target: within 10%)")


if __name__ == "__main__":
    main()
