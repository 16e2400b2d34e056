"""Compares two sambatch binaries on the same image, alternating them run by run.

On a shared 2-core machine one binary's times move by 10-20% from run to run; a change smaller
than that shows only when the two binaries take turns, each round A then B (then B then A), and
the medians and the per-round ratios are compared. Prints, for each figure of `sambatch bench`,
both medians, the ratio of the medians and the range of the per-round ratios B / A.

    .venv-ref/bin/python Scripts/ab_bench.py OLD_BINARY NEW_BINARY --rounds 5 --threads 2

With --resize (default 1920x1080, as bench_reference.py) the image is first resized with Pillow
into a temporary PNG, so run it with the reference venv; --resize '' uses the image as it is.
Runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the environment, as the README's
benchmarks do.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("embed_ms", "predict_box_ms", "box_rle_ms", "marginal_box_ms")


def bench(binary, args):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    command = [
        binary, "bench", "--model", str(args.checkpoint), "--image", str(args.image),
        "--runs", str(args.runs), "--decoder-runs", str(args.decoder_runs), "--threads", str(args.threads),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{binary} bench failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="the binary to compare against (A)")
    parser.add_argument("b", help="the binary under test (B)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="encoder runs per bench (median)")
    parser.add_argument("--decoder-runs", type=int, default=30)
    parser.add_argument("--image", type=Path, default=ROOT / "Tests/Fixtures/images/picture3.jpg")
    parser.add_argument("--resize", default="1920x1080", help="WIDTHxHEIGHT, or '' for the image as it is")
    parser.add_argument(
        "--checkpoint", type=Path, default=ROOT / "Tests/Fixtures/reference/mobile_sam_random.pt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.resize:
            from PIL import Image

            width, height = (int(v) for v in args.resize.split("x"))
            resized = Path(folder) / f"image_{args.resize}.png"
            Image.open(args.image).convert("RGB").resize((width, height), Image.BILINEAR).save(resized)
            args.image = resized
        compare(args)


def compare(args):

    results = {"a": [], "b": []}
    for round_index in range(args.rounds):
        # A then B, then B then A: neither binary always runs first after the other.
        order = ("a", "b") if round_index % 2 == 0 else ("b", "a")
        for side in order:
            results[side].append(bench(getattr(args, side), args))
        line = "  ".join(
            f"{f}: {results['a'][-1][f]:.2f} / {results['b'][-1][f]:.2f}" for f in FIGURES)
        print(f"round {round_index + 1} (A / B): {line}", flush=True)

    print(f"\n{args.rounds} rounds, {args.threads} threads; A = {args.a}, B = {args.b}")
    print(f"{'figure':<18} {'A median':>9} {'B median':>9} {'B / A':>7}  per-round B / A")
    for figure in FIGURES:
        a = [r[figure] for r in results["a"]]
        b = [r[figure] for r in results["b"]]
        ratios = [y / x for x, y in zip(a, b)]
        print(
            f"{figure:<18} {statistics.median(a):>9.2f} {statistics.median(b):>9.2f} "
            f"{statistics.median(b) / statistics.median(a):>7.3f}  {min(ratios):.3f} .. {max(ratios):.3f}")


if __name__ == "__main__":
    main()
