#!/usr/bin/env python3
"""Measures issue 7's scale targets on a COCO-train-sized job with the fake segmenter.

    .venv-ref/bin/python Scripts/scale_check.py --sambatch .build/release/sambatch --folder /tmp/scale

Makes the job with Scripts/make_scale_job.py when the folder has none (118,000 tiny images, 7
boxes each; needs Pillow), deletes its database, then:

1. `sambatch run` with the fake segmenter (no delay), sampling the process's resident memory
   (VmRSS in /proc/PID/status) every 100 ms. Planning ends when the run logs "N of M to do"
   (the plan is written and the pipeline starts). Reported: planning seconds, peak RSS while
   planning, the highest RSS after planning (the pipeline's plateau), the peak of the whole
   process (ru_maxrss), and the pipeline's wall and CPU milliseconds per image (the fake model's
   own cost, a box fill and a hash, is included: it is an upper bound of the overhead).
2. `sambatch status` and 3. `sambatch run` again (nothing to do): wall seconds and peak RSS.

Targets (issue 7): planning <= 20 s, <= 1 ms per image outside the model, <= 400 MB after
planning, status and a finished rerun <= 2 s and <= 100 MB. Timings depend on the load: the
script prints the load average before and after.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 1e6
    except OSError:
        return None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return None


def timed(command, env, sample=False):
    """Runs command; returns wall seconds, CPU seconds, peak RSS (MB), stderr lines with their
    times, and the RSS samples [(seconds, MB)]."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, samples = [], []

    def read_stderr():
        for line in process.stderr:
            lines.append((time.monotonic() - started, line.rstrip()))

    reader = threading.Thread(target=read_stderr)
    reader.start()
    stdout_text = []
    out_reader = threading.Thread(target=lambda: stdout_text.append(process.stdout.read()))
    out_reader.start()
    last_cpu = 0.0
    while True:
        # wait4, not Popen.poll: it reaps the child with its resource usage (peak RSS, CPU).
        pid, status, usage = os.wait4(process.pid, os.WNOHANG if sample else 0)
        if pid == process.pid:
            break
        mb, cpu = rss_mb(process.pid), cpu_seconds(process.pid)
        if mb is not None:
            samples.append((time.monotonic() - started, mb, cpu if cpu is not None else last_cpu))
            last_cpu = samples[-1][2]
        time.sleep(0.1)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    out_reader.join()
    return {
        "status": process.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
        # ru_maxrss is in KiB; MB here are 10^6 bytes, as the samples.
        "peak_mb": usage.ru_maxrss * 1024 / 1e6, "lines": lines, "samples": samples, "stdout": "".join(stdout_text),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sambatch", default=os.path.join(os.path.dirname(HERE), ".build", "release", "sambatch"))
    parser.add_argument("--folder", default="/tmp/scale")
    parser.add_argument("--images", type=int, default=118_000)
    parser.add_argument("--boxes", type=int, default=7)
    parser.add_argument("--samples", help="write the RSS samples (seconds, MB, CPU seconds) to this file")
    args = parser.parse_args()

    job = os.path.join(args.folder, "job.yaml")
    if not os.path.exists(job):
        subprocess.run([sys.executable, os.path.join(HERE, "make_scale_job.py"), args.folder, "--images",
                        str(args.images), "--boxes", str(args.boxes)], check=True)
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(args.folder, "results.db" + suffix)
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ, SAMBATCH_FAKE_SEGMENTER="1", SAMBATCH_FAKE_DELAY_MS="0")
    env.pop("SAMBATCH_MODEL", None)
    load_before = os.getloadavg()

    run = timed([args.sambatch, "run", job], env, sample=True)
    if run["status"] not in (0, 2):
        sys.exit(f"run failed ({run['status']}): {run['lines'][-5:]}")
    planned = next((t for t, line in run["lines"] if " to do, " in line), None)
    if planned is None:
        sys.exit(f"no 'to do' line in the run's log: {run['lines'][:5]}")
    images = int(next(line for _, line in run["lines"] if " to do, " in line).split()[0])
    during = [mb for t, mb, _ in run["samples"] if t < planned]
    after = [mb for t, mb, _ in run["samples"] if t >= planned + 0.2]
    cpu_at_plan = max((cpu for t, _, cpu in run["samples"] if t < planned), default=0.0)
    pipeline_wall = run["wall"] - planned
    pipeline_cpu = run["cpu"] - cpu_at_plan
    if args.samples:
        with open(args.samples, "w") as f:
            for t, mb, cpu in run["samples"]:
                f.write(f"{t:.2f} {mb:.1f} {cpu:.2f}\n")

    status = timed([args.sambatch, "status", job], env)
    rerun = timed([args.sambatch, "run", job], env)
    load_after = os.getloadavg()
    report = {
        "images": images,
        "planning_s": round(planned, 2),
        "rss_peak_planning_mb": round(max(during, default=0), 1),
        "rss_after_planning_max_mb": round(max(after, default=0), 1),
        "rss_after_planning_median_mb": round(sorted(after)[len(after) // 2], 1) if after else None,
        "peak_rss_mb": round(run["peak_mb"], 1),
        "run_wall_s": round(run["wall"], 1),
        "run_cpu_s": round(run["cpu"], 1),
        "pipeline_wall_ms_per_image": round(1000 * pipeline_wall / images, 3),
        "pipeline_cpu_ms_per_image": round(1000 * pipeline_cpu / images, 3),
        "planning_cpu_s": round(cpu_at_plan, 1),
        "status_s": round(status["wall"], 2), "status_cpu_s": round(status["cpu"], 2),
        "status_mb": round(status["peak_mb"], 1),
        "rerun_s": round(rerun["wall"], 2), "rerun_cpu_s": round(rerun["cpu"], 2), "rerun_mb": round(rerun["peak_mb"], 1),
        "rerun_nothing_to_do": "Nothing to do" in rerun["stdout"],
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in load_after],
    }
    print(json.dumps(report, indent=1))
    targets = [
        ("planning <= 20 s", report["planning_s"] <= 20),
        ("pipeline <= 1 ms/image (wall)", report["pipeline_wall_ms_per_image"] <= 1),
        ("RSS after planning <= 400 MB", report["rss_after_planning_max_mb"] <= 400),
        ("status <= 2 s and <= 100 MB", report["status_s"] <= 2 and report["status_mb"] <= 100),
        ("finished rerun <= 2 s and <= 100 MB", report["rerun_s"] <= 2 and report["rerun_mb"] <= 100),
    ]
    for name, met in targets:
        print(f"{'met    ' if met else 'NOT MET'} {name}")


if __name__ == "__main__":
    main()
